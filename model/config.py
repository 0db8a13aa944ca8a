"""The configuration: one YAML file shaped like ``prometheus.yml`` plus Shardmon's own sections.

``global`` and ``scrape_configs`` keep Prometheus's field names, defaults and checks (a real
``prometheus.yml`` that uses only the supported fields loads unchanged); ``shards``, ``ingest``,
``querier`` and ``local`` describe Shardmon's processes. Every model forbids unknown fields, and every
error names the field path, e.g. ``scrape_configs[0].scrape_interval: not a valid duration: '5x'``.

Durations are written as Prometheus writes them (``"15s"``, ``"1h30m"``) and held as int milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from model.errors import ConfigError
from model.labels import is_valid_label_name
from model.relabel_config import RelabelConfig
from model.sd_config import (
    Authorization,
    BasicAuth,
    FileSDConfig,
    HTTPClientConfig,
    HTTPSDConfig,
    KubernetesSDConfig,
    TLSConfig,
)

_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


def parse_duration_ms(text: str) -> int:
    """Parse a Prometheus duration (``1h30m``, ``15s``, ``500ms``, ``0``) into milliseconds."""
    if text == "0":
        return 0
    m = _DURATION_RE.match(text) if text else None
    if m is None or not any(m.groups()):
        raise ValueError(f"not a valid duration string: {text!r}")
    return sum(int(g) * unit for g, unit in zip(m.groups(), _UNIT_MS) if g)


def format_duration_ms(ms: int) -> str:
    """The inverse of :func:`parse_duration_ms`, as Prometheus prints durations (``1h30m``)."""
    if ms == 0:
        return "0s"
    out = []
    for suffix, unit in zip(("y", "w", "d", "h", "m", "s", "ms"), _UNIT_MS):
        if ms >= unit:
            out.append(f"{ms // unit}{suffix}")
            ms %= unit
    return "".join(out)


def _duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"not a valid duration string: {value!r} (write it as a string like \"15s\")")
    return parse_duration_ms(value)


#: A duration in the YAML, milliseconds in Python.
Duration = Annotated[int, BeforeValidator(_duration)]

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i?)?B$")
_SIZE_POWER = {None: 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_size_bytes(text: str) -> int:
    """Parse a size as Prometheus's ``--storage.tsdb.retention.size`` does (base 2: ``512MB`` is
    512 MiB; ``B``, ``KB``..``EB`` and ``KiB``..``EiB``; ``0`` alone means zero) into bytes."""
    if text == "0":
        return 0
    m = _SIZE_RE.match(text) if text else None
    if m is None:
        raise ValueError(f"not a valid size: {text!r} (write it like \"512MB\", \"10GB\" or \"1TiB\")")
    return int(float(m.group(1)) * 1024 ** _SIZE_POWER[m.group(2)[0] if m.group(2) else None])


def _size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not a valid size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a valid size: {value!r} (negative)")
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a valid size: {value!r} (write it as a string like \"512MB\")")
    return parse_size_bytes(value)


#: A size in bytes: ``"512MB"`` (base 2, as Prometheus) or a plain integer number of bytes in the YAML.
Size = Annotated[int, BeforeValidator(_size)]


class _Model(BaseModel):
    # Numbers become strings where a string is expected, as Go's YAML decoding does for prometheus.yml.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True)


def _check_label_names(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        if not is_valid_label_name(name):
            raise ValueError(f"{name!r} is not a valid label name")
    return labels


class GlobalConfig(_Model):
    """Prometheus's ``global`` section (the subset Shardmon acts on)."""

    scrape_interval: Duration = Field(60_000, description="How often to scrape targets by default.")
    scrape_timeout: Duration | None = Field(None, description="Scrape timeout by default (10s, at most the interval).")
    evaluation_interval: Duration = Field(60_000, description="How often to evaluate rules.")
    external_labels: dict[str, str] = Field(default_factory=dict, description="Labels added when talking to external systems.")

    @field_validator("external_labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_label_names(v)

    @model_validator(mode="after")
    def _timeout(self) -> GlobalConfig:
        if self.scrape_timeout is None:
            object.__setattr__(self, "scrape_timeout", min(10_000, self.scrape_interval))
        elif self.scrape_timeout > self.scrape_interval:
            raise ValueError("global scrape timeout greater than scrape interval")
        return self


class StaticConfig(_Model):
    """A target group: addresses and the labels they all get."""

    targets: list[str] = Field(default_factory=list, description="host:port addresses.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of every target in the group.")

    # No check of the addresses here: as in Prometheus, a target may be a URL that relabeling moves into
    # a parameter (blackbox probes); the address left after relabeling is checked (ingest/target.py).

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_label_names(v)


class ScrapeConfig(_Model):
    """One ``scrape_configs`` entry, with Prometheus's field names and defaults."""

    job_name: str = Field(min_length=1, description="The job label of every target of this config.")
    scrape_interval: Duration | None = Field(None, description="Defaults to the global scrape_interval.")
    scrape_timeout: Duration | None = Field(None, description="Defaults to the global scrape_timeout.")
    metrics_path: str = Field("/metrics", description="HTTP path of the metrics.")
    scheme: Literal["http", "https"] = "http"
    honor_labels: bool = Field(False, description="Keep the target's job/instance labels on conflict.")
    honor_timestamps: bool = Field(True, description="Use the timestamps the target exposes.")
    params: dict[str, list[str]] = Field(default_factory=dict, description="URL parameters of the scrape.")
    static_configs: list[StaticConfig] = Field(default_factory=list)
    file_sd_configs: list[FileSDConfig] = Field(default_factory=list)
    http_sd_configs: list[HTTPSDConfig] = Field(default_factory=list)
    kubernetes_sd_configs: list[KubernetesSDConfig] = Field(default_factory=list)
    relabel_configs: list[RelabelConfig] = Field(default_factory=list, description="Target relabeling, in order.")
    metric_relabel_configs: list[RelabelConfig] = Field(default_factory=list, description="Series relabeling.")
    # Limits (Prometheus 2.42's; 0 means none). Exceeding one fails the whole scrape (up = 0).
    sample_limit: int = Field(0, ge=0, description="Samples (after metric relabeling) one scrape may have.")
    label_limit: int = Field(0, ge=0, description="Labels one series may have (after relabeling, __name__ included).")
    label_name_length_limit: int = Field(0, ge=0, description="Bytes of a label name, at most.")
    label_value_length_limit: int = Field(0, ge=0, description="Bytes of a label value, at most.")
    body_size_limit: Size = Field(0, description='Uncompressed bytes of a response, e.g. "10MB" (base 2); 0: none.')
    target_limit: int = Field(
        0, ge=0, description="Targets (after relabeling) of this job, at most; over it every target reports the error."
    )
    # Prometheus's <http_config>, inline as in prometheus.yml (checked as model.sd_config.HTTPClientConfig).
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: str | None = Field(None, description="Deprecated form of authorization.credentials.")
    bearer_token_file: str | None = Field(None, description="Deprecated form of authorization.credentials_file.")
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    follow_redirects: bool = True
    enable_http2: bool = Field(True, description="Accepted for compatibility; scrapes use HTTP/1.1.")
    proxy_url: str | None = Field(None, description="An http:// proxy for the scrapes.")

    @model_validator(mode="after")
    def _http_client(self) -> ScrapeConfig:
        self.http_client_config()  # Prometheus's checks (one kind of authentication, ...)
        return self

    def http_client_config(self) -> HTTPClientConfig:
        """The scrape's HTTP client settings (authentication, TLS, redirects, proxy)."""
        return HTTPClientConfig(**{name: getattr(self, name) for name in HTTPClientConfig.model_fields})

    def resolved(self, glob: GlobalConfig) -> ScrapeConfig:
        """This config with the global defaults filled in, checked as Prometheus checks it."""
        interval = self.scrape_interval if self.scrape_interval is not None else glob.scrape_interval
        timeout = self.scrape_timeout
        if timeout is None:
            timeout = min(glob.scrape_timeout, interval)  # type: ignore[type-var]
        if timeout > interval:
            raise ValueError(
                f"scrape timeout greater than scrape interval for scrape config with job name {self.job_name!r}"
            )
        return self.model_copy(update={"scrape_interval": interval, "scrape_timeout": timeout})


class ShardNode(_Model):
    """One storage shard: its gRPC address and its own Redis."""

    id: int = Field(ge=0, description="Stable shard id; series are hashed onto ids, not list positions.")
    address: str = Field(description="host:port of the shard's gRPC server.")
    redis_url: str = Field(description="The shard's Redis, e.g. redis://127.0.0.1:6401/0.")
    metrics_address: str | None = Field(None, description="host:port for the shard's own /metrics.")


def _one_local_shard() -> list[ShardNode]:
    return [ShardNode(id=0, address="127.0.0.1:9301", redis_url="redis://127.0.0.1:6401/0")]


_DEFAULT_RETENTION_MS = 15 * 86_400_000
_MAX_BLOCK_MS = 31 * 86_400_000


class ShardsConfig(_Model):
    nodes: list[ShardNode] = Field(
        default_factory=_one_local_shard, min_length=1, description="The shards (default: one local shard)."
    )
    replication_factor: int = Field(1, ge=1, description="Copies of each series on distinct shards.")
    block_duration: Duration = Field(2 * 3_600_000, description="Time window of a block cut from the head.")
    wal_appendfsync: Literal["everysec", "always", "no"] = Field(
        "everysec",
        description="Redis AOF fsync policy: the launcher starts Redis with it and each shard sets it (CONFIG SET) "
        "on its Redis at start-up when Redis allows CONFIG.",
    )
    allow_reset: bool = Field(False, description="Accept the Reset RPC that deletes all data (tests only).")
    retention_time: Duration | None = Field(
        None,
        description="Delete blocks whose end is this much older than the newest block's end (Prometheus's "
        "--storage.tsdb.retention.time); \"0\" turns it off. Default 15d, or off when retention_size is set.",
    )
    retention_size: Size = Field(
        0, description="Delete the oldest blocks while all blocks together exceed this many bytes, e.g. \"10GB\" "
        "(base 2, as Prometheus's --storage.tsdb.retention.size); 0 turns it off.",
    )
    max_block_duration: Duration | None = Field(
        None,
        description="Largest block compaction builds (Prometheus's --storage.tsdb.max-block-duration); "
        "default 10% of retention_time, at most 31d.",
    )
    max_active_series: int = Field(
        0, ge=0, description="Series with samples in a shard's head, at most (per shard); 0: unlimited.",
    )
    out_of_order_time_window: Duration = Field(
        0,
        description="How much older than the newest sample of the head a sample may be and still be accepted "
        "(Prometheus's storage.tsdb.out_of_order_time_window); 0: in-order only.",
    )
    max_series_per_metric: int = Field(
        0, ge=0, description="Series of one metric name with samples in a shard's head, at most; 0: unlimited.",
    )

    @model_validator(mode="after")
    def _retention(self) -> ShardsConfig:
        if self.retention_time is None:
            # As Prometheus: 15d unless only a size retention is configured.
            object.__setattr__(self, "retention_time", 0 if self.retention_size else _DEFAULT_RETENTION_MS)
        if self.max_block_duration is None:
            limit = self.retention_time // 10 if self.retention_time else _MAX_BLOCK_MS
            object.__setattr__(self, "max_block_duration", min(limit, _MAX_BLOCK_MS))
        return self

    def compaction_ranges(self) -> list[int]:
        """Block durations compaction builds, as Prometheus's: block_duration, then x3 steps up to
        max_block_duration (only block_duration when that is smaller than 3 block durations)."""
        ranges = [self.block_duration]
        while ranges[-1] * 3 <= (self.max_block_duration or 0):
            ranges.append(ranges[-1] * 3)
        return ranges

    @model_validator(mode="after")
    def _unique(self) -> ShardsConfig:
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"shard ids must be unique, got {ids}")
        if self.replication_factor > len(self.nodes):
            raise ValueError(
                f"replication_factor {self.replication_factor} exceeds the {len(self.nodes)} shards"
            )
        return self

    def node(self, shard_id: int) -> ShardNode:
        for n in self.nodes:
            if n.id == shard_id:
                return n
        raise ConfigError(f"shards.nodes: no shard with id {shard_id}")


