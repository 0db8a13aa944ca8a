"""The querier's slow query log: the latest PromQL queries (instant and range, over the HTTP and the gRPC
API) that ran ``querier.slow_query_threshold`` or longer, kept in memory (at most
``querier.slow_query_log_size``, newest first) for the Cluster page and ``/api/v1/status/cluster``, and
counted in ``shardmon_querier_slow_queries_total{api, kind}``.

Each entry is what a person looks at to find who asked what: the expression and its parameters (as
Prometheus's query log writes them: ``time``, or ``start``, ``end`` and ``step``), when it started, how
long it took, the series and samples it loaded (the query's budget count), its outcome (``ok`` or the
error type) and the client (its IP, and the User-Agent over HTTP).
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from dataclasses import dataclass

from shardmon.querier import metrics


def rfc3339(unix_s: float) -> str:
    """Unix seconds as RFC 3339 with milliseconds, UTC (``2024-01-02T03:04:05.678Z``)."""
    t = dt.datetime.fromtimestamp(unix_s, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def peer_ip(peer: str) -> str:
    """The client's IP from a gRPC peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, ``unix:...``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]")
    return peer


def instant_params(query: str, time_ms: int) -> dict:
    return {"query": query, "time": rfc3339(time_ms / 1000)}


def range_params(query: str, start_ms: int, end_ms: int, step_ms: int) -> dict:
    return {"query": query, "start": rfc3339(start_ms / 1000), "end": rfc3339(end_ms / 1000), "step": step_ms / 1000}


@dataclass(frozen=True)
class SlowQuery:
    """One slow query, as the log keeps it."""

    api: str  # "http" or "grpc"
    kind: str  # "instant" or "range"
    params: dict  # instant_params / range_params
    started_s: float  # Unix seconds
    duration_s: float
    series: int
    samples: int
    outcome: str  # "ok", or the error type (bad_data, execution, timeout, canceled, unavailable, internal)
    client_ip: str = ""
    user_agent: str = ""

    def to_json(self) -> dict:
        """The entry in ``/api/v1/status/cluster``'s ``slowQueries.queries``."""
        return {
            "query": self.params.get("query", ""),
            "api": self.api,
            "kind": self.kind,
            "params": self.params,
            "startedAt": rfc3339(self.started_s),
            "durationSeconds": round(self.duration_s, 6),
            "series": self.series,
            "samples": self.samples,
            "outcome": self.outcome,
            "clientIP": self.client_ip,
            "userAgent": self.user_agent,
        }


class SlowQueryLog:
    """The latest ``size`` queries that took ``threshold_s`` or longer (threshold 0: none is kept).
    Thread-safe: queries end on the event loop of either API."""

    def __init__(self, threshold_s: float, size: int = 100) -> None:
        self.threshold_s = threshold_s
        self.size = size
        self._entries: collections.deque[SlowQuery] = collections.deque(maxlen=max(1, size))
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, querier_config) -> SlowQueryLog:
        """From the ``querier`` section (``slow_query_threshold``, ``slow_query_log_size``)."""
        return cls(querier_config.slow_query_threshold / 1000, querier_config.slow_query_log_size)

    def is_slow(self, duration_s: float) -> bool:
        return self.threshold_s > 0 and duration_s >= self.threshold_s

    def observe(self, entry: SlowQuery) -> bool:
        """Keep ``entry`` (and count it) if it was slow; whether it was."""
        if not self.is_slow(entry.duration_s):
            return False
        metrics.SLOW_QUERIES.labels(entry.api, entry.kind).inc()
        with self._lock:
            self._entries.append(entry)
        return True

    def entries(self) -> list[SlowQuery]:
        """The kept queries, newest first."""
        with self._lock:
            return list(reversed(self._entries))

    def to_json(self) -> dict:
        """``/api/v1/status/cluster``'s ``slowQueries``: the threshold (seconds), the size and the queries."""
        return {"thresholdSeconds": self.threshold_s, "size": self.size,
                "queries": [e.to_json() for e in self.entries()]}


__all__ = ["SlowQuery", "SlowQueryLog", "instant_params", "peer_ip", "range_params", "rfc3339"]
