"""The scrape request over real HTTP(S): headers, compression, limits, timeouts, authentication and TLS.

A local aiohttp server plays the target. For HTTPS the test makes its own CA, a server certificate (valid
only for the name ``scrape.test``) and client certificates with the ``openssl`` command, and the server
requires a client certificate signed by that CA. Credential and certificate files are changed between
scrapes: Prometheus re-reads credential files on every scrape and reloads certificates when they change,
and so must the scrape loop.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from shardmon.ingest.scrape_http import ACCEPT
from shardmon.ingest.scrape_loop import ScrapeLoop
from shardmon.ingest.target import Target, targets_from_config
from shardmon.model.config import parse_config
from shardmon.model.labels import Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from tests.integration.procs import free_port


class Server:
    """An HTTP(S) target on a free loopback port; ``handler`` answers every path."""

    def __init__(self, handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.handler = handler
        self.ssl_context = ssl_context
        self.requests: list[web.Request] = []

    async def __aenter__(self) -> Server:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append(request)
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


def target(port: int, extra: str = "", scheme: str = "http", path: str = "/metrics") -> Target:
    (t,) = targets_from_config(parse_config(f"""
scrape_configs:
  - job_name: app
    scheme: {scheme}
    metrics_path: {path}
    scrape_interval: 2s
    scrape_timeout: 500ms
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
{extra}"""))
    return t


async def scrape(t: Target, times: int = 1, between=None) -> tuple[list, MemoryStorage]:
    storage = MemoryStorage()
    healths = []
    async with aiohttp.ClientSession() as session:
        loop = ScrapeLoop(t, storage, session)
        for i in range(times):
            if i and between:
                between(i)
            healths.append(await loop.scrape_once())
            await asyncio.sleep(0.002)
    return healths, storage


def values(storage: MemoryStorage, name: str) -> list[float]:
    (s,) = storage.select([Matcher(MatchType.EQ, "__name__", name)], 0, 2**62).series
    return s.values.tolist()


def text(body: str, **headers: str) -> web.Response:
    return web.Response(body=body.encode(), headers={"Content-Type": "text/plain; version=0.0.4", **headers})


# --- the request ----------------------------------------------------------------------------------------


def test_the_request_carries_prometheus_headers_and_the_params():
    async def main():
        async with Server(lambda r: _async(text("a 1\n"))) as srv:
            t = target(srv.port, "    params: {module: [x y], a: ['1']}\n")
            (h,), _ = await scrape(t)
            return h, srv.requests[0]

    h, request = asyncio.run(main())
    assert h.health == "up"
    assert request.headers["Accept"] == ACCEPT == (
        "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")  # exactly what Prometheus 2.53 sends by default
    assert request.headers["Accept-Encoding"] == "gzip"
    assert request.headers["X-Prometheus-Scrape-Timeout-Seconds"] == "0.5"
    assert request.headers["User-Agent"].startswith("Shardmon/")
    assert "Authorization" not in request.headers
    assert request.path_qs == "/metrics?a=1&module=x+y"


async def _async(value):
    return value


def test_a_gzip_body_is_decompressed_and_the_body_size_limit_counts_uncompressed_bytes():
    body = "".join(f'm{{i="{i}"}} {i}\n' for i in range(2000))  # ~30 kB, compresses to a few kB

    async def handler(request):
        assert request.headers["Accept-Encoding"] == "gzip"
        return web.Response(body=gzip.compress(body.encode()),
                            headers={"Content-Type": "text/plain; version=0.0.4", "Content-Encoding": "gzip"})

    async def main(limit: int):
        async with Server(handler) as srv:
            (h,), st = await scrape(target(srv.port, f"    body_size_limit: {limit}\n"))
            return h, st

    h, st = asyncio.run(main(0))
    assert h.health == "up" and h.samples == 2000
    size = len(body.encode())
    for limit, health in ((size, "down"), (size + 1, "up"), (len(gzip.compress(body.encode())) + 10, "down")):
        h, st = asyncio.run(main(limit))
        assert h.health == health, (limit, h.last_error)
        if health == "down":  # As Prometheus: a body of exactly the limit fails too.
            assert h.last_error == "body size limit exceeded" and values(st, "up") == [0]


def test_body_size_limit_takes_prometheus_units():
    assert target(1, "    body_size_limit: 10MB\n").options.body_size_limit == 10 * 1024 * 1024


def test_a_target_slower_than_the_timeout_fails_with_prometheus_words():
    async def slow(request):
        await asyncio.sleep(2)
        return text("a 1\n")

    async def main():
        async with Server(slow) as srv:
            (h,), st = await scrape(target(srv.port))
            return h, st, srv.port

    h, st, port = asyncio.run(main())
    assert h.last_error == f'Get "http://127.0.0.1:{port}/metrics": context deadline exceeded'
    assert 0.45 < h.last_duration_s < 1.5 and values(st, "up") == [0]


def test_an_http_error_status_fails_the_scrape():
    async def main():
        async with Server(lambda r: _async(web.Response(status=503, text="busy"))) as srv:
            (h,), _ = await scrape(target(srv.port))
            return h

    assert asyncio.run(main()).last_error == "server returned HTTP status 503 Service Unavailable"


def test_redirects_are_followed_unless_follow_redirects_is_false():
    async def handler(request):
        if request.path == "/metrics":
            raise web.HTTPFound("/real")
        return text("a 1\n")

    async def main(extra: str):
        async with Server(handler) as srv:
            (h,), _ = await scrape(target(srv.port, extra))
            return h

    assert asyncio.run(main("")).health == "up"
    assert asyncio.run(main("    follow_redirects: false\n")).last_error == "server returned HTTP status 302 Found"


def test_an_openmetrics_response_is_parsed_as_openmetrics():
    async def handler(request):
        return web.Response(body=b"# TYPE c counter\nc_total 2\nc_created 1700000000.5\n# EOF\n",
                            headers={"Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8"})

    async def main():
        async with Server(handler) as srv:
            (h,), st = await scrape(target(srv.port))
            return h, st

    h, st = asyncio.run(main())
    assert h.health == "up" and values(st, "c_total") == [2] and values(st, "c_created") == [1700000000.5]


# --- authentication -------------------------------------------------------------------------------------


def _auth_server(expected: list[str]):
    """A target answering 401 unless the Authorization header is ``expected[0]`` (the test changes it)."""

    async def handler(request):
        if request.headers.get("Authorization") != expected[0]:
            return web.Response(status=401, text="no")
        return text("a 1\n")

    return handler


@pytest.mark.parametrize("config, header", [
    ("basic_auth: {username: user, password: pw}", "Basic dXNlcjpwdw=="),
    ("authorization: {credentials: tok}", "Bearer tok"),
    ("authorization: {type: Token, credentials: tok}", "Token tok"),
    ("bearer_token: tok", "Bearer tok"),
])
def test_inline_credentials_are_sent(config, header):
    async def main():
        async with Server(_auth_server([header])) as srv:
            (h,), _ = await scrape(target(srv.port, f"    {config}\n"))
            return h

    h = asyncio.run(main())
    assert h.health == "up", h.last_error


@pytest.mark.parametrize("config, header_of", [
    ("basic_auth: {{username: user, password_file: '{f}'}}", lambda secret: f"Basic {_b64('user:' + secret)}"),
    ("authorization: {{credentials_file: '{f}'}}", lambda secret: f"Bearer {secret}"),
    ("bearer_token_file: '{f}'", lambda secret: f"Bearer {secret}"),
])
def test_credential_files_are_read_again_on_every_scrape(tmp_path, config, header_of):
    secret = tmp_path / "secret"
    secret.write_text("first\n")  # surrounding white space is trimmed, as Prometheus does
    expected = [header_of("first")]

    def rotate(i: int) -> None:
        secret.write_text(" second ")
        expected[0] = header_of("second")

    async def main():
        async with Server(_auth_server(expected)) as srv:
            return (await scrape(target(srv.port, "    " + config.format(f=secret) + "\n"), 2, rotate))[0]

    healths = asyncio.run(main())
    assert [h.health for h in healths] == ["up", "up"], [h.last_error for h in healths]


def test_a_missing_credential_file_fails_the_scrape_not_the_loop(tmp_path):
    async def main():
        async with Server(_auth_server(["x"])) as srv:
            (h,), st = await scrape(target(srv.port, f"    bearer_token_file: '{tmp_path / 'nope'}'\n"))
            return h

    h = asyncio.run(main())
    assert h.health == "down" and "nope" in h.last_error


def _b64(s: str) -> str:
    import base64

    return base64.b64encode(s.encode()).decode()


# --- TLS ------------------------------------------------------------------------------------------------


class PKI:
    """A CA, a server certificate for ``scrape.test`` only, and client certificates, made with openssl."""

    def __init__(self, d: Path) -> None:
        assert shutil.which("openssl"), "the openssl command is needed to make test certificates"
        self.d = d
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", d / "ca.key", "-out", d / "ca.crt", "-days", "2", "-subj", "/CN=Shardmon test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.leaf("server", "scrape.test", "serverAuth", "subjectAltName=DNS:scrape.test")
        self.leaf("client", "scraper-1", "clientAuth")

    def _run(self, *args) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    def leaf(self, name: str, cn: str, usage: str, *extra: str) -> None:
        d = self.d
        ext = d / f"{name}.ext"
        ext.write_text("\n".join(["basicConstraints=CA:FALSE", "keyUsage=digitalSignature",
                                  f"extendedKeyUsage={usage}", "subjectKeyIdentifier=hash",
                                  "authorityKeyIdentifier=keyid", *extra]) + "\n")
        self._run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr", "-subj", f"/CN={cn}")
        self._run("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
                  "-CAcreateserial", "-out", d / f"{name}.crt", "-days", "2", "-extfile", ext)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.d / "ca.crt"))
        ctx.load_cert_chain(self.d / "server.crt", self.d / "server.key")
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def _tls_handler(seen: list[str]):
    """Answers only with basic auth user:pw; records the client certificate's common name."""

    async def handler(request):
        cert = request.transport.get_extra_info("peercert")
        seen.append(dict(x[0] for x in cert["subject"])["commonName"])
        if request.headers.get("Authorization") != "Basic " + _b64("user:pw"):
            return web.Response(status=401, text="no")
        return text("secure 1\n")

    return handler


