"""The ruler service (``shardmon ruler``): the Ray driver that starts the ruler actors, rescales them and
reloads their rule files.

:class:`RulerService` writes the service's state (configuration, number of rulers; :mod:`shardmon.rules.checkpoint`)
under a new run id, then creates the rulers ``ruler-0`` ... (named actors, ``max_restarts=-1``), each of
which computes its own groups from that state (:mod:`shardmon.rules.assignment`). :meth:`RulerService.set_rulers`
rescales: the new state first, then the new rulers start, the rulers kept take their new groups, and the
rulers removed stop without staleness markers (their groups go on elsewhere). :meth:`RulerService.reload`
checks the new rule files (a bad one raises and keeps the running groups) and applies them on every ruler.
:func:`run` is the process: the API on ``rules.http_address`` (when the rules API module is there), SIGHUP
reloads, SIGTERM/SIGINT stop.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import RayError

from shardmon.ingest.ray_cluster import NAMESPACE, connect_service
from shardmon.model.config import Config
from shardmon.model.errors import BadRequestError, ConfigError, QueryUnavailableError, RuleFileError, ShardmonError
from shardmon.model.rule_config import parse_rule_text, read_rule_text
from shardmon.rules import assignment
from shardmon.rules.api import RulesAPI, serve
from shardmon.rules.checkpoint import delete_state, save_state
from shardmon.rules.ruler_actor import Ruler

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 120.0


def check_rule_files(config: Config) -> dict[str, str]:
    """The rule files of ``config``, path -> text, each read and checked here, once; RuleFileError (naming the
    file) for a bad one. The rulers get these texts, not the paths: every ruler evaluates the same version
    of the files, and no node but the service's needs them."""
    texts: dict[str, str] = {}
    errors: list[str] = []
    for path in config.rule_file_paths():
        try:
            texts[path] = read_rule_text(path)
            parse_rule_text(texts[path], path)
        except RuleFileError as exc:
            errors.extend(exc.errors or [str(exc)])
    if errors:
        raise RuleFileError(errors)
    return texts


class RulerService:
    """The rulers of one run of the service (see the module docstring). Connect Ray first."""

    def __init__(self, config: Config) -> None:
        self.texts = check_rule_files(config)
        self.run_id = uuid.uuid4().hex
        self.config = config
        self.n = config.rules.rulers
        self.handles: dict[str, ray.actor.ActorHandle] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start ``rules.rulers`` rulers and wait until each evaluates its groups."""
        with self._lock:
            save_state(self.run_id, self.config, self.n, self.texts)
            self._create(assignment.ruler_ids(self.n))
        log.info("ruler service running: %d rulers", self.n)

    def _create(self, ids: list[str]) -> None:
        remote = ray.remote(Ruler)
        for rid in ids:
            self.handles[rid] = remote.options(
                name=f"shardmon-{rid}", namespace=NAMESPACE, num_cpus=0, max_restarts=-1, max_task_retries=-1,
                max_concurrency=100,
            ).remote(self.config, rid, self.run_id, self.n, self.texts)
        ray.get([self.handles[rid].ready.remote() for rid in ids], timeout=CALL_TIMEOUT_S)

    def set_rulers(self, n: int) -> dict:
        """Run ``n`` rulers (1..``rules.max_rulers``, else BadRequestError); only groups whose owner
        changed move. Returns ``{"rulers", "moved"}`` (moved: group keys -> [old, new ruler])."""
        bound = self.config.rules.max_rulers
        if not 1 <= n <= bound:
            raise BadRequestError(f"count: {n} rulers is outside 1..{bound} (rules.max_rulers)")
        with self._lock:
            old = self.n
            if n == old:
                return {"rulers": n, "moved": {}}
            keys = self._group_keys()
            self.n = n
            save_state(self.run_id, self.config, n, self.texts)
            kept = assignment.ruler_ids(min(old, n))
            removed = [rid for rid in assignment.ruler_ids(old) if rid not in kept]
            if n > old:
                self._create(assignment.ruler_ids(n)[old:])  # they take their groups from the state at start
            ray.get([self.handles[rid].apply.remote(self.config, n, self.texts) for rid in kept], timeout=CALL_TIMEOUT_S)
            for rid in removed:
                handle = self.handles.pop(rid)
                try:
                    ray.get(handle.stop.remote(), timeout=30)
                except RayError as exc:
                    log.warning("%s did not stop cleanly: %s", rid, exc)
                ray.kill(handle, no_restart=True)
            moved = assignment.moves(keys, old, n)
            log.info("rulers %d -> %d: %d of %d groups moved", old, n, len(moved), len(keys))
            return {"rulers": n, "moved": {k: list(v) for k, v in moved.items()}}

    def reload(self, config: Config) -> dict:
        """Apply ``config`` (its rule files checked first: RuleFileError keeps the running groups) on every
        ruler, then ``rules.rulers`` when the new configuration changes it (a runtime scaling otherwise stays;
        ``rules.max_rulers`` bounds it), as the ingest service does with ``ingest.scrapers``."""
        texts = check_rule_files(config)
        with self._lock:
            old = self.config
            save_state(self.run_id, config, self.n, texts)
            self.config, self.texts = config, texts
            results = ray.get([h.apply.remote(config, self.n, texts) for h in self.handles.values()],
                              timeout=CALL_TIMEOUT_S)
        log.info("rule files reloaded: %s", results)
        answer: dict = {"rulers": results}
        if config.rules.rulers != old.rules.rulers:
            answer["scaled"] = self.set_rulers(min(config.rules.rulers, config.rules.max_rulers))
        return answer

    def _group_keys(self) -> list[str]:
        from shardmon.querier.rules import group_key

        return [group_key(path, g.name) for path, text in self.texts.items() for g in parse_rule_text(text, path).groups]

    def _each(self, method: str) -> list:
        handles = list(self.handles.values())
        return ray.get([getattr(h, method).remote() for h in handles], timeout=CALL_TIMEOUT_S)

    def groups(self) -> list[dict]:
        """Every ruler's ``/api/v1/rules`` group objects, by file and name."""
        out = [g for part in self._each("groups") for g in part]
        return sorted(out, key=lambda g: (g["file"], g["name"]))

    def alerts(self) -> list[dict]:
        """Every ruler's active alerts as ``/api/v1/alerts`` objects."""
        return [a for part in self._each("alerts") for a in part]

    def rulers(self) -> list[dict]:
        """Each ruler's :meth:`Ruler.info`."""
        return self._each("info")

    def stop(self) -> None:
        """Stop every ruler (no staleness markers: as Prometheus on shutdown) and delete the state."""
        with self._lock:
            for rid, handle in self.handles.items():
                try:
                    ray.get(handle.stop.remote(), timeout=30)
                except RayError as exc:
                    log.warning("%s did not stop cleanly: %s", rid, exc)
                ray.kill(handle, no_restart=True)
            self.handles.clear()
            try:
                delete_state()
            except Exception as exc:  # noqa: BLE001 - Ray going away: nothing to keep
                log.warning("ruler state not deleted: %s", exc)


