"""Service discovery: target groups from ``static_configs``, ``file_sd_configs``, ``http_sd_configs`` and
``kubernetes_sd_configs``, with Prometheus's config fields, sources and ``__meta_*`` label names.

Output
------
Every mechanism produces :class:`~shardmon.ingest.discovery.targetgroup.TargetGroup` values (defined in
:mod:`.targetgroup`, re-exported here), shaped as Prometheus's ``targetgroup.Group``::

    TargetGroup(source="pod/default/web-0",
                targets=[{"__address__": "10.1.2.3:8080", "__meta_kubernetes_pod_container_name": "web", ...}],
                labels={"__meta_kubernetes_namespace": "default", "__meta_kubernetes_pod_name": "web-0", ...})

``source`` identifies the group within its provider (one SD config entry): a later group with the same
source replaces the earlier one, and a group with no targets removes it. The labels of one target are
the group labels overridden by the target's own (:meth:`TargetGroup.label_sets`), exactly the label set
Prometheus hands to relabeling. ``__meta_*`` labels are for relabeling and are dropped afterwards (as
every ``__`` label is; see :mod:`shardmon.ingest.target`).

Sources, as Prometheus makes them: static ``"0"``, ``"1"``... (index in ``static_configs``), file
``"<path>:<i>"``, HTTP ``"<url>:<i>"``, Kubernetes ``"node/<name>"``, ``"pod/<ns>/<name>"``,
``"svc/<ns>/<name>"``, ``"endpoints/<ns>/<name>"``, ``"endpointslice/<ns>/<name>"``. Sources are unique
within a provider, not across the providers of a job: treat the list a job gets as a whole.

Manager
-------
:class:`shardmon.ingest.discovery.manager.DiscoveryManager` (also importable from here) runs every SD config of
every scrape config on the running asyncio loop and calls ``on_update(job_name, groups)`` (a plain
function or a coroutine function) whenever the list of a job's non-empty groups changes: static groups
first, then file, HTTP and Kubernetes providers in configuration order. Updates are coalesced: the
first change is delivered at once, further ones at most every ``update_interval`` seconds (5 s by
default, as Prometheus). A job that disappears on :meth:`~DiscoveryManager.apply_config` gets a last
``on_update(job, [])``::

    from shardmon.ingest.discovery import DiscoveryManager

    async def on_update(job: str, groups: list[TargetGroup]) -> None:
        ...  # turn groups into targets (label_sets(), then shardmon.ingest.target's rules) and reassign

    manager = DiscoveryManager(on_update)
    await manager.apply_config(config.scrape_configs)   # start; call again on reload (unchanged providers keep running)
    manager.groups("node")                               # the current groups of a job
    await manager.stop()

Mechanisms (modules of this package): :mod:`.file` (files polled for changes every second plus a full
re-read every ``refresh_interval``; a file that fails to parse keeps its previous groups and counts
``shardmon_sd_file_read_errors_total``), :mod:`.http` (polled every ``refresh_interval``; a failed
refresh keeps the last groups and counts ``shardmon_sd_http_failures_total``), :mod:`.kubernetes`
(list + watch of the API server, roles node, pod, service, endpoints, endpointslice; the groups and
their ``__meta_kubernetes_*`` labels built by :mod:`.kubegroups`; connection from ``api_server`` + HTTP
config, ``kubeconfig_file``, or the in-cluster service account, see :mod:`.kubeclient`). Metrics are in
:mod:`.metrics`.
"""

from shardmon.ingest.discovery.manager import DiscoveryManager
from shardmon.ingest.discovery.targetgroup import ADDRESS, TargetGroup, sanitize_label_name, static_groups

__all__ = ["ADDRESS", "DiscoveryManager", "TargetGroup", "sanitize_label_name", "static_groups"]