class IngestConfig(_Model):
    scrapers: int = Field(2, ge=1, description="Number of scraper actors.")
    ray_address: str = Field("local", description='"local" starts a Ray of its own; else a cluster address.')
    http_address: str | None = Field(
        None,
        description="host:port of the ingest service's API (/api/v1/targets, /api/v1/scrapers, POST /-/reload); "
        "none when unset.",
    )
    scraper_num_cpus: float = Field(0.25, gt=0, description="Ray CPUs reserved per scraper actor.")
    discovery_update_interval: Duration = Field(
        5000, description="Longest a discovered change waits before targets are updated (Prometheus: 5s).")
    batch_max_samples: int = Field(20_000, ge=1, description="Largest Write sent to a shard.")
    flush_interval: Duration = Field(1000, description="Longest a sample waits before it is sent.")
    queue_max_samples: int = Field(2_000_000, ge=1, description="Unacknowledged samples kept per shard per scraper.")
    write_timeout: Duration = Field(10_000)
    retry_backoff_min: Duration = Field(50)
    retry_backoff_max: Duration = Field(5_000)
    self_monitoring: bool = Field(
        True, description="Scrape Shardmon's own components (job \"shardmon\", label component) without configuring them."
    )


class QuerierConfig(_Model):
    http_address: str = Field("127.0.0.1:9190", description="host:port of the Prometheus HTTP API.")
    grpc_address: str = Field("127.0.0.1:9191", description="host:port of the gRPC Query API.")
    lookback_delta: Duration = Field(
        300_000, description="How far back an instant selector looks for a sample (Prometheus's --query.lookback-delta)."
    )
    query_timeout: Duration = Field(
        120_000, description="Longest a query may run (Prometheus's --query.timeout); the API's timeout may only shorten it."
    )
    partial_response: Literal["warn", "abort"] = Field(
        "warn", description="With a shard down: answer with a warning, or fail the query."
    )
    max_samples: int = Field(
        50_000_000, ge=1,
        description="Samples one query may load (Prometheus's --query.max-samples): the samples read from the shards "
        "plus a point per series and step of each instant selector and subquery. Enforced while loading: the "
        "shards stop streaming at it, and the query fails with 422.",
    )
    max_series: int = Field(
        1_000_000, ge=1,
        description="Series one query (or series/labels lookup) may read, enforced while loading as max_samples.",
    )
    max_query_length: Size = Field(
        256 * 1024,
        description='Bytes of PromQL text (a query, or one match[] selector), e.g. "256KB"; longer is refused with '
        "400 before parsing.",
    )
    max_query_depth: int = Field(
        100, ge=1, le=200,
        description="Levels of nesting of a query (each bracket, and each operator in a chain, is a level); deeper is "
        "refused with 400 before parsing (the parser and the evaluator are recursive). At most 200.",
    )
    shard_response_timeout: Duration = Field(
        30_000,
        description="A shard call that receives nothing for this long fails as that shard failing (partial response "
        "or abort), as Thanos's --store.response-timeout; shard calls also end with the query's deadline.",
    )
    subquery_step: Duration | None = Field(
        None, description="Step of subqueries that name none (default: global.evaluation_interval)."
    )


