"""What every ``shardmon`` subcommand shares: the configuration it runs with (``--config`` or the
embedded default), :class:`UsageError` (arguments that do not fit, exit code 2), the one line
``--check`` prints when all is well, and the log format of the services.
"""

from __future__ import annotations

import logging
from importlib import resources

from shardmon.model.config import Config, load_config, parse_config

DEFAULT_CONFIG = "default.yml"


def default_config_text() -> str:
    """The embedded default configuration (``shardmon/default.yml``): a whole local cluster."""
    return resources.files("shardmon").joinpath(DEFAULT_CONFIG).read_text()


def load(path: str | None) -> Config:
    """The configuration at ``path``, or the embedded default."""
    if path:
        return load_config(path)
    return parse_config(default_config_text(), "<embedded default config>")


class UsageError(Exception):
    """A subcommand's arguments do not fit together or with the configuration (exit code 2)."""


def _source(args) -> str:
    return args.config or "<embedded default config>"


def check_ok(args, summary: str, config: Config | None = None) -> int:
    """What ``--check`` prints when all is well (with how the listeners are secured, given ``config``)."""
    print(f"{_source(args)}: OK: {summary}" + (f"; {security_summary(config)}" if config is not None else ""))
    return 0


def security_summary(config: Config) -> str:
    """How the listeners are secured, checking the web config file (never printing a secret)."""
    web = config.web_config()
    if web is None:
        return "listeners: plain HTTP/gRPC, no authentication (no web_config_file)"
    parts = []
    if web.tls:
        policy = web.tls_server_config.client_auth_type or "NoClientCert"
        parts.append(f"TLS ({policy})")
    else:
        parts.append("no TLS")
    parts.append(f"basic auth ({len(web.basic_auth_users)} users)" if web.auth else "no authentication")
    return "listeners: " + ", ".join(parts) + f" (web_config_file {config.web_config_file})"


def setup_logging(verbose: bool = False) -> None:
    """The services' log lines: time, level, logger, message (DEBUG and up with ``-v``)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
