"""The ``prometheus.yml`` part of the configuration: the ``global`` section and ``scrape_configs`` entries.

Field names, defaults and checks are Prometheus 2.42's, so a real ``prometheus.yml`` that uses only the
supported fields loads unchanged. A :class:`ScrapeConfig` extends
:class:`shardmon.model.http_config.HTTPClientConfig` (Prometheus's ``<http_config>`` fields inline); its
discovery entries are in :mod:`shardmon.model.sd_config`, its relabeling rules in :mod:`shardmon.model.relabel_config`.
:meth:`ScrapeConfig.resolved` fills in the global defaults (:class:`shardmon.model.config.Config` does it when
the file loads). Durations are held as int milliseconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shardmon.model.config_base import ConfigModel, check_label_names
from shardmon.model.http_config import HTTPClientConfig
from shardmon.model.relabel_config import RelabelConfig
from shardmon.model.sd_config import FileSDConfig, HTTPSDConfig, KubernetesSDConfig
from shardmon.model.units import Duration, Size

#: Prometheus's scrape protocols and the media types the Accept header names for them.
SCRAPE_PROTOCOL_HEADERS = {
    "PrometheusProto": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
    "PrometheusText0.0.4": "text/plain;version=0.0.4",
    "OpenMetricsText0.0.1": "application/openmetrics-text;version=0.0.1",
    "OpenMetricsText1.0.0": "application/openmetrics-text;version=1.0.0",
}
#: Prometheus's default ``scrape_protocols``, and its default with native histograms enabled.
DEFAULT_SCRAPE_PROTOCOLS = ("OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText0.0.4")
PROTO_FIRST_SCRAPE_PROTOCOLS = ("PrometheusProto", *DEFAULT_SCRAPE_PROTOCOLS)


def check_scrape_protocols(protocols: list[str]) -> list[str]:
    """Prometheus's checks of a ``scrape_protocols`` list, worded as Prometheus words them."""
    if not protocols:
        raise ValueError("scrape_protocols cannot be empty")
    seen: set[str] = set()
    for p in protocols:
        if p.lower() in seen:
            raise ValueError(f"duplicated protocol in scrape_protocols, got [{' '.join(protocols)}]")
        if p not in SCRAPE_PROTOCOL_HEADERS:
            raise ValueError(f"scrape_protocols: unknown scrape protocol {p}, supported: "
                             f"[{' '.join(sorted(SCRAPE_PROTOCOL_HEADERS))}]")
        seen.add(p.lower())
    return protocols


class GlobalConfig(ConfigModel):
    """Prometheus's ``global`` section (the subset Shardmon acts on)."""

    scrape_interval: Duration = Field(60_000, description="How often to scrape targets by default.")
    scrape_timeout: Duration | None = Field(None, description="Scrape timeout by default (10s, at most the interval).")
    evaluation_interval: Duration = Field(60_000, description="How often to evaluate rules.")
    rule_query_offset: Duration = Field(
        0, description="How far into the past rule groups query (Prometheus 2.53's rule_query_offset): a group "
        "evaluated at slot T queries at T - offset and writes its output at T - offset, so samples that arrive late "
        "(remote write) are seen. A group's own query_offset overrides it.")
    external_labels: dict[str, str] = Field(default_factory=dict, description="Labels added when talking to external systems.")
    scrape_protocols: list[str] | None = Field(
        None, description="The exposition formats offered to targets, most wanted first (Prometheus's "
        "scrape_protocols: PrometheusProto, OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText0.0.4). "
        "Default: the three text formats, OpenMetrics first; with ingest.native_histograms, PrometheusProto first.")

    @field_validator("scrape_protocols")
    @classmethod
    def _protocols(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_scrape_protocols(v)

    @field_validator("external_labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_label_names(v)

    @model_validator(mode="after")
    def _timeout(self) -> GlobalConfig:
        if self.scrape_timeout is None:
            object.__setattr__(self, "scrape_timeout", min(10_000, self.scrape_interval))
        elif self.scrape_timeout > self.scrape_interval:
            raise ValueError("global scrape timeout greater than scrape interval")
        return self


class StaticConfig(ConfigModel):
    """A target group: addresses and the labels they all get."""

    targets: list[str] = Field(default_factory=list, description="host:port addresses.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of every target in the group.")

    # No check of the addresses here: as in Prometheus, a target may be a URL that relabeling moves into
    # a parameter (blackbox probes); the address left after relabeling is checked (ingest/target.py).

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_label_names(v)


class ScrapeConfig(HTTPClientConfig):
    """One ``scrape_configs`` entry, with Prometheus's field names and defaults; the scrapes' HTTP client
    settings (``basic_auth``, ``authorization``, ``tls_config``, ``proxy_url``...) are the fields of
    :class:`HTTPClientConfig` it extends, checked as Prometheus checks them."""

    job_name: str = Field(min_length=1, description="The job label of every target of this config.")
    scrape_interval: Duration | None = Field(None, description="Defaults to the global scrape_interval.")
    scrape_timeout: Duration | None = Field(None, description="Defaults to the global scrape_timeout.")
    metrics_path: str = Field("/metrics", description="HTTP path of the metrics.")
    scheme: Literal["http", "https"] = Field("http", description="The scheme of the scrape requests.")
    honor_labels: bool = Field(False, description="Keep the target's job/instance labels on conflict.")
    honor_timestamps: bool = Field(True, description="Use the timestamps the target exposes.")
    params: dict[str, list[str]] = Field(default_factory=dict, description="URL parameters of the scrape.")
    static_configs: list[StaticConfig] = Field(default_factory=list, description="Target groups written here.")
    file_sd_configs: list[FileSDConfig] = Field(default_factory=list, description="Target groups from files.")
    http_sd_configs: list[HTTPSDConfig] = Field(default_factory=list, description="Target groups from HTTP endpoints.")
    kubernetes_sd_configs: list[KubernetesSDConfig] = Field(
        default_factory=list, description="Targets from the Kubernetes API."
    )
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
    scrape_protocols: list[str] | None = Field(
        None, description="The exposition formats offered to this job's targets, most wanted first (Prometheus's "
        "scrape_protocols); defaults to the global scrape_protocols.")
    scrape_classic_histograms: bool = Field(
        False, description="Also keep the classic _bucket/_count/_sum series of a histogram exposed with native "
        "buckets too (Prometheus's scrape_classic_histograms); a histogram without native data is always classic.")
    native_histogram_bucket_limit: int = Field(
        0, ge=0, description="Buckets a native histogram may have (Prometheus's native_histogram_bucket_limit): one "
        "with more is reduced in resolution until it fits; one that cannot fit even at schema -4 fails the "
        "scrape. 0: no limit.")

    @field_validator("scrape_protocols")
    @classmethod
    def _protocols(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_scrape_protocols(v)

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
        protocols = self.scrape_protocols or glob.scrape_protocols or list(DEFAULT_SCRAPE_PROTOCOLS)
        return self.model_copy(update={"scrape_interval": interval, "scrape_timeout": timeout,
                                       "scrape_protocols": protocols})

