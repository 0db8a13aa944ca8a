"""The configuration: one YAML file shaped like ``prometheus.yml`` plus Shardmon's own sections.

``global`` and ``scrape_configs`` keep Prometheus's field names, defaults and checks (a real
``prometheus.yml`` that uses only the supported fields loads unchanged); ``shards``, ``ingest``,
``querier`` and ``local`` describe Shardmon's processes. Every model forbids unknown fields, and every
error names the field path, e.g. ``scrape_configs[0].scrape_interval: not a valid duration: '5x'``.

Durations are written as Prometheus writes them (``"15s"``, ``"1h30m"``) and held as int milliseconds.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from model.errors import ConfigError
from model.label_limits import LabelLimits
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
_MAX_DURATION_MS = (2**63 - 1) // 1_000_000
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


def parse_duration_ms(text: str) -> int:
    """Parse a Prometheus duration (``1h30m``, ``15s``, ``500ms``, ``0``) into milliseconds."""
    if text == "0":
        return 0
    m = _DURATION_RE.match(text) if text else None
    if m is None or not any(m.groups()):
        raise ValueError(f"not a valid duration string: {text!r}")
    ms = sum(int(g) * unit for g, unit in zip(m.groups(), _UNIT_MS) if g)
    if ms > _MAX_DURATION_MS:  # As Prometheus: a Go time.Duration (int64 nanoseconds) must hold it.
        raise ValueError(f"not a valid duration string: {text!r}: duration out of range")
    return ms


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
    bearer_token: SecretStr | None = Field(None, description="Deprecated form of authorization.credentials (a secret).")
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


def redacted_url(url: str) -> str:
    """``url`` with the password of its user-info, if any, replaced by ``xxxxx`` (as Go's
    ``URL.Redacted``), for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:xxxxx@{hostport}{slash}{tail}"


