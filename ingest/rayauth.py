"""Ray's token authentication for a Ray cluster that is not loopback-only.

Ray (2.52 and later) authenticates every call to its control plane (GCS, raylets, the Ray Client
server, the dashboard) with one shared token when ``RAY_AUTH_MODE=token``. Shardmon turns it on for
every Ray it does not keep on loopback: ``shardmon ray-node`` (the head and the workers of a cluster,
as in compose) and ``shardmon ingest`` / ``ingest --status`` with an ``ingest.ray_address`` other than
``local``. The token comes from ``RAY_AUTH_TOKEN``, else the file ``ingest.ray_auth_token_file``, else
``RAY_AUTH_TOKEN_PATH``, else Ray's default ``~/.ray/auth_token``; ``ray-node --head`` writes a new
random one (256 bits, mode 0600) to that file when it does not exist. Every node and the ingest service
must read the same token (a shared volume or secret).

A local Ray (``ingest.ray_address: local``) listens on loopback only and keeps Ray's authentication
off, as before: any process of the same machine can reach it. ``RAY_AUTH_MODE=disabled`` in the
environment turns it off on a cluster too (logged as a warning).

This module sets environment variables only; it does not import Ray.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from shardmon.model.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_TOKEN_PATH = Path.home() / ".ray" / "auth_token"
FIELD = "ingest.ray_auth_token_file"


def token_auth_env(token_file: str | None, *, create: bool = False,
                   environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment variables that make Ray use token authentication (to set before Ray starts or
    connects). ``create``: write a new token to the file when there is none (the head node). A
    ConfigError naming the field when no token can be found."""
    mode = environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.strip().lower() not in ("token", ""):
        log.warning("Ray token authentication is off (RAY_AUTH_MODE=%s): anyone who can reach the Ray "
                    "cluster's ports can run code on it", mode)
        return {}
    env = {"RAY_AUTH_MODE": "token"}
    if environ.get("RAY_AUTH_TOKEN"):
        return env
    path = Path(token_file or environ.get("RAY_AUTH_TOKEN_PATH") or DEFAULT_TOKEN_PATH)
    env["RAY_AUTH_TOKEN_PATH"] = str(path)
    if path.is_file() and path.read_text().strip():
        return env
    if not create:
        raise ConfigError(f"{FIELD}: no Ray authentication token at {path}: the Ray head (shardmon ray-node --head) "
                          "writes one there; every node and the ingest service need the same token (or set "
                          "RAY_AUTH_TOKEN)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    log.info("wrote a new Ray authentication token to %s", path)
    return env
