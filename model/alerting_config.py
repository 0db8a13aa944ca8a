"""The ``alerting`` section of the configuration: where alerts are sent, as Prometheus 2.42's
``AlertingConfig`` and ``AlertmanagerConfig`` read it, plus the notifier's command-line setting of
Prometheus as a field.

- :class:`AlertingConfig`: ``alert_relabel_configs`` (applied to every alert after the external labels;
  an alert relabeled to nothing is not sent), ``alertmanagers``, and ``notification_queue_capacity``
  (Prometheus's ``--alertmanager.notification-queue-capacity``). The resend delay is ``rules.resend_delay``.
- :class:`AlertmanagerConfig`: one set of Alertmanagers sharing how they are found and called:
  ``static_configs`` and the service discovery configs a scrape config takes, ``relabel_configs`` (on
  ``__address__``, ``__scheme__``, ``__alerts_path__`` and the discovered labels), ``scheme``,
  ``path_prefix``, ``timeout`` (10s), ``api_version`` and the ``<http_config>`` fields it extends.

Only Alertmanager's API v2 is spoken: ``api_version: v1`` (deprecated, still accepted by Prometheus 2.42,
gone from Alertmanager 0.27) is refused with an error saying so. Durations are held as int milliseconds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shardmon.model.config_base import ConfigModel
from shardmon.model.http_config import HTTPClientConfig
from shardmon.model.relabel_config import RelabelConfig
from shardmon.model.scrape_config import StaticConfig
from shardmon.model.sd_config import FileSDConfig, HTTPSDConfig, KubernetesSDConfig
from shardmon.model.units import Duration

__all__ = ["ALERTS_PATH_LABEL", "AlertingConfig", "AlertmanagerConfig", "alerts_path"]

#: The label holding the path alerts are posted to (Prometheus's ``__alerts_path__``), relabelable.
ALERTS_PATH_LABEL = "__alerts_path__"


def _no_null_rules(v: Any, what: str) -> Any:
    if isinstance(v, list) and any(item is None for item in v):
        raise ValueError(f"empty or null {what} relabeling rule")
    return v


def alerts_path(path_prefix: str, api_version: str = "v2") -> str:
    """The path alerts are posted to: ``<path_prefix>/api/v2/alerts``, cleaned as Go's ``path.Join``
    (one leading ``/``, no doubled or trailing ``/``, ``.`` and ``..`` resolved)."""
    parts: list[str] = []
    for part in f"{path_prefix}/api/{api_version}/alerts".split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


class AlertmanagerConfig(HTTPClientConfig):
    """One ``alerting.alertmanagers`` entry: a set of Alertmanagers (static or discovered) and how to
    call them (its ``<http_config>`` fields are inline, as in ``prometheus.yml``)."""

    static_configs: list[StaticConfig] = Field(default_factory=list, description="Alertmanagers written here.")
    file_sd_configs: list[FileSDConfig] = Field(default_factory=list, description="Alertmanagers from files.")
    http_sd_configs: list[HTTPSDConfig] = Field(default_factory=list, description="Alertmanagers from HTTP endpoints.")
    kubernetes_sd_configs: list[KubernetesSDConfig] = Field(
        default_factory=list, description="Alertmanagers from the Kubernetes API."
    )
    relabel_configs: list[RelabelConfig] = Field(
        default_factory=list,
        description="Relabeling of the discovered Alertmanagers (__address__, __scheme__, __alerts_path__ and the "
        "discovered __meta_* labels); one relabeled to nothing is not called.",
    )
    scheme: Literal["http", "https"] = Field("http", description="The URL scheme of the requests to Alertmanager.")
    path_prefix: str = Field("", description="Put in front of /api/v2/alerts (an Alertmanager under a route prefix).")
    timeout: Duration = Field(10_000, description="Timeout of one request sending a batch of alerts.")
    api_version: str = Field("v2", description="The Alertmanager API version: only v2 (POST /api/v2/alerts).")

    @field_validator("relabel_configs", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> Any:
        return _no_null_rules(v, "Alertmanager target")

    @field_validator("api_version", mode="before")
    @classmethod
    def _api_version(cls, v: Any) -> Any:
        if v == "v1":
            raise ValueError("Alertmanager API v1 is not supported: Shardmon speaks only v2 (v1 is deprecated, "
                             "and removed from Alertmanager 0.27); use api_version: v2, the default")
        if v != "v2":
            raise ValueError(f"expected Alertmanager api version to be one of [v1 v2] but got {v}")
        return v

    @model_validator(mode="after")
    def _static_targets(self) -> AlertmanagerConfig:
        if not self.relabel_configs:  # As Prometheus: a URL in a target is only possible with relabeling.
            for i, group in enumerate(self.static_configs):
                for target in group.targets:
                    if "/" in target:
                        raise ValueError(f"static_configs[{i}].targets: {target!r} is not a valid hostname")
        return self

    def alerts_path(self) -> str:
        """``__alerts_path__`` before relabeling: ``<path_prefix>/api/v2/alerts``."""
        return alerts_path(self.path_prefix, self.api_version)


class AlertingConfig(ConfigModel):
    """The ``alerting`` section: Prometheus's fields, plus two of its command-line flags as fields."""

    alert_relabel_configs: list[RelabelConfig] = Field(
        default_factory=list,
        description="Relabeling of every alert (after the external labels are added); an alert relabeled to "
        "nothing is not sent (counted in shardmon_notifications_relabel_dropped_total).",
    )
    alertmanagers: list[AlertmanagerConfig] = Field(default_factory=list, description="Where alerts are sent.")
    notification_queue_capacity: int = Field(
        10_000, ge=1,
        description="Alerts waiting to be sent, at most (Prometheus's --alertmanager.notification-queue-capacity); "
        "when full the oldest are dropped and counted in shardmon_notifications_dropped_total.",
    )

    @field_validator("alert_relabel_configs", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> Any:
        return _no_null_rules(v, "alert")
