"""The rulers' shared state in Ray's internal key-value store: the configuration in force, the rule files'
texts as the service read them (which say which groups exist) and the number of rulers, under the ruler
service's run id.

Ray restarts a dead ruler with the constructor arguments it was first created with, which may be an older
configuration and N than the ones in force after a reload or a rescale. So the service writes the state here
before it starts, rescales or reloads the rulers, and a ruler reads it in its constructor: from it and its
own id the ruler computes the groups it evaluates (:mod:`shardmon.rules.assignment`). A state of another run
(an earlier service's) is ignored; the service deletes it when it stops. As
:mod:`shardmon.ingest.coordinator_checkpoint` does for the scrape coordinator.
"""

from __future__ import annotations

import logging

from ray import cloudpickle

from shardmon.ingest.ray_cluster import NAMESPACE
from shardmon.model.config import Config

#: The state's key in Ray's internal KV store (namespace NAMESPACE).
STATE_KEY = b"ruler-state"

log = logging.getLogger(__name__)


def save_state(run_id: str, config: Config, rulers: int, texts: dict[str, str]) -> None:
    """Record the configuration, number of rulers and rule files (path -> text) of the ruler service ``run_id``."""
    from ray.experimental import internal_kv

    blob = cloudpickle.dumps({"run": run_id, "config": config, "rulers": rulers, "texts": texts})
    internal_kv._internal_kv_put(STATE_KEY, blob, overwrite=True, namespace=NAMESPACE)


def load_state(run_id: str) -> dict | None:
    """``{"config", "rulers", "texts"}`` of the ruler service ``run_id``; None when there is none (or another run's)."""
    from ray.experimental import internal_kv

    blob = internal_kv._internal_kv_get(STATE_KEY, namespace=NAMESPACE)
    if not blob:
        return None
    try:
        state = cloudpickle.loads(blob)
    except Exception as e:  # another version's state (its classes moved or gone): not ours
        log.warning("ignoring an unreadable ruler state (%s: %s)", type(e).__name__, e)
        return None
    return state if isinstance(state, dict) and state.get("run") == run_id else None


def delete_state() -> None:
    """Delete the state (whichever run's it is)."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(STATE_KEY, namespace=NAMESPACE)
