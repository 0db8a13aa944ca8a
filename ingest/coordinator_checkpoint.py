"""The coordinator's checkpoint: what it changed at runtime, kept in Ray's internal key-value store.

Ray restarts the coordinator actor when its process dies by running its constructor again with the
arguments it was first created with, which would bring back the configuration and the number of
scrapers of the service's start. So the coordinator saves the last reloaded configuration and the last
``set_scrapers(N)`` here (the GCS keeps them, as Ray Serve's controller keeps its checkpoints), under a
run id the ingest service gives it; a restarted coordinator (same run id) resumes from them, a new
ingest service (a new run id) ignores them. The ingest service deletes the checkpoint when it stops.
"""

from __future__ import annotations

import logging

from ray import cloudpickle

from shardmon.ingest.ray_cluster import NAMESPACE
from shardmon.model.config import Config

#: The checkpoint's key in Ray's internal KV store (namespace NAMESPACE).
STATE_KEY = b"coordinator-state"

log = logging.getLogger(__name__)


def save_state(run_id: str, config: Config, scrapers: int) -> None:
    """Checkpoint the runtime state of the coordinator of ``run_id``."""
    from ray.experimental import internal_kv

    blob = cloudpickle.dumps({"run": run_id, "config": config, "scrapers": scrapers})
    internal_kv._internal_kv_put(STATE_KEY, blob, overwrite=True, namespace=NAMESPACE)


def load_state(run_id: str) -> dict | None:
    """The checkpoint of the coordinator of ``run_id``: ``{"config", "scrapers"}``; None when there is none
    (or it is another run's)."""
    from ray.experimental import internal_kv

    blob = internal_kv._internal_kv_get(STATE_KEY, namespace=NAMESPACE)
    if not blob:
        return None
    try:
        state = cloudpickle.loads(blob)
    except Exception as e:  # another version's checkpoint (its classes moved or gone): not ours to resume
        log.warning("ignoring an unreadable coordinator checkpoint (%s: %s)", type(e).__name__, e)
        return None
    return state if isinstance(state, dict) and state.get("run") == run_id else None


def delete_state() -> None:
    """Delete the checkpoint (whichever run's it is)."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(STATE_KEY, namespace=NAMESPACE)