def test_an_https_target_with_a_client_certificate_and_basic_auth(tmp_path):
    pki = PKI(tmp_path)
    seen: list[str] = []
    tls = (f"    tls_config: {{ca_file: '{tmp_path / 'ca.crt'}', cert_file: '{tmp_path / 'client.crt'}', "
           f"key_file: '{tmp_path / 'client.key'}', server_name: scrape.test}}\n"
           "    basic_auth: {username: user, password: pw}\n")

    def rotate(i: int) -> None:  # A new client certificate in the same files: the next scrape presents it.
        pki.leaf("client", "scraper-2", "clientAuth")

    async def main():
        async with Server(_tls_handler(seen), pki.server_context()) as srv:
            healths, st = await scrape(target(srv.port, tls, scheme="https"), 2, rotate)
            return healths, st

    healths, st = asyncio.run(main())
    assert [h.health for h in healths] == ["up", "up"], [h.last_error for h in healths]
    assert values(st, "secure") == [1, 1]
    assert seen == ["scraper-1", "scraper-2"]


@pytest.mark.parametrize("tls, fragment", [
    # The server certificate is for scrape.test, not 127.0.0.1: without server_name it does not verify.
    ("{{ca_file: '{d}/ca.crt', cert_file: '{d}/client.crt', key_file: '{d}/client.key'}}", "certificate"),
    # No client certificate: the server refuses the handshake.
    ("{{ca_file: '{d}/ca.crt', server_name: scrape.test}}", "Get \"https://"),
    # No CA: the server certificate is signed by an unknown authority.
    ("{{cert_file: '{d}/client.crt', key_file: '{d}/client.key', server_name: scrape.test}}", "certificate"),
])
def test_an_https_target_that_does_not_verify_fails_the_scrape(tmp_path, tls, fragment):
    pki = PKI(tmp_path)

    async def main():
        async with Server(_tls_handler([]), pki.server_context()) as srv:
            extra = f"    tls_config: {tls.format(d=tmp_path)}\n    basic_auth: {{username: user, password: pw}}\n"
            (h,), _ = await scrape(target(srv.port, extra, scheme="https"))
            return h

    h = asyncio.run(main())
    assert h.health == "down" and fragment in h.last_error, h.last_error


