"""Shardmon's own sections of the configuration: the processes and how they reach each other.

``shards`` (each shard's address and Redis; replication, blocks, retention, limits), ``ingest`` (the
scrapers on Ray), ``querier`` (the query APIs and their limits), ``receiver`` (remote_write and the
push API), ``local`` (what ``shardmon up`` starts besides the services), ``web`` (the lifecycle and
admin endpoints) and ``internal_client`` (how Shardmon calls its own listeners). Addresses are checked
as they load (:mod:`shardmon.model.addresses`); durations are held as int milliseconds, sizes as int bytes
(:mod:`shardmon.model.units`). :class:`shardmon.model.config.Config` puts the sections together.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from shardmon.model.addresses import HostPort, RayAddress, RedisURL, split_url_password
from shardmon.model.config_base import ConfigModel
from shardmon.model.errors import ConfigError
from shardmon.model.http_config import BasicAuth, TLSConfig
from shardmon.model.label_limits import LabelLimits
from shardmon.model.units import Duration, Size


class ShardNode(ConfigModel):
    """One storage shard: its gRPC address and its own Redis."""

    id: int = Field(ge=0, description="Stable shard id; series are hashed onto ids, not list positions.")
    address: HostPort = Field(description="host:port of the shard's gRPC server.")
    redis_url: RedisURL = Field(
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
    metrics_address: HostPort | None = Field(None, description="host:port for the shard's own /metrics.")

    @model_validator(mode="before")
    @classmethod
    def _password_out_of_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("redis_url"), str):
            url, password = split_url_password(data["redis_url"])
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


class ShardsConfig(ConfigModel):
    """The ``shards`` section: the storage shards, and how each keeps its series (blocks, retention, limits)."""

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


class IngestConfig(ConfigModel):
    """The ``ingest`` section: the scrapers on Ray and how they send samples to the shards."""

    # Before `scrapers`, whose check reads it.
    max_scrapers: int = Field(
        64, ge=1,
        description="Most scrapers the ingest service runs: bounds ingest.scrapers and runtime scaling "
        "(POST /api/v1/scrapers, `shardmon scale`), so that one request cannot ask Ray for thousands of actors.",
    )
    scrapers: int = Field(2, ge=1, description="Number of scraper actors (at most max_scrapers).")
    native_histograms: bool = Field(
        False, description="Ingest native histograms from scrapes, as Prometheus's --enable-feature=native-histograms: "
        "the protobuf exposition format's native histograms are kept as histogram samples, and the default "
        "global.scrape_protocols puts PrometheusProto first. Off: a protobuf histogram is read as its classic "
        "series only (_count, _sum and its classic buckets, a +Inf bucket at least; native buckets are not kept).")
    ray_address: RayAddress = Field(
        "local",
        description='"local" starts a Ray of its own; else a cluster address: the head\'s host:port, or '
        "ray://host:port (Ray Client).",
    )
    http_address: HostPort | None = Field(
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
    write_timeout: Duration = Field(10_000, description="Timeout of one Write call to a shard (a timed-out Write is retried).")
    retry_backoff_min: Duration = Field(50, description="First wait before a failed Write is retried (then doubled).")
    retry_backoff_max: Duration = Field(5_000, description="Longest wait between retries of a failed Write.")
    self_monitoring: bool = Field(
        True, description="Scrape Shardmon's own components (job \"shardmon\", label component: shard, querier, "
        "receiver, ingest, coordinator, scraper, and with rule_files the ruler service (rules) and each ruler) "
        "without configuring them."
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


class QuerierConfig(ConfigModel):
    """The ``querier`` section: the query APIs and the limits of one query."""

    http_address: HostPort = Field("127.0.0.1:9190", description="host:port of the Prometheus HTTP API.")
    grpc_address: HostPort = Field("127.0.0.1:9191", description="host:port of the gRPC Query API.")
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
    aggregation_pushdown: bool = Field(
        True,
        description="Compute sum, count, min, max, avg, group, topk, bottomk and count_values of a selector (or of "
        "rate, increase or *_over_time of one) as partial aggregates in each shard and merge them here, instead of "
        "fetching every series (the same answer, but sums and means over several shards may add in another order: "
        "their last bits can differ). Not with shards.replication_factor > 1, where the series are fetched. false: "
        "always fetch the series.",
    )
    enable_experimental_functions: bool = Field(
        False,
        description="Let PromQL's experimental functions of Prometheus 2.53 parse (mad_over_time, sort_by_label, "
        "sort_by_label_desc), as Prometheus's --enable-feature=promql-experimental-functions; without it a query "
        'calling one fails with 400 and Prometheus\'s parse error (function "sort_by_label" is not enabled).',
    )
    slow_query_threshold: Duration = Field(
        1000,
        description='A PromQL query (instant or range, over the HTTP or the gRPC API) that runs this long or longer is '
        "kept in the slow query log (the Cluster page, /api/v1/status/cluster) and counted in "
        'shardmon_querier_slow_queries_total, as Mimir\'s log_queries_longer_than; "0": none is kept.',
    )
    slow_query_log_size: int = Field(
        100, ge=1, le=10_000,
        description="How many of the latest slow queries the querier keeps in memory (older ones are forgotten; the "
        "counter goes on).",
    )


class ReceiverConfig(ConfigModel):
    """The receiver process: Prometheus remote_write and a Pushgateway-compatible push API."""

    http_address: HostPort = Field("127.0.0.1:9192", description="host:port of POST /api/v1/write and the receiver's /metrics.")
    pushgateway_address: HostPort | None = Field(
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


class InternalClientConfig(ConfigModel):
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


class LocalConfig(ConfigModel):
    """What ``shardmon up`` starts on one machine besides the services."""

    data_dir: str = Field(".shardmon", description="Folder for Redis data and logs.")
    start_redis: bool = Field(True, description="Start a redis-server for every shard's loopback redis_url.")
    demo_targets: list[HostPort] = Field(default_factory=list, description="host:port of built-in demo targets to serve.")
    stop_grace_period: Duration = Field(
        15_000,
        description="How long `shardmon up`, stopping, lets a child exit after SIGTERM before it kills it "
        "(SIGKILL). Children stop in three stages (ingest and receiver; querier, shards and demo targets; "
        "Redis), each stage's children at once, so stopping takes at most three of these.",
    )


class WebAPIConfig(ConfigModel):
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
    external_url: str | None = Field(
        None,
        description="The URL users reach Shardmon's querier at (Prometheus's --web.external-url): the base of "
        "alerts' generatorURL and templates' $externalURL. Unset: http://<this host's name>:<querier.http_address's "
        "port>, as Prometheus derives its own.",
    )

    @field_validator("external_url")
    @classmethod
    def _external_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v[:1] in "'\"" or v[-1:] in "'\"":
            raise ValueError("URL must not begin or end with quotes")
        url = urllib.parse.urlsplit(v)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"{v!r} is not an absolute http(s) URL")
        return v



class RulesConfig(ConfigModel):
    """How rule groups are evaluated (Prometheus's ``--rules.alert.*`` flags, as configuration fields)."""

    for_outage_tolerance: Duration = Field(
        3_600_000,
        description="Max time to tolerate an outage for restoring the 'for' state of alerts from ALERTS_FOR_STATE "
        "(Prometheus's --rules.alert.for-outage-tolerance).",
    )
    for_grace_period: Duration = Field(
        600_000,
        description="Minimum duration between an alert's restoration and its firing; alerts with a shorter 'for' "
        "are not restored (Prometheus's --rules.alert.for-grace-period).",
    )
    resend_delay: Duration = Field(
        60_000,
        description="Minimum time to wait before re-sending an alert to Alertmanager "
        "(Prometheus's --rules.alert.resend-delay).",
    )
    max_rulers: int = Field(
        64, ge=1,
        description="Most ruler actors the ruler service runs: bounds rules.rulers and runtime scaling "
        "(POST /api/v1/rulers, `shardmon scale --rulers`).",
    )
    rulers: int = Field(
        1, ge=1,
        description="Number of ruler actors (at most rules.max_rulers); rule groups are spread over them by "
        "a hash ring of file and group name. A reload that changes it rescales (a runtime scaling "
        "otherwise stays).",
    )
    http_address: HostPort | None = Field(
        None,
        description="host:port of the ruler service's API (/api/v1/rules, /api/v1/alerts, /api/v1/rulers, "
        "POST /-/reload), to which the querier passes /api/v1/rules and /api/v1/alerts while rule_files is set; "
        "none when unset (they answer empty).",
    )

    @field_validator("rulers")
    @classmethod
    def _rulers_bound(cls, v: int, info: ValidationInfo) -> int:
        bound = info.data.get("max_rulers")
        if bound is not None and v > bound:
            raise ValueError(f"{v} is more than rules.max_rulers ({bound})")
        return v
