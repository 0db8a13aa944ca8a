"""The one HTTP edge of every Shardmon listener: how an aiohttp app is built, secured and served.

:func:`make_app` gives every listener the same middleware stack, outermost first:

1. **security**, from the web config (:mod:`shardmon.model.webconfig`): with ``basic_auth_users``, a request
   without the right ``Authorization: Basic`` gets 401 with ``WWW-Authenticate: Basic`` (exporter-toolkit's
   answer), counted in ``shardmon_<component>_auth_failures_total{listener="http",reason}``; bcrypt runs
   off the event loop and its results are cached. ``http_server_config.headers`` are added to every
   response (401s and 404s included).
2. the app's own middlewares (e.g. request metrics), which therefore see the final status of errors;
3. **errors**: a :class:`~shardmon.model.errors.ShardmonError` raised by a handler leaves as its status once,
   here, rendered by the app's renderer (Prometheus's JSON envelope by default, plain text for the
   receiver); an unexpected exception is logged and answered 500 without its details.

:func:`listen` serves an app on ``host:port`` with the TLS context of ``tls_server_config`` (when the web
config has one); :func:`serve_in_thread` does the same on a thread of its own (for processes whose main
thread is not an event loop: the ingest service, Ray actors' ``/metrics``). :func:`metrics_app` is the
``/metrics`` app of a process's prometheus_client registry, for the components that serve nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import REGISTRY, Counter
from prometheus_client.exposition import choose_encoder

from shardmon.model.errors import (
    BadRequestError,
    BodyTooLargeError,
    ConfigError,
    ExpositionError,
    InvalidWriteError,
    LifecycleDisabledError,
    PermissionDeniedError,
    QueryError,
    ShardmonError,
    ShardOverloadedError,
    UnauthenticatedError,
)
from shardmon.model.webconfig import BasicAuthVerifier, WebConfig, server_ssl_context

log = logging.getLogger(__name__)

#: Prometheus's HTTP status of each ``errorType`` (web/api/v1).
QUERY_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "unavailable": 503, "canceled": 499,
                "internal": 500, "not_found": 404}

ErrorRenderer = Callable[[ShardmonError, int], web.StreamResponse]

_AUTH_FAILURES: dict[str, Counter] = {}
_VERIFIERS: dict[int, BasicAuthVerifier] = {}


def auth_failures(component: str) -> Counter:
    """``shardmon_<component>_auth_failures_total{listener, reason}``: requests refused for their
    credentials (``no_credentials``, ``wrong_credentials``), per listener kind (``http``, ``grpc``)."""
    c = _AUTH_FAILURES.get(component)
    if c is None:
        c = _AUTH_FAILURES[component] = Counter(
            f"shardmon_{component}_auth_failures_total",
            "Requests refused for missing or wrong credentials (web config basic_auth_users), by listener and reason.",
            ["listener", "reason"])
    return c


def verifier_of(web_config: WebConfig) -> BasicAuthVerifier:
    """One verifier (and bcrypt cache) per web config per process, shared by its listeners."""
    v = _VERIFIERS.get(id(web_config))
    if v is None:
        v = _VERIFIERS[id(web_config)] = BasicAuthVerifier(web_config.basic_auth_users)
    return v


# -- errors: the one table from the error tree to HTTP ----------------------------------------------


def http_status_of(exc: ShardmonError) -> int:
    """The HTTP status of an error: a query error's Prometheus status; 400 for input that can never be
    accepted (413 for a body too large); 403 for an API the configuration leaves off, 401 for missing or
    wrong credentials; 429 for an overloaded shard and 503 for anything else retryable (clients retry
    both); 500 otherwise."""
    if isinstance(exc, QueryError):
        return QUERY_STATUS.get(exc.error_type, 500)
    if isinstance(exc, BodyTooLargeError):
        return 413
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, UnauthenticatedError):
        return 401
    if isinstance(exc, (BadRequestError, ConfigError, ExpositionError, InvalidWriteError)):
        return 400
    if isinstance(exc, ShardOverloadedError):
        return 429
    if exc.retryable:
        return 503
    return 500


def error_type_of(exc: ShardmonError) -> str:
    """Prometheus's ``errorType`` of an error (a disabled admin or lifecycle API: ``unavailable``, as
    Prometheus's disabled admin API says)."""
    if isinstance(exc, QueryError):
        return exc.error_type
    if isinstance(exc, PermissionDeniedError):
        return "unavailable"
    if isinstance(exc, (BadRequestError, ConfigError, ExpositionError, InvalidWriteError)):
        return "bad_data"
    if exc.retryable:
        return "unavailable"
    return "internal"


def prometheus_error(exc: ShardmonError, status: int) -> web.Response:
    """Prometheus's error envelope: ``{"status":"error","errorType":...,"error":...}``."""
    body = json.dumps({"status": "error", "errorType": error_type_of(exc), "error": str(exc)})
    return web.Response(text=body, status=status, content_type="application/json")


def lifecycle_error(exc: ShardmonError, status: int) -> web.Response:
    """The error renderer of the lifecycle APIs (ingest service, ruler service): Prometheus's envelope, but
    a refused ``/-/reload`` in plain text, Prometheus's words first."""
    if isinstance(exc, LifecycleDisabledError):
        return web.Response(status=status, text=str(exc))
    return prometheus_error(exc, status)


