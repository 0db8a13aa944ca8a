"""The HTTP edge every listener is built with: basic auth as exporter-toolkit answers it, the web
config's response headers, errors translated once (Prometheus's JSON, or text), TLS from the web config."""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from shardmon.model import webconfig
from shardmon.model.errors import (
    BadQueryError,
    ConfigError,
    PermissionDeniedError,
    QueryCanceledError,
    QueryLimitError,
    ShardOverloadedError,
    ShardUnavailableError,
    UnauthenticatedError,
)
from shardmon.model.httpserver import listen, make_app, text_error
from shardmon.model.webconfig import parse_web_config
from tests.tlsutil import bcrypt_hash, make_certs

HASH = bcrypt_hash("right")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _app(web_config, **kwargs) -> web.Application:
    app = make_app("testhttp", web_config, **kwargs)

    async def ok(request):
        return web.Response(text="ok")

    async def bad_query(request):
        raise BadQueryError("parse error at char 3: unexpected")

    async def overloaded(request):
        raise ShardOverloadedError("shard 0 sheds load")

    async def down(request):
        raise ShardUnavailableError("shard 0 unreachable")

    async def config(request):
        raise ConfigError("scrape_configs[0].scrape_interval: not a valid duration")

    async def bug(request):
        raise KeyError("secret detail")

    async def off(request):
        raise PermissionDeniedError("admin APIs disabled (set web.enable_admin_api: true to enable them)")

    async def who(request):
        raise UnauthenticatedError("no credentials")

    async def over(request):
        raise QueryLimitError("query processing would load too many samples into memory in query execution",
                              "max_samples")

    async def gone(request):
        raise QueryCanceledError("query canceled: the client closed the connection")

    for path, handler in (("/ok", ok), ("/bad_query", bad_query), ("/overloaded", overloaded), ("/down", down),
                          ("/config", config), ("/bug", bug), ("/off", off), ("/who", who), ("/over", over),
                          ("/gone", gone)):
        app.router.add_get(path, handler)
    return app


def _run(app, fn):
    async def main():
        async with TestClient(TestServer(app)) as client:
            return await fn(client)

    return asyncio.run(main())


def _failures(reason: str) -> float:
    return REGISTRY.get_sample_value("shardmon_testhttp_auth_failures_total",
                                     {"listener": "http", "reason": reason}) or 0.0