def _split_url_password(url: str) -> tuple[str, str | None]:
    """``url`` without the password of its user-info, and that password (percent-decoded), if any."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url, None
    user, password = userinfo.split(":", 1)
    return f"{scheme}://{user + '@' if user else ''}{hostport}{slash}{tail}", urllib.parse.unquote(password)


class ShardNode(_Model):
    """One storage shard: its gRPC address and its own Redis."""

    id: int = Field(ge=0, description="Stable shard id; series are hashed onto ids, not list positions.")
    address: str = Field(description="host:port of the shard's gRPC server.")
    redis_url: str = Field(
        description="The shard's Redis, e.g. redis://127.0.0.1:6401/0; rediss:// for TLS (see redis_tls_config). "
        "A password written in the URL (redis://:password@host:port/0) is moved into redis_password when the "
        "configuration loads, so the URL is never shown with it; prefer redis_password_file.",
    )
    redis_password: SecretStr | None = Field(
        None, description="The password of the shard's Redis (AUTH; with an ACL user, the URL names the user).",
    )
    redis_password_file: str | None = Field(
        None,
        description="A file holding the password of the shard's Redis, read at each new connection (so it can "
        "be rotated), surrounding whitespace trimmed, as Prometheus's password_file.",
    )
    redis_tls_config: TLSConfig | None = Field(
        None,
        description="TLS of a rediss:// redis_url, in Prometheus's tls_config shape: ca_file (or ca) to verify "
        "the server, cert_file and key_file for a client certificate, insecure_skip_verify, min_version.",
    )
    metrics_address: str | None = Field(None, description="host:port for the shard's own /metrics.")

    @model_validator(mode="before")
    @classmethod
    def _password_out_of_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("redis_url"), str):
            url, password = _split_url_password(data["redis_url"])
            if password is not None:
                if data.get("redis_password") is not None or data.get("redis_password_file") is not None:
                    raise ValueError("redis_url: at most one of a password in redis_url, redis_password & "
                                     "redis_password_file must be configured")
                data = {**data, "redis_url": url, "redis_password": password}
        return data

    @model_validator(mode="after")
    def _redis_settings(self) -> ShardNode:
        if self.redis_password is not None and self.redis_password_file:
            raise ValueError("at most one of redis_password & redis_password_file must be configured")
        tls = self.redis_tls_config
        if tls is not None:
            if not self.redis_url.startswith("rediss://"):
                raise ValueError("redis_tls_config: TLS needs a rediss:// redis_url")
            for name in ("cert", "key", "server_name", "max_version"):
                if getattr(tls, name):
                    hint = f" (use {name}_file)" if name in ("cert", "key") else ""
                    raise ValueError(f"redis_tls_config.{name}: not supported for Redis connections{hint}")
        return self

    def redis_password_value(self) -> str | None:
        """The Redis password now: ``redis_password``, or ``redis_password_file``'s content (read now,
        whitespace trimmed); None when neither is set. Raises ConfigError when the file cannot be read."""
        if self.redis_password is not None:
            return self.redis_password.get_secret_value()
        if self.redis_password_file:
            try:
                return Path(self.redis_password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"shards.nodes: shard {self.id}: redis_password_file: cannot read "
                                  f"{self.redis_password_file}: {exc.strerror}") from exc
        return None


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
    wal_appendfsync: Literal["everysec", "always", "no", "off"] = Field(
        "everysec",
        description="Redis AOF fsync policy: the launcher starts Redis with it and each shard sets appendonly yes "
        "and it (CONFIG SET, made persistent with CONFIG REWRITE when Redis has a config file) at start-up; a "
        "shard whose Redis runs without AOF and refuses CONFIG refuses writes. \"off\": no AOF is asked for "
        "(a Redis that keeps its data by other means; a restart of it loses acknowledged writes).",
    )
    max_future_time: Duration = Field(
        600_000,
        description="Samples more than this far ahead of the shard's clock are refused (reason "
        "too_far_in_future) in every write path, as Mimir's creation grace period; default 10m.",
    )
    retention_time: Duration | None = Field(
        None,
        description="Delete blocks whose end is this much older than the newest block's end, or than the shard's "
        "clock if that is earlier (Prometheus's --storage.tsdb.retention.time); \"0\" turns it off. Default "
        "15d, or off when retention_size is set.",
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
    tls: TLSConfig | None = Field(
        None,
        description="TLS of every connection to a shard's gRPC server (Prometheus's tls_config fields: ca_file, "
        "cert_file, key_file, server_name; insecure_skip_verify is refused, gRPC cannot skip verification). "
        "Required when web_config_file turns TLS on; unset, internal_client.tls_config is used.",
    )
    allow_reset: None = Field(
        None, exclude=True, description="Removed: the Reset RPC is part of the admin API (web.enable_admin_api)."
    )

    @field_validator("allow_reset", mode="before")
    @classmethod
    def _removed(cls, v: Any) -> None:
        raise ValueError("removed; the Reset RPC is part of the admin API now: set web.enable_admin_api: true")

    @field_validator("tls")
    @classmethod
    def _grpc_tls(cls, v: TLSConfig | None) -> TLSConfig | None:
        if v is not None and v.insecure_skip_verify:
            raise ValueError("insecure_skip_verify: not supported for gRPC (grpcio cannot skip certificate "
                             "verification); give ca_file (and server_name) instead")
        return v

    @field_validator("wal_appendfsync", mode="before")
    @classmethod
    def _unquoted(cls, v: Any) -> Any:
        if isinstance(v, bool):  # YAML reads no, off, false (unquoted) as false
            raise ValueError("write the policy as a quoted string: \"no\" or \"off\" (YAML reads them unquoted as "
                             "a boolean)")
        return v

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
    # Before `scrapers`, whose check reads it.
    max_scrapers: int = Field(
        64, ge=1,
        description="Most scrapers the ingest service runs: bounds ingest.scrapers and runtime scaling "
        "(POST /api/v1/scrapers, `shardmon scale`), so that one request cannot ask Ray for thousands of actors.",
    )
    scrapers: int = Field(2, ge=1, description="Number of scraper actors (at most max_scrapers).")
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
    ray_auth_token_file: str | None = Field(
        None,
        description="File with the Ray cluster's authentication token (Ray's RAY_AUTH_TOKEN_PATH). On a Ray "
        "cluster that is not loopback-only (ray_address not \"local\", shardmon ray-node) Shardmon runs Ray with "
        "token authentication (RAY_AUTH_MODE=token); `shardmon ray-node --head` writes a new random token here "
        "when the file does not exist. Unset: Ray's own sources (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, "
        "~/.ray/auth_token).",
    )

    @field_validator("scrapers")
    @classmethod
    def _bounded(cls, v: int, info: ValidationInfo) -> int:
        bound = info.data.get("max_scrapers")
        if bound is not None and v > bound:
            raise ValueError(f"{v} is more than ingest.max_scrapers ({bound})")
        return v


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
        "or abort), as Thanos's --store.response-timeout; shard calls also end with the query's deadline, and one "
        "still silent when a quarter of the query's time (at most 1s) is left is left out so the answer comes in time.",
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
    persistence_interval: Duration = Field(
        300_000,
        description="At most how often pushed groups are written to persistence_file (only after a change; and "
        "always at a clean shutdown), as the Pushgateway's --persistence.interval; 0: soon after every change.",
    )
    max_push_groups: int = Field(
        10_000, ge=0,
        description="Pushed groups held at most; a push that would create one more is refused with 400 "
        "(replacing or deleting a group always works); 0: no limit.",
    )
    write_timeout: Duration = Field(10_000, description="How long a remote-write request waits for the shards.")
    max_concurrent_writes: int = Field(
        64, ge=1, description="Remote-write requests handled at once; more are answered 429 (the sender backs off)."
    )
    max_decoded_body_bytes: Size = Field(
        32 << 20, gt=0,
        description='Size of a remote-write body once snappy-decoded, read from its header before anything is '
        'decoded, e.g. "32MB" (base 2); a larger body is answered 413, which senders do not retry. The '
        "compressed size is limited to what snappy needs for this many bytes.",
    )
    label_limit: int = Field(
        30, ge=0,
        description="Labels one pushed series may have (__name__ included), as the scrape label_limit; a series "
        "over it is refused (the rest of the request is written) and the request answers 400; 0: no limit. The "
        "defaults of the three label limits are Mimir's distributor's, for a receiver open to a network.",
    )
    label_name_length_limit: int = Field(
        1024, ge=0, description="Bytes of a label name of a pushed series, at most, as label_limit; 0: no limit."
    )
    label_value_length_limit: int = Field(
        2048, ge=0, description="Bytes of a label value of a pushed series, at most, as label_limit; 0: no limit."
    )

    @property
    def label_limits(self) -> LabelLimits:
        return LabelLimits(self.label_limit, self.label_name_length_limit, self.label_value_length_limit)


class InternalClientConfig(_Model):
    """How Shardmon calls its own listeners: self-monitoring scrapes of every component's /metrics, the
    querier's /api/v1/targets passthrough to the ingest API, the shards' gRPC (credentials), and the
    defaults of the command-line clients (shardmon query, targets, scale, reload)."""

    basic_auth: BasicAuth | None = Field(
        None, description="Credentials sent to every listener (one of the web config's basic_auth_users); "
        "required when the web config has basic_auth_users.")
    tls_config: TLSConfig | None = Field(
        None, description="Set (even empty: the system's CAs): speak TLS (https) to the listeners; required when "
        "the web config has tls_server_config, with cert_file/key_file when it requires client certificates.")

    @field_validator("basic_auth")
    @classmethod
    def _basic(cls, v: BasicAuth | None) -> BasicAuth | None:
        if v is not None and v.username_file:
            raise ValueError("username_file: not supported here; give username")
        return v


class LocalConfig(_Model):
    """What ``shardmon up`` starts on one machine besides the services."""

    data_dir: str = Field(".shardmon", description="Folder for Redis data and logs.")
    start_redis: bool = Field(True, description="Start a redis-server for every shard's loopback redis_url.")
    demo_targets: list[str] = Field(default_factory=list, description="host:port of built-in demo targets to serve.")
    stop_grace_period: Duration = Field(
        15_000,
        description="How long `shardmon up`, stopping, lets a child exit after SIGTERM before it kills it "
        "(SIGKILL). Children stop in three stages (ingest and receiver; querier, shards and demo targets; "
        "Redis), each stage's children at once, so stopping takes at most three of these.",
    )


class WebAPIConfig(_Model):
    """Which state-changing HTTP and gRPC endpoints are served, as Prometheus's ``--web.*`` flags."""

    enable_lifecycle: bool = Field(
        False,
        description="Serve the lifecycle endpoints (Prometheus's --web.enable-lifecycle): POST/PUT /-/reload and "
        "POST/PUT /api/v1/scrapers (scaling) on ingest.http_address. When false they answer 403; SIGHUP still "
        "reloads.",
    )
    enable_admin_api: bool = Field(
        False,
        description="Serve the admin endpoints (Prometheus's --web.enable-admin-api): the push API's "
        "PUT /api/v1/admin/wipe and the shards' Flush and Reset RPCs. When false they answer 403 "
        "(gRPC PERMISSION_DENIED).",
    )