def test_insecure_skip_verify_scrapes_a_target_whose_certificate_does_not_verify(tmp_path):
    pki = PKI(tmp_path)

    async def main():
        async with Server(_tls_handler([]), pki.server_context()) as srv:
            extra = (f"    tls_config: {{insecure_skip_verify: true, cert_file: '{tmp_path}/client.crt', "
                     f"key_file: '{tmp_path}/client.key'}}\n    basic_auth: {{username: user, password: pw}}\n")
            (h,), _ = await scrape(target(srv.port, extra, scheme="https"))
            return h

    assert asyncio.run(main()).health == "up"


def test_a_ca_file_that_changes_is_reloaded(tmp_path):
    """The target gets a certificate from another CA; the scraper's CA file is updated in place: the same
    loop's next scrape trusts the new CA, without a restart."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    pki_old, pki_new = PKI(old), PKI(new)
    ca = tmp_path / "ca.crt"
    ca.write_bytes((old / "ca.crt").read_bytes())
    extra = (f"    tls_config: {{ca_file: '{ca}', cert_file: '{old}/client.crt', key_file: '{old}/client.key', "
             "server_name: scrape.test}\n    basic_auth: {username: user, password: pw}\n")
    port = free_port()

    async def serve_and_scrape(pki: PKI, loop: ScrapeLoop) -> str:
        ctx = pki.server_context()
        ctx.load_verify_locations(old / "ca.crt")  # Both servers accept the (old CA's) client certificate.
        srv = Server(_tls_handler([]), ctx)
        srv.port = port
        async with srv:
            return (await loop.scrape_once()).health

    async def main():
        async with aiohttp.ClientSession() as session:
            loop = ScrapeLoop(target(port, extra, scheme="https"), MemoryStorage(), session)
            first = await serve_and_scrape(pki_old, loop)
            stale = await serve_and_scrape(pki_new, loop)  # Still the old CA: the new server is not trusted.
            ca.write_bytes((new / "ca.crt").read_bytes())
            return first, stale, await serve_and_scrape(pki_new, loop)

    assert asyncio.run(main()) == ("up", "down", "up")