class ReceiverConfig(_Model):
    """The receiver process: Prometheus remote_write and a Pushgateway-compatible push API."""

    http_address: str = Field("127.0.0.1:9192", description="host:port of POST /api/v1/write and the receiver's /metrics.")
    pushgateway_address: str | None = Field(
        "127.0.0.1:9091", description="host:port of the Pushgateway API and of the pushed metrics' /metrics."
    )
    persistence_file: str | None = Field(None, description="Where pushed groups are kept across restarts.")
    write_timeout: Duration = Field(10_000, description="How long a remote-write request waits for the shards.")
    max_concurrent_writes: int = Field(
        64, ge=1, description="Remote-write requests handled at once; more are answered 429 (the sender backs off)."
    )


class LocalConfig(_Model):
    """What ``shardmon up`` starts on one machine besides the services."""

    data_dir: str = Field(".shardmon", description="Folder for Redis data and logs.")
    start_redis: bool = Field(True, description="Start a redis-server for every shard's loopback redis_url.")
    demo_targets: list[str] = Field(default_factory=list, description="host:port of built-in demo targets to serve.")


class Config(_Model):
    """The whole configuration."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    scrape_configs: list[ScrapeConfig] = Field(default_factory=list)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    querier: QuerierConfig = Field(default_factory=QuerierConfig)
    receiver: ReceiverConfig | None = Field(None, description="Run a receiver (remote_write, push API).")
    local: LocalConfig = Field(default_factory=LocalConfig)

    @model_validator(mode="after")
    def _resolve(self) -> Config:
        seen: set[str] = set()
        resolved = []
        for i, sc in enumerate(self.scrape_configs):
            if sc.job_name in seen:
                raise ValueError(
                    f"scrape_configs[{i}].job_name: found multiple scrape configs with job name {sc.job_name!r}"
                )
            seen.add(sc.job_name)
            try:
                resolved.append(sc.resolved(self.global_))
            except ValueError as exc:
                raise ValueError(f"scrape_configs[{i}].scrape_timeout: {exc}") from None
        object.__setattr__(self, "scrape_configs", resolved)
        return self


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("global" if part == "global_" else str(part))
    return out


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse YAML text into a :class:`Config`; raises :class:`ConfigError` naming the field path."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "field not supported (unknown, or not implemented by Shardmon yet)"
            where = _loc(err["loc"])
            lines.append(f"{where}: {msg}" if where else msg)
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


def load_config(path: str | Path) -> Config:
    """Load and check a configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    return parse_config(text, str(p))