class Config(_Model):
    """The whole configuration."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    scrape_configs: list[ScrapeConfig] = Field(default_factory=list)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    querier: QuerierConfig = Field(default_factory=QuerierConfig)
    receiver: ReceiverConfig | None = Field(None, description="Run a receiver (remote_write, push API).")
    local: LocalConfig = Field(default_factory=LocalConfig)
    web: WebAPIConfig = Field(default_factory=WebAPIConfig, description="Lifecycle and admin endpoints (off by default).")
    web_config_file: str | None = Field(
        None,
        description="A file in the format of Prometheus's --web.config.file (tls_server_config, http_server_config, "
        "basic_auth_users) applied to every HTTP listener, and its TLS part (and basic_auth_users) to every gRPC "
        "listener. A relative path is relative to this configuration file's folder.",
    )
    internal_client: InternalClientConfig = Field(
        default_factory=InternalClientConfig,
        description="Credentials and TLS of Shardmon's calls to its own listeners (Prometheus's basic_auth and "
        "tls_config).",
    )

    def shard_tls(self) -> TLSConfig | None:
        """The TLS settings of connections to the shards: ``shards.tls``, else ``internal_client.tls_config``."""
        return self.shards.tls if self.shards.tls is not None else self.internal_client.tls_config

    def web_config(self):
        """The web config of this process's listeners (read once per process), None without one; a
        ConfigError naming the field for a bad file, or for clients that could not talk to the listeners
        it describes (see :func:`check_web_clients`)."""
        if not self.web_config_file:
            return None
        from model.webconfig import load_web_config

        web = load_web_config(self.web_config_file)
        check_web_clients(self, web)
        return web

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


def check_web_clients(config: Config, web) -> None:
    """Shardmon's own clients must be able to call listeners secured by ``web``: TLS on both sides or
    neither, a client certificate when the listeners require one, credentials when they ask for them."""
    ic = config.internal_client
    where = f"web_config_file ({config.web_config_file})"
    if web.tls:
        for field, tls in (("internal_client.tls_config", ic.tls_config), ("shards.tls", config.shard_tls())):
            if tls is None:
                raise ConfigError(f"{field}: required: {where} turns TLS on, so Shardmon's own clients must speak TLS")
        from model.webconfig import client_auth_policy

        try:
            policy = client_auth_policy(web.tls_server_config)
        except ValueError:
            policy = ""
        if policy in ("RequireAndVerifyClientCert", "RequireAnyClientCert"):
            for field, tls in (("internal_client.tls_config", ic.tls_config), ("shards.tls", config.shard_tls())):
                if not (tls.cert_file or tls.cert):
                    raise ConfigError(f"{field}.cert_file: required: {where} requires client certificates "
                                      f"(client_auth_type: {web.tls_server_config.client_auth_type})")
    else:
        for field, tls in (("internal_client.tls_config", ic.tls_config), ("shards.tls", config.shards.tls)):
            if tls is not None:
                raise ConfigError(f"{field}: set, but the listeners speak no TLS (no tls_server_config in {where})")
    if web.auth and ic.basic_auth is None:
        raise ConfigError(f"internal_client.basic_auth: required: {where} has basic_auth_users, so Shardmon's own "
                          "clients must authenticate")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("global" if part == "global_" else str(part))
    return out


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error as its position and problem, never quoting the file's lines (a configuration holds
    secrets, and a reload's error goes back to an HTTP caller)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "not valid YAML"
    if mark is None:
        return problem
    context = getattr(exc, "context", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


def parse_config(text: str, source: str = "<config>", base_dir: str | Path | None = None) -> Config:
    """Parse YAML text into a :class:`Config`; raises :class:`ConfigError` naming the field path.
    ``base_dir``: the folder a relative ``web_config_file`` is relative to (the file's folder)."""
    try:
        # libyaml's parser when PyYAML has it: linear, and it refuses absurd nesting at once, where the pure
        # Python parser recurses per level and turns quadratic on deep flow collections.
        raw = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {yaml_error(exc)}") from None
    except RecursionError:  # PyYAML's parser recurses once per level of nesting.
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, IndexError, OverflowError) as exc:  # PyYAML's constructors, on bad tagged scalars
        # The exception's text may quote the value (a secret, perhaps): only its kind is named.
        raise ConfigError(f"{source}: not valid YAML: a tagged value cannot be read ({type(exc).__name__})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "field not supported (unknown, or not implemented by Shardmon yet)"
            where = _loc(err["loc"])
            lines.append(f"{where}: {msg}" if where else msg)
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None
    web = config.web_config_file
    if web and base_dir is not None and not Path(web).is_absolute():
        config = config.model_copy(update={"web_config_file": str(Path(base_dir) / web)})
    return config


def load_config(path: str | Path) -> Config:
    """Load and check a configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    return parse_config(text, str(p), p.resolve().parent)