def counting_middleware(counter: Counter, handlers: Iterable[str]):
    """A middleware counting the requests of the named handlers in ``counter`` (labels handler, code): the
    final status, errors rendered included."""
    counted = frozenset(handlers)

    @web.middleware
    async def count(request: web.Request, handler) -> web.StreamResponse:
        name = getattr(request.match_info.handler, "__name__", "")
        if name not in counted:
            return await handler(request)
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            counter.labels(name, str(exc.status)).inc()
            raise
        counter.labels(name, str(resp.status)).inc()
        return resp

    return count


def text_error(exc: ShardmonError, status: int) -> web.Response:
    """The error as one line of text (the receiver's answers, as Prometheus's remote-write receiver)."""
    return web.Response(text=f"{exc}\n", status=status)


class _Unexpected(ShardmonError):
    pass


def _error_middleware(render: ErrorRenderer):
    @web.middleware
    async def errors(request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except ShardmonError as exc:
            status = http_status_of(exc)
            if status == 500:
                log.warning("%s %s failed: %s", request.method, request.path, exc)
            return render(exc, status)
        except Exception as exc:  # noqa: BLE001 - the edge: logged here, answered without details
            log.exception("%s %s failed", request.method, request.path)
            return render(_Unexpected(f"internal error ({type(exc).__name__}); see the server's log"), 500)

    return errors


def unauthorized(headers: dict[str, str] | None = None) -> web.Response:
    """exporter-toolkit's 401: ``WWW-Authenticate: Basic`` and Go's ``http.Error`` body."""
    return web.Response(status=401, text="Unauthorized\n", headers={
        "WWW-Authenticate": "Basic", "X-Content-Type-Options": "nosniff", **(headers or {})})


def _security_middleware(component: str, verifier: BasicAuthVerifier):
    failures = auth_failures(component)

    @web.middleware
    async def security(request: web.Request, handler) -> web.StreamResponse:
        why = await verifier.check(request.headers.get("Authorization"))
        if why:
            failures.labels("http", why).inc()
            return unauthorized()
        return await handler(request)

    return security


def make_app(component: str, web_config: WebConfig | None = None, *, render_error: ErrorRenderer = prometheus_error,
             middlewares: Iterable = (), **app_kwargs) -> web.Application:
    """An aiohttp app with Shardmon's middleware stack (see the module's doc). ``component`` names the
    auth failure metric (``shardmon_<component>_auth_failures_total``)."""
    stack = []
    if web_config is not None and web_config.auth:
        stack.append(_security_middleware(component, verifier_of(web_config)))
    stack.extend(middlewares)
    stack.append(_error_middleware(render_error))
    app = web.Application(middlewares=stack, **app_kwargs)
    headers = dict(web_config.http_server_config.headers) if web_config is not None else {}
    if headers:
        async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
            for name, value in headers.items():
                response.headers.setdefault(name, value)

        app.on_response_prepare.append(add_headers)
    return app


def ssl_context_of(web_config: WebConfig | None, field: str = "web_config_file"):
    """The server SSL context of the web config, None without TLS; ConfigError naming ``field``."""
    if web_config is None or not web_config.tls:
        return None
    try:
        return server_ssl_context(web_config)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{field}: {exc}") from None


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


async def listen(app: web.Application, address: str, field: str, web_config: WebConfig | None = None
                 ) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (TLS when the web config has it) until the runner is cleaned up;
    a ConfigError naming ``field`` when the address cannot be listened on."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = _split(address)
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context_of(web_config)).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"{field}: cannot listen on {address}: {exc.strerror or exc}") from exc
    return runner


def bound_address(runner: web.AppRunner) -> str:
    """``host:port`` the runner actually listens on (a port 0 resolved)."""
    host, port = runner.addresses[0][:2]
    return f"{host}:{port}"


def serve_in_thread(app: web.Application, address: str, field: str, web_config: WebConfig | None = None,
                    name: str = "http") -> tuple[str, Callable[[], None]]:
    """Serve ``app`` from a daemon thread with an event loop of its own. Returns the bound ``host:port``
    and a function that stops it; raises ConfigError when it cannot listen."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    result: list = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            runner = loop.run_until_complete(listen(app, address, field, web_config))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            result.append(exc)
            started.set()
            return
        result.append(runner)
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()
    started.wait(30)
    if not result:
        raise ConfigError(f"{field}: {address}: the listener did not start within 30 s")
    if isinstance(result[0], BaseException):
        raise result[0]

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return bound_address(result[0]), stop


async def _own_metrics(request: web.Request) -> web.Response:
    # As prometheus_client's own server: the format the Accept header asks for, gzip when accepted.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    resp = web.Response(body=encoder(REGISTRY), headers={"Content-Type": content_type})
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        resp.enable_compression(web.ContentCoding.gzip)
    return resp


def add_metrics_route(app: web.Application) -> None:
    """``GET /metrics``: this process's prometheus_client registry."""
    app.router.add_get("/metrics", _own_metrics)


def metrics_app(component: str, web_config: WebConfig | None = None) -> web.Application:
    """An app serving only ``/metrics`` (shards, the coordinator, the scrapers)."""
    app = make_app(component, web_config)
    add_metrics_route(app)
    return app
