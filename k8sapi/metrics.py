"""The Kubernetes metrics API service's own metrics (``shardmon_k8sapi_*``), served at its ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, disable_created_metrics

disable_created_metrics()

REQUESTS = Counter("shardmon_k8sapi_requests_total",
                   "Requests to the Kubernetes metrics APIs, by handler and status code (errors included).",
                   ["handler", "code"])
REQUEST_DURATION = Histogram("shardmon_k8sapi_request_duration_seconds",
                             "Request duration, by handler (provider calls included).", ["handler"],
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
AUTH_FAILURES = Counter("shardmon_k8sapi_auth_failures_total",
                        "Requests refused with 401, by reason: no_credentials (none, and anonymous_auth is off), "
                        "invalid_token (a bearer token neither token_auth_file nor a TokenReview accepts), "
                        "token_review_failed (the TokenReview could not be made), front_proxy_name_not_allowed "
                        "(a front-proxy certificate whose Common Name is not in requestheader_allowed_names), "
                        "certificate_not_accepted (a client certificate no configured authenticator accepts).",
                        ["reason"])

__all__ = ["AUTH_FAILURES", "REQUESTS", "REQUEST_DURATION"]
