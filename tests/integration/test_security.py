"""TLS and basic authentication on every listener, with a web config file in Prometheus's format.

One `shardmon up` cluster (2 Redis, 2 shards, querier, receiver, ingest with a local Ray, demo targets)
runs with a web config that turns on TLS with required client certificates (mTLS,
``RequireAndVerifyClientCert``), basic auth and a response header; certificates (a test CA, a server
certificate for 127.0.0.1 and the Ray node's address, a client certificate, and one of another CA) are
made by the test. Then:
every HTTP listener answers 401 without or with wrong credentials and 200 with the right ones; plain
HTTP, TLS without a client certificate and a certificate of another CA are refused, over HTTP and
gRPC; scrapes arrive and queries answer with shards and querier on gRPC over TLS; self-monitoring sees
every component up; `shardmon query`/`targets` work with the same credentials; Debian's Prometheus
remote-writes with ``basic_auth`` and ``tls_config`` and its samples arrive; a bad configuration
reloaded over HTTP is refused without quoting the file.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

from shardmon.model.errors import ShardmonError
from shardmon.model.http_config import BasicAuth, TLSConfig
from tests.integration.httpapi import request
from tests.integration.procs import (
    CounterTargets,
    free_port,
    prometheus_proc,
    run_shardmon,
    shardmon_up,
    up_config,
    wait_until,
)
from tests.tlsutil import bcrypt_hash, make_certs

INTERVAL_S = 2
USER, PASSWORD = "alice", "correct horse battery staple"


class Setup:
    def __init__(self, tmp: Path) -> None:
        from ray.util import get_node_ip_address

        self.tmp = tmp
        # The server certificate must be valid for every address a listener is reached at: the Ray
        # node's address too, where the coordinator and the scrapers serve their /metrics.
        self.certs = make_certs(tmp / "certs", server_ips=(get_node_ip_address(),))
        (tmp / "password").write_text(PASSWORD + "\n")
        web = {
            "tls_server_config": {"cert_file": "certs/server.crt", "key_file": "certs/server.key",
                                  "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "certs/ca.crt"},
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
            "basic_auth_users": {USER: bcrypt_hash(PASSWORD, 10)},
        }
        (tmp / "web.yml").write_text(yaml.safe_dump(web))
        self.tls = {"ca_file": str(self.certs.ca), "cert_file": str(self.certs.path("client.crt")),
                    "key_file": str(self.certs.path("client.key"))}
        self.basic = {"username": USER, "password_file": str(tmp / "password")}

        raw = up_config(tmp, INTERVAL_S)
        demo = raw["local"]["demo_targets"]
        raw["scrape_configs"] = [
            {"job_name": "demo", "static_configs": [{"targets": demo}]},
            # Shardmon's own push API is a listener like the others: its scrape job needs the credentials.
            {"job_name": "pushgateway", "honor_labels": True, "scheme": "https", "basic_auth": self.basic,
             "tls_config": self.tls, "static_configs": [{"targets": [raw["receiver"]["pushgateway_address"]]}]},
        ]
        raw["web_config_file"] = "web.yml"  # relative: to this configuration file's folder
        raw["web"] = {**(raw.get("web") or {}), "enable_lifecycle": True}  # the last test reloads over HTTP
        raw["internal_client"] = {"basic_auth": self.basic, "tls_config": self.tls}
        self.raw = raw
        self.config_path = tmp / "shardmon.yml"
        self.config_path.write_text(yaml.safe_dump(raw))
        # A configuration without internal_client: a client's command line has to say it all.
        bare = {k: v for k, v in raw.items() if k != "internal_client"}
        bare.pop("web_config_file")
        (tmp / "client.yml").write_text(yaml.safe_dump(bare))
        self.up = shardmon_up(self.config_path, tmp / "up.log")

    def address(self, what: str) -> str:
        r = self.raw
        return {"querier": r["querier"]["http_address"], "grpc": r["querier"]["grpc_address"],
                "receiver": r["receiver"]["http_address"], "push": r["receiver"]["pushgateway_address"],
                "ingest": r["ingest"]["http_address"], "shard-0": r["shards"]["nodes"][0]["metrics_address"],
                "shard-1": r["shards"]["nodes"][1]["metrics_address"]}[what]

    def context(self, cert: str | None = "client") -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.certs.ca))
        if cert:
            ctx.load_cert_chain(self.certs.path(f"{cert}.crt"), self.certs.path(f"{cert}.key"))
        return ctx

    def get(self, url: str, *, password: str | None = PASSWORD, cert: str | None = "client",
            data: bytes | None = None, method: str | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of a request with the client certificate ``cert`` and the password."""
        auth = {} if password is None else {
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()}
        r = request(method or ("POST" if data is not None else "GET"), url, data, headers=auth, timeout=30,
                    context=self.context(cert) if url.startswith("https") else None)
        return r.status, dict(r.headers), r.body

    def shardmon(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess:
        return run_shardmon(*args, config=config or self.config_path)


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    s = Setup(tmp_path_factory.mktemp("security"))
    try:
        s.up.up(120)
        yield s
    finally:
        s.up.stop(60)


def _query(s: Setup, expr: str):
    from shardmon.client import QueryClient

    with QueryClient(s.address("grpc"), timeout_s=30, tls=TLSConfig(**s.tls),
                     basic_auth=BasicAuth(**s.basic)) as c:
        return c.instant(expr)


def _listener_urls(s: Setup) -> dict[str, str]:
    urls = {
        "querier API": f"https://{s.address('querier')}/api/v1/query?query=up",
        "querier /metrics": f"https://{s.address('querier')}/metrics",
        "web UI page": f"https://{s.address('querier')}/graph",
        "web UI asset": f"https://{s.address('querier')}/static/common.js",
        "receiver /metrics": f"https://{s.address('receiver')}/metrics",
        "push API": f"https://{s.address('push')}/api/v1/metrics",
        "ingest API": f"https://{s.address('ingest')}/api/v1/targets",
        "ingest /metrics": f"https://{s.address('ingest')}/metrics",
        "shard-0 /metrics": f"https://{s.address('shard-0')}/metrics",
        "shard-1 /metrics": f"https://{s.address('shard-1')}/metrics",
    }
    # The coordinator's and scrapers' /metrics are on ports of their Ray node: the targets say where.
    status, _, body = s.get(f"https://{s.address('ingest')}/api/v1/targets?scrapePool=shardmon")
    assert status == 200, body
    for t in json.loads(body)["data"]["activeTargets"]:
        comp = t["labels"]["component"]
        if comp in ("coordinator", "scraper"):
            urls[f"{comp} {t['labels']['instance']} /metrics"] = t["scrapeUrl"]
    return urls


def test_scrapes_arrive_and_queries_answer_over_grpc_tls(s):
    def demo_up():
        res = _query(s, 'up{job="demo"}')
        return len(res.series) == 3 and all(x.values[0] == 1 for x in res.series) and res

    wait_until(demo_up, 60, "the 3 demo targets up, scraped and queried over TLS", interval_s=1)


def test_self_monitoring_sees_every_component_up(s):
    want = {"shard": 2, "querier": 1, "receiver": 1, "ingest": 1, "coordinator": 1, "scraper": 2}

    def components():
        res = _query(s, 'sum by (component) (up{job="shardmon"})')
        got = {x.labels.get("component"): float(x.values[0]) for x in res.series}
        return got == want and got

    wait_until(components, 60, "up{job=\"shardmon\"} == 1 for every component", interval_s=1)
    # Shardmon's own push API, scraped with the pushgateway job's credentials.
    wait_until(lambda: [x.values[0] for x in _query(s, 'up{job="pushgateway"}').series] == [1.0], 30,
               "the pushgateway job up")


def test_every_http_listener_wants_the_right_password(s):
    urls = wait_until(lambda: (u := _listener_urls(s)) and len(u) == 13 and u, 60,
                      "the coordinator's and scrapers' metrics addresses")
    for name, url in urls.items():
        for password in (None, "wrong password"):
            status, headers, _ = s.get(url, password=password)
            assert status == 401, (name, password, status)
            assert headers.get("WWW-Authenticate") == "Basic", name
            assert headers.get("X-Frame-Options") == "deny", name
        status, headers, body = s.get(url)
        assert status == 200, (name, status, body[:300])
        assert headers.get("X-Frame-Options") == "deny", name
    failures = s.get(f"https://{s.address('querier')}/metrics")[2].decode()
    assert 'shardmon_querier_auth_failures_total{listener="http",reason="no_credentials"}' in failures


def test_plain_http_and_clients_without_the_right_certificate_are_refused(s):
    for url in _listener_urls(s).values():
        host_path = url.split("://", 1)[1]
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://{host_path}", timeout=10).read()
        for cert in (None, "rogue-client"):  # no client certificate; one of a CA the listeners do not trust
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError, OSError)):
                s.get(url, cert=cert)


