"""``file_sd_configs``: target groups read from JSON or YAML files, as Prometheus's ``discovery/file``.

The files matching the patterns are re-read whenever the set of matching files or one of their
modification times, sizes or inodes changes (checked every ``poll_interval`` seconds, by default one:
no inotify dependency), and all of them every ``refresh_interval`` as a fallback. The i-th group of
file ``f`` has source ``"f:i"`` and the group label ``__meta_filepath`` = ``f``. A file that cannot be
read or parsed keeps the groups it had (the error is logged and counted in
``shardmon_sd_file_read_errors_total``); the groups of a file that disappeared, or that now has fewer
groups, are removed.
"""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
import time
from collections.abc import Callable, Sequence

import yaml

from shardmon.ingest.discovery.metrics import FILE_READ_ERRORS
from shardmon.ingest.discovery.targetgroup import TargetGroup, groups_with_meta, parse_groups
from shardmon.model.sd_config import FileSDConfig

log = logging.getLogger(__name__)

META_FILEPATH = "__meta_filepath"
DEFAULT_POLL_INTERVAL_S = 1.0

Send = Callable[[Sequence[TargetGroup]], None]
_Signature = tuple[int, int, int]  # mtime_ns, size, inode


def read_file(path: str) -> list[TargetGroup]:
    """The target groups of one file (JSON or YAML by extension); raises ``OSError`` or ``ValueError``."""
    with open(path, "rb") as f:
        content = f.read()
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        parsed = parse_groups(data, yaml_scalars=False, strict_fields=False)
    elif ext in (".yml", ".yaml"):
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {exc}") from None
        parsed = parse_groups(data, yaml_scalars=True, strict_fields=True)
    else:
        raise ValueError(f"unhandled file extension {ext!r}")
    return groups_with_meta(parsed, path, META_FILEPATH)


class FileDiscoverer:
    """Runs one ``file_sd_configs`` entry; :meth:`run` sends group updates until cancelled."""

    def __init__(self, cfg: FileSDConfig, *, poll_interval: float = DEFAULT_POLL_INTERVAL_S) -> None:
        self.cfg = cfg
        self.poll_interval = poll_interval
        self._last_counts: dict[str, int] = {}  # groups each file had at the last refresh

    def list_files(self) -> list[str]:
        """The files matching the patterns now, each once, sorted within a pattern."""
        seen: dict[str, None] = {}
        for pattern in self.cfg.files:
            try:
                for path in sorted(glob.glob(pattern)):
                    if os.path.isfile(path):
                        seen.setdefault(path, None)
            except OSError as exc:  # pragma: no cover - glob rarely raises
                log.error("file_sd: error expanding glob %r: %s", pattern, exc)
        return list(seen)

    def _signatures(self) -> dict[str, _Signature]:
        out = {}
        for path in self.list_files():
            try:
                st = os.stat(path)
            except OSError:
                continue
            out[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return out

    def refresh(self) -> list[TargetGroup]:
        """Read every file; the updates to send (unreadable files keep their groups; vanished groups
        are removed with empty groups), as Prometheus's refresh."""
        updates: list[TargetGroup] = []
        counts: dict[str, int] = {}
        for path in self.list_files():
            try:
                groups = read_file(path)
            except (OSError, ValueError) as exc:
                FILE_READ_ERRORS.inc()
                log.error("file_sd: error reading file %s: %s", path, exc)
                counts[path] = self._last_counts.get(path, 0)  # keep its previous groups
                continue
            updates.extend(groups)
            counts[path] = len(groups)
        for path, n in self._last_counts.items():
            m = counts.get(path, 0)
            for i in range(m, n):
                updates.append(TargetGroup.empty(f"{path}:{i}"))
        self._last_counts = counts
        return updates

    async def run(self, send: Send) -> None:
        last: dict[str, _Signature] | None = None
        last_full = 0.0
        while True:
            sigs = await asyncio.to_thread(self._signatures)
            now = time.monotonic()
            if sigs != last or now - last_full >= self.cfg.refresh_interval / 1000:
                updates = await asyncio.to_thread(self.refresh)
                send(updates)
                last, last_full = sigs, now
            await asyncio.sleep(self.poll_interval)
