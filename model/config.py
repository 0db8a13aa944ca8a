"""The configuration: one YAML file shaped like ``prometheus.yml`` plus Shardmon's own sections.

This module is the door: :class:`Config` (the whole file), :func:`parse_config` and :func:`load_config`
(YAML to a checked Config, errors naming the field path), and the section models re-exported from
where they are defined:

- :mod:`shardmon.model.scrape_config`: ``global`` and ``scrape_configs`` (Prometheus's fields, defaults and
  checks: a real ``prometheus.yml`` that uses only the supported fields loads unchanged), with
  :mod:`shardmon.model.http_config` (``<http_config>``), :mod:`shardmon.model.sd_config` (service discovery) and
  :mod:`shardmon.model.relabel_config` (relabeling);
- :mod:`shardmon.model.alerting_config`: ``alerting`` (Alertmanagers, alert relabeling, the notification
  queue);
- :mod:`shardmon.model.service_config`: ``shards``, ``ingest``, ``querier``, ``receiver``, ``local``, ``web`` and
  ``internal_client``, Shardmon's processes;
- :mod:`shardmon.model.units` (durations such as ``"15s"``, held as int milliseconds; sizes such as ``"512MB"``)
  and :mod:`shardmon.model.addresses` (``host:port``, Redis URLs, Ray addresses), the field types.

Every model forbids unknown fields, and every error names the field path, e.g.
``scrape_configs[0].scrape_interval: not a valid duration string: '5x'``.
"""

from __future__ import annotations

import glob
import re
import socket
import urllib.parse
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from shardmon.model.alerting_config import AlertingConfig, AlertmanagerConfig
from shardmon.model.config_base import ConfigModel
from shardmon.model.errors import ConfigError
from shardmon.model.http_config import TLSConfig
from shardmon.model.k8sapi_config import KubernetesMetricsConfig
from shardmon.model.scrape_config import (
    DEFAULT_SCRAPE_PROTOCOLS,
    PROTO_FIRST_SCRAPE_PROTOCOLS,
    GlobalConfig,
    ScrapeConfig,
    StaticConfig,
)
from shardmon.model.service_config import (
    IngestConfig,
    InternalClientConfig,
    LocalConfig,
    QuerierConfig,
    ReceiverConfig,
    RulesConfig,
    ShardNode,
    ShardsConfig,
    WebAPIConfig,
)
from shardmon.model.yaml_strict import StrictSafeLoader

__all__ = [
    "AlertingConfig", "AlertmanagerConfig", "Config", "GlobalConfig", "IngestConfig", "InternalClientConfig",
    "LocalConfig", "QuerierConfig", "ReceiverConfig", "RulesConfig", "ScrapeConfig", "ShardNode", "ShardsConfig",
    "StaticConfig", "WebAPIConfig",
    "check_web_clients", "load_config", "parse_config", "yaml_error",
]

#: Prometheus's check of a rule_files entry: at most one wildcard, in the last path component.
_RULE_PATH = re.compile(r"^[^*]*(\*[^/]*)?$")


class Config(ConfigModel):
    """The whole configuration."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global", description="Prometheus's defaults.")
    scrape_configs: list[ScrapeConfig] = Field(default_factory=list, description="The scrape jobs, as Prometheus's.")
    rule_files: list[str] = Field(
        default_factory=list,
        description="Rule files, as Prometheus's: paths or globs (a '*' only in the last path component), relative "
        "to this configuration file's folder.",
    )
    rules: RulesConfig = Field(default_factory=RulesConfig, description="How rule groups are evaluated.")
    alerting: AlertingConfig = Field(
        default_factory=AlertingConfig, description="Where alerts are sent: Alertmanagers and alert relabeling."
    )
    shards: ShardsConfig = Field(default_factory=ShardsConfig, description="The storage shards.")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="The scrapers on Ray.")
    querier: QuerierConfig = Field(default_factory=QuerierConfig, description="The query APIs.")
    kubernetes_metrics: KubernetesMetricsConfig | None = Field(
        None, description="Serve the Kubernetes metrics APIs (`shardmon k8s-api`, started by `shardmon up` when set).")
    receiver: ReceiverConfig | None = Field(None, description="Run a receiver (remote_write, push API).")
    local: LocalConfig = Field(default_factory=LocalConfig, description="What `shardmon up` starts besides the services.")
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
        from shardmon.model.webconfig import load_web_config

        web = load_web_config(self.web_config_file)
        check_web_clients(self, web)
        return web

    def external_url(self) -> str:
        """``web.external_url`` without a trailing ``/``, else ``http://<hostname>:<querier port>`` (as Prometheus
        derives its ``--web.external-url``): the base of alerts' ``generatorURL`` and of ``$externalURL``."""
        url = self.web.external_url
        if url is None:
            port = self.querier.http_address.rsplit(":", 1)[1]
            url = f"http://{socket.gethostname()}:{port}"
        parts = urllib.parse.urlsplit(url)
        path = parts.path.rstrip("/")
        if path and not path.startswith("/"):
            path = "/" + path
        return urllib.parse.urlunsplit(parts._replace(path=path))

    def rule_file_paths(self) -> list[str]:
        """The rule files the ``rule_files`` globs match now, in order (a glob matching nothing adds none, as in
        Prometheus)."""
        out: list[str] = []
        for pattern in self.rule_files:
            out.extend(sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern])
        return out

    @field_validator("rule_files")
    @classmethod
    def _rule_files(cls, value: list[str]) -> list[str]:
        for i, path in enumerate(value):
            if not _RULE_PATH.match(path):
                raise ValueError(f"[{i}]: invalid rule file path {path!r}")
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Config:
        if self.global_.scrape_protocols is None:  # As Prometheus's feature flag changes the default.
            protocols = PROTO_FIRST_SCRAPE_PROTOCOLS if self.ingest.native_histograms else DEFAULT_SCRAPE_PROTOCOLS
            object.__setattr__(self.global_, "scrape_protocols", list(protocols))
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
        from shardmon.model.webconfig import client_auth_policy

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


_YAML_LOADER = StrictSafeLoader


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
    km = config.kubernetes_metrics
    if km is not None and km.config_file and base_dir is not None and not Path(km.config_file).is_absolute():
        config = config.model_copy(update={"kubernetes_metrics": km.model_copy(
            update={"config_file": str(Path(base_dir) / km.config_file)})})
    if base_dir is not None and config.rule_files:
        config = config.model_copy(update={"rule_files": [
            p if Path(p).is_absolute() else str(Path(base_dir) / p) for p in config.rule_files]})
    return config


def load_config(path: str | Path) -> Config:
    """Load and check a configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    return parse_config(text, str(p), p.resolve().parent)