def test_basic_auth_401_without_or_with_wrong_credentials_200_with_the_right_ones():
    web_config = parse_web_config(f"basic_auth_users:\n  alice: {HASH}\n"
                                  "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    before = {r: _failures(r) for r in ("no_credentials", "wrong_credentials")}

    async def calls(client):
        out = []
        for headers in ({}, _basic("alice", "wrong"), _basic("mallory", "right"), {"Authorization": "Bearer x"},
                        _basic("alice", "right")):
            resp = await client.get("/ok", headers=headers)
            out.append((resp.status, await resp.text(), dict(resp.headers)))
        return out

    out = _run(_app(web_config), calls)
    for status, body, headers in out[:4]:
        assert status == 401 and body == "Unauthorized\n"
        assert headers["WWW-Authenticate"] == "Basic"
        assert headers["X-Frame-Options"] == "deny"  # the configured headers on refusals too
    status, body, headers = out[4]
    assert (status, body) == (200, "ok") and headers["X-Frame-Options"] == "deny"
    assert _failures("no_credentials") - before["no_credentials"] == 2
    assert _failures("wrong_credentials") - before["wrong_credentials"] == 2


def test_headers_without_auth_and_on_404():
    web_config = parse_web_config("http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
                                  "    Strict-Transport-Security: max-age=31536000\n")

    async def calls(client):
        a = await client.get("/ok")
        b = await client.get("/nowhere")
        return a.status, dict(a.headers), b.status, dict(b.headers)

    s1, h1, s2, h2 = _run(_app(web_config), calls)
    assert s1 == 200 and h1["X-Content-Type-Options"] == "nosniff"
    assert h1["Strict-Transport-Security"] == "max-age=31536000"
    assert s2 == 404 and h2["X-Content-Type-Options"] == "nosniff"


def test_a_wrong_password_does_not_block_the_listener(monkeypatch):
    # bcrypt runs off the event loop: while wrong passwords are still being checked (the checks are held
    # until the test lets them go, so no timing is involved), a request needing no bcrypt (the right one,
    # cached) is answered.
    web_config = parse_web_config(f"basic_auth_users:\n  alice: {HASH}\n")
    release, started = threading.Event(), threading.Event()
    real_check = webconfig._bcrypt_ok

    def held_check(hashed, password):
        if password != b"right":
            started.set()
            assert release.wait(30), "the test never released the bcrypt checks"
        return real_check(hashed, password)

    monkeypatch.setattr(webconfig, "_bcrypt_ok", held_check)

    async def calls(client):
        assert (await client.get("/ok", headers=_basic("alice", "right"))).status == 200  # cached from now on
        wrong = [asyncio.create_task(client.get("/ok", headers=_basic("alice", f"wrong{i}"))) for i in range(4)]
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        try:
            right = await asyncio.wait_for(client.get("/ok", headers=_basic("alice", "right")), 30)
            wrong_done_first = sum(w.done() for w in wrong)
        finally:
            release.set()
        statuses = [(await w).status for w in wrong]
        return right.status, wrong_done_first, statuses

    status, wrong_done_first, statuses = _run(_app(web_config), calls)
    assert status == 200 and statuses == [401] * 4
    assert wrong_done_first == 0  # answered while every wrong password was still being checked


@pytest.mark.parametrize("path,status,error_type", [
    ("/bad_query", 400, "bad_data"), ("/overloaded", 429, "unavailable"), ("/down", 503, "unavailable"),
    ("/config", 400, "bad_data"), ("/bug", 500, "internal"),
    # A disabled admin/lifecycle API: 403 with Prometheus's errorType for its disabled admin API.
    ("/off", 403, "unavailable"),
    # Query limits and a query called off, as Prometheus: 422 execution, 499 canceled.
    ("/over", 422, "execution"), ("/gone", 499, "canceled"),
])
def test_errors_leave_once_as_prometheus_json(path, status, error_type):
    async def call(client):
        resp = await client.get(path)
        return resp.status, await resp.json()

    got_status, body = _run(_app(None), call)
    assert got_status == status
    assert body["status"] == "error" and body["errorType"] == error_type
    assert "secret detail" not in body["error"]  # an unexpected error's details stay in the log


def test_an_unauthenticated_error_raised_by_a_handler_is_a_401():
    async def call(client):
        return (await client.get("/who")).status

    assert _run(_app(None), call) == 401


def test_errors_as_text_for_the_receiver():
    async def call(client):
        resp = await client.get("/bad_query")
        return resp.status, await resp.text()

    assert _run(_app(None, render_error=text_error), call) == (400, "parse error at char 3: unexpected\n")


def test_tls_listener_refuses_plain_http_and_requires_client_certificates(tmp_path):
    certs = make_certs(tmp_path / "certs")
    web_config = parse_web_config("tls_server_config:\n  cert_file: certs/server.crt\n  key_file: certs/server.key\n"
                                  "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: certs/ca.crt\n",
                                  str(tmp_path))

    async def main():
        runner = await listen(_app(web_config), "127.0.0.1:0", "test", web_config)
        port = runner.addresses[0][1]
        try:
            out = {}
            async with aiohttp.ClientSession() as s:
                try:
                    await s.get(f"http://127.0.0.1:{port}/ok")
                    out["plain"] = "answered"
                except aiohttp.ClientError:
                    out["plain"] = "failed"
                no_cert = ssl.create_default_context(cafile=str(certs.ca))
                try:
                    await s.get(f"https://127.0.0.1:{port}/ok", ssl=no_cert)
                    out["no_cert"] = "answered"
                except aiohttp.ClientError:
                    out["no_cert"] = "failed"
                rogue = ssl.create_default_context(cafile=str(certs.ca))
                rogue.load_cert_chain(certs.path("rogue-client.crt"), certs.path("rogue-client.key"))
                try:
                    await s.get(f"https://127.0.0.1:{port}/ok", ssl=rogue)
                    out["rogue"] = "answered"
                except aiohttp.ClientError:
                    out["rogue"] = "failed"
                good = ssl.create_default_context(cafile=str(certs.ca))
                good.load_cert_chain(certs.path("client.crt"), certs.path("client.key"))
                resp = await s.get(f"https://127.0.0.1:{port}/ok", ssl=good)
                out["client"] = (resp.status, await resp.text())
            return out
        finally:
            await runner.cleanup()

    out = asyncio.run(main())
    assert out == {"plain": "failed", "no_cert": "failed", "rogue": "failed", "client": (200, "ok")}