def test_grpc_listeners_want_tls_a_client_certificate_and_the_password(s):
    from shardmon.model.pb import query_pb2, query_pb2_grpc
    from shardmon.shards.client import ShardClient, ShardConnection

    ca = s.certs.ca.read_bytes()
    cert, key = s.certs.path("client.crt").read_bytes(), s.certs.path("client.key").read_bytes()
    creds = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = query_pb2.InstantQueryRequest(query="1", time_ms=0)

    def call(channel, metadata=()):
        with channel:
            return query_pb2_grpc.QueryStub(channel).Instant(req, timeout=10, metadata=metadata)

    addr = s.address("grpc")
    with pytest.raises(grpc.RpcError) as plain:
        call(grpc.insecure_channel(addr), [("authorization", f"Basic {creds}")])
    assert plain.value.code() is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as no_cert:
        call(grpc.secure_channel(addr, grpc.ssl_channel_credentials(ca)), [("authorization", f"Basic {creds}")])
    assert no_cert.value.code() is grpc.StatusCode.UNAVAILABLE
    tls = grpc.ssl_channel_credentials(ca, key, cert)
    with pytest.raises(grpc.RpcError) as no_password:
        call(grpc.secure_channel(addr, tls))
    assert no_password.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as wrong:
        call(grpc.secure_channel(addr, tls),
             [("authorization", "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode())])
    assert wrong.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert call(grpc.secure_channel(addr, tls), [("authorization", f"Basic {creds}")]).scalar == 1.0

    # A shard: plain, without the password, and with both.
    shard = s.raw["shards"]["nodes"][0]["address"]
    for conn in (ShardConnection(), ShardConnection(TLSConfig(**s.tls), None)):
        c = ShardClient(0, shard, conn)
        with pytest.raises(ShardmonError):
            c.label_names([], 0, 2**62, timeout_s=10)
        c.close()
    c = ShardClient(0, shard, ShardConnection(TLSConfig(**s.tls), BasicAuth(**s.basic)))
    assert "__name__" in c.label_names([], 0, 2**62, timeout_s=10)
    c.close()


def test_the_command_line_clients_with_the_same_credentials(s):
    wait_until(lambda: "up{" in s.shardmon("query", "up").stdout, 30, "shardmon query (internal_client)")
    # A configuration without internal_client: the flags give the certificates and the password.
    bare = s.tmp / "client.yml"
    flags = ["--ca-file", s.tls["ca_file"], "--cert-file", s.tls["cert_file"], "--key-file", s.tls["key_file"]]
    out = s.shardmon("query", *flags, "--username", USER, "--password-file", s.basic["password_file"],
                     "count(up)", config=bare)
    assert out.returncode == 0 and "{}" in out.stdout, out.stderr
    refused = s.shardmon("query", *flags, "count(up)", config=bare)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    # Prometheus's HTTP client file, as promtool and amtool take it.
    (s.tmp / "http.yml").write_text(yaml.safe_dump({"basic_auth": s.basic, "tls_config": s.tls}))
    out = s.shardmon("targets", "--http.config.file", str(s.tmp / "http.yml"), config=bare)
    assert out.returncode == 0 and "demo" in out.stdout, out.stderr
    refused = s.shardmon("targets", *flags, config=bare)
    assert refused.returncode == 2 and "401" in refused.stderr


def test_prometheus_remote_writes_with_basic_auth_and_tls(s):
    targets = CounterTargets(2, metric="rw_security_total").start()
    prom_port = free_port()
    cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "prom-rw", "static_configs": [{"targets": targets.addresses()}]}],
        "remote_write": [{
            "url": f"https://{s.address('receiver')}/api/v1/write",
            "basic_auth": s.basic, "tls_config": s.tls,
            "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"},
        }],
    }
    (s.tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    prom = prometheus_proc("prometheus", s.tmp / "prometheus.yml", s.tmp / "prom", prom_port, s.tmp,
                           "--log.level=warn").start()
    try:
        res = wait_until(lambda: len((r := _query(s, 'rw_security_total{job="prom-rw"}')).series) == 2 and r, 60,
                         "samples remote-written by Prometheus over TLS with basic auth", interval_s=1)
        assert all(x.values[0] >= 1 for x in res.series)
    finally:
        prom.stop(30)
        targets.stop()
    assert "401" not in (s.tmp / "prometheus.log").read_text()


def test_push_with_credentials_and_a_bad_reload_that_quotes_nothing(s):
    status, _, body = s.get(f"https://{s.address('push')}/metrics/job/security", data=b"pushed_metric 42\n",
                            method="PUT")
    assert status == 200, body
    assert s.get(f"https://{s.address('push')}/metrics/job/security", password=None, data=b"x 1\n",
                 method="PUT")[0] == 401
    # A configuration file broken where a secret sits: the reload is refused, naming the position only.
    good = s.config_path.read_text()
    s.config_path.write_text(good + "\nextra:\n  password: hunter2-secret\n   broken: [\n")
    try:
        status, _, body = s.get(f"https://{s.address('ingest')}/-/reload", data=b"", method="POST")
    finally:
        s.config_path.write_text(good)
    answer = json.loads(body)
    assert status == 400 and answer["errorType"] == "bad_data", answer
    assert "line " in answer["error"] and "hunter2" not in answer["error"], answer