def _ask(call: Callable[[], object]):
    try:
        return call()
    except RayError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ShardmonError):
            raise cause from exc
        raise QueryUnavailableError(f"rulers: {exc}") from exc


def _serve_api(service: RulerService, running: list[Config], reload: Callable[[], dict]):
    """Serve the rules API on ``rules.http_address`` (if set); returns its stop function or None."""
    address = running[0].rules.http_address
    if not address:
        return None
    api = RulesAPI(groups=lambda: _ask(service.groups), alerts=lambda: _ask(service.alerts),
                   rulers=lambda: _ask(service.rulers), scale=lambda n: _ask(lambda: service.set_rulers(n)),
                   reload=lambda: _ask(reload), config=lambda: running[0],
                   max_rulers=running[0].rules.max_rulers)
    return serve(api, address, running[0].web_config())


def run(config: Config, stop: threading.Event | None = None, ready_file: str | None = None,
        reload_config: Callable[[], Config] | None = None) -> None:
    """Run the ruler service until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None). A bad rule file
    raises RuleFileError before anything starts. SIGHUP (and the API's reload) calls ``reload_config`` and
    applies what it returns; a bad configuration or rule file is logged and the running groups stay."""
    service = RulerService(config)
    stop, reload_requested = connect_service(config, stop)
    running = [config]

    def reload() -> dict:
        if reload_config is None:
            raise ConfigError("this ruler service was started without a configuration file to reload")
        new = reload_config()
        result = service.reload(new)
        running[0] = new
        return result

    stop_api = None
    try:
        service.start()
        stop_api = _serve_api(service, running, reload)
        if ready_file:
            Path(ready_file).write_text("ready\n")
        while True:
            stop.wait(10.0)
            if reload_requested.is_set():
                reload_requested.clear()
                stop.clear()
                try:
                    reload()
                    log.info("configuration reloaded")
                except (ConfigError, RayError) as exc:
                    log.error("reload failed, the running groups stay: %s", exc)
                continue
            if stop.is_set():
                break
    finally:
        if stop_api is not None:
            stop_api()
        service.stop()
        ray.shutdown()
        log.info("ruler service stopped")
