"""The Alertmanager notifier on real parts: what it posts compared field by field with what Debian's
Prometheus 2.42 posts for the same alert (both to one capture server), a real Debian Alertmanager 0.25
receiving its alerts (one found by file discovery, beside one that is down), and basic auth over TLS."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import threading
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from shardmon.ingest.notifier import Notifier
from shardmon.model.config import parse_config
from shardmon.model.notification import Alert, needs_sending, notification, valid_until
from tests.integration.procs import free_port, proc, prometheus_proc, wait_until
from tests.tlsutil import make_certs

EXTERNAL_URL = "http://prometheus.example:9090"
# Prometheus's first send may come before its notify discovery found the capture server (dropped):
# a short resend delay makes it send again soon.
RESEND_S = 2
EXPR = 'vector(1) > 0'
RULE = {"alert": "AlwaysFiring", "expr": EXPR,
        "labels": {"severity": "page", "team": "db", "cluster": "from-rule"},
        "annotations": {"summary": "always firing", "description": "it has fired since {{ 1 }}"}}
EXTERNAL_LABELS = {"cluster": "c1", "replica": "r1", "team": "external"}
ALERT_RELABEL = [{"target_label": "relabeled", "replacement": "yes"},
                 {"action": "labeldrop", "regex": "replica"}]


class Capture:
    """An HTTP server on loopback recording every request (path, headers, body); optionally TLS and
    requiring basic auth (401 without it)."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, basic_auth: tuple[str, str] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if basic_auth is not None:
                    want = "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        self.send_response(401)
                        self.end_headers()
                        return
                capture.requests.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posted(self, prefix: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0].startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture():
    c = Capture()
    yield c
    c.close()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ms_of(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def notify(config_text: str, alerts: list[Alert], *, settle: callable | None = None) -> Notifier:
    cfg = parse_config(config_text)
    n = Notifier(discovery_update_interval=0.2)
    await n.apply_config(cfg.alerting, cfg.global_.external_labels)
    for _ in range(100):  # discovery delivers the Alertmanagers within a moment
        if n.alertmanagers() and (settle is None or settle(n)):
            break
        await asyncio.sleep(0.05)
    n.send(alerts)
    await n.flush()
    await n.stop()
    return n


def test_the_notifier_posts_what_prometheus_posts(tmp_path, capture):
    assert shutil.which("prometheus"), "prometheus is not installed (scripts/setup.sh installs Debian's package)"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [RULE]}]}))
    alerting = {"alert_relabel_configs": ALERT_RELABEL,
                "alertmanagers": [{"path_prefix": "/prometheus", "static_configs": [{"targets": [capture.address]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"evaluation_interval": "1s", "external_labels": EXTERNAL_LABELS},
        "rule_files": [str(tmp_path / "rules.yml")], "alerting": alerting}))
    port = free_port()
    prom = prometheus_proc("prometheus", tmp_path / "prometheus.yml", tmp_path / "data", port, tmp_path,
                           f"--web.external-url={EXTERNAL_URL}", f"--rules.alert.resend-delay={RESEND_S}s").up()
    try:
        wait_until(lambda: capture.posted("/prometheus/"), 60, "Prometheus to post its alert")
    finally:
        prom.stop()
    path, headers, body = capture.posted("/prometheus/")[0]
    want = json.loads(body)
    assert len(want) == 1 and path == "/prometheus/api/v2/alerts"

    # Prometheus sent it first when it fired (its notifier had no Alertmanager yet: dropped), then again
    # at each evaluation its resend delay allows: the send we caught is one of those, its endsAt is that
    # evaluation time + 4 x max(resend delay, interval).
    fired = ms_of(want[0]["startsAt"])  # for: 0, so it fired at its first evaluation
    sends, last = [], fired
    for ts in range(fired + 1000, fired + 120_000, 1000):
        if needs_sending(pending=False, last_sent_ms=last, resolved_ms=None, now_ms=ts, resend_delay_ms=RESEND_S * 1000):
            sends.append(ts)
            last = ts
    now = next(ts for ts in sends if valid_until(ts, RESEND_S * 1000, 1000) == ms_of(want[0]["endsAt"]))
    # What a rule evaluator hands the notifier for the same alert: the rule's labels and (expanded)
    # annotations, fired and sent at those times, with the group's interval and the resend delay.
    alert = notification({"alertname": RULE["alert"], **RULE["labels"]}, want[0]["annotations"], fired_at_ms=fired,
                         resolved_at_ms=0, now_ms=now, resend_delay_ms=RESEND_S * 1000, interval_ms=1000,
                         external_url=EXTERNAL_URL, expr=EXPR)
    alerting["alertmanagers"][0]["path_prefix"] = "/shardmon"
    asyncio.run(notify(yaml.safe_dump({"global": {"external_labels": EXTERNAL_LABELS}, "alerting": alerting}), [alert]))
    [(spath, sheaders, sbody)] = capture.posted("/shardmon/")
    got = json.loads(sbody)
    assert spath == "/shardmon/api/v2/alerts"
    assert sheaders["Content-Type"] == headers["Content-Type"] == "application/json"
    assert got == want  # every field: labels, annotations, startsAt, endsAt, generatorURL
    assert [list(a) for a in got] == [list(a) for a in want]  # the keys in Prometheus's order
    assert [list(a["labels"]) for a in got] == [list(a["labels"]) for a in want]
    assert got[0]["labels"]["cluster"] == "from-rule" and "replica" not in got[0]["labels"]


AM_CONFIG = "route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n"


def alertmanager(tmp_path: Path):
    exe = shutil.which("prometheus-alertmanager")
    assert exe, "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
    (tmp_path / "alertmanager.yml").write_text(AM_CONFIG)
    port = free_port()
    return proc("alertmanager", [exe, f"--config.file={tmp_path / 'alertmanager.yml'}",
                                 f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
                                 "--cluster.listen-address="], tmp_path, port), port


def test_a_real_alertmanager_gets_the_alerts_and_one_that_is_down_is_counted(tmp_path):
    am, port = alertmanager(tmp_path)
    down = f"127.0.0.1:{free_port()}"
    (tmp_path / "ams.json").write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"dc": "a"}}]))
    config = f"""
global: {{external_labels: {{cluster: c1}}}}
alerting:
  alertmanagers:
    - file_sd_configs: [{{files: ['{tmp_path / "ams.json"}']}}]
      timeout: 5s
    - static_configs: [{{targets: ['{down}']}}]
      timeout: 2s
"""
    now = int(datetime.now().timestamp() * 1000)
    alerts = [Alert({"alertname": "Disk", "instance": f"host{i}", "severity": "page"}, {"summary": f"disk {i} full"},
                    now - 60_000, now + 4 * 60_000, f"{EXTERNAL_URL}/graph?g0.expr=x&g0.tab=1") for i in range(70)]
    down_url = f"http://{down}/api/v2/alerts"
    am_url = f"http://127.0.0.1:{port}/api/v2/alerts"
    errors0, dropped0 = metric("shardmon_notifications_errors_total", alertmanager=down_url), \
        metric("shardmon_notifications_dropped_total")
    am.up()
    try:
        n = asyncio.run(notify(config, alerts, settle=lambda n: len(n.alertmanagers()) == 2))
        assert n.alertmanagers() == [am_url, down_url]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=10) as resp:
            got = {a["labels"]["instance"]: a for a in json.load(resp)}
    finally:
        am.stop()
    assert len(got) == 70
    a = got["host7"]
    assert a["labels"] == {"alertname": "Disk", "instance": "host7", "severity": "page", "cluster": "c1"}
    assert a["annotations"] == {"summary": "disk 7 full"}
    assert ms_of(a["startsAt"]) == now - 60_000 and ms_of(a["endsAt"]) == now + 4 * 60_000
    assert a["generatorURL"] == f"{EXTERNAL_URL}/graph?g0.expr=x&g0.tab=1" and a["status"]["state"] == "active"
    # Two batches (64 + 6): two errors for the Alertmanager that is down, nothing dropped.
    assert metric("shardmon_notifications_errors_total", alertmanager=down_url) - errors0 == 2
    assert metric("shardmon_notifications_errors_total", alertmanager=am_url) == 0
    assert metric("shardmon_notifications_sent_total", alertmanager=am_url) == 70
    assert metric("shardmon_notifications_dropped_total") == dropped0


def test_a_batch_no_alertmanager_takes_is_dropped_and_counted():
    dropped0 = metric("shardmon_notifications_dropped_total")
    asyncio.run(notify(f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{free_port()}']}}], "
                       "timeout: 1s}]}", [Alert({"alertname": "A"})] * 3))
    assert metric("shardmon_notifications_dropped_total") - dropped0 == 3


def test_basic_auth_over_tls_as_scrape_clients(tmp_path):
    certs = make_certs(tmp_path / "certs")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.path("server.crt"), certs.path("server.key"))
    cap = Capture(tls=ctx, basic_auth=("alice", "s3cret"))
    (tmp_path / "password").write_text("s3cret\n")
    try:
        base = f"""
alerting:
  alertmanagers:
    - scheme: https
      tls_config: {{ca_file: '{certs.ca}'}}
      static_configs: [{{targets: ['{cap.address}']}}]
"""
        wrong = base + "      basic_auth: {username: alice, password: wrong}\n"
        n = asyncio.run(notify(wrong, [Alert({"alertname": "A"})]))
        url = n.alertmanagers()[0]
        assert url == f"https://{cap.address}/api/v2/alerts" and cap.requests == []
        assert metric("shardmon_notifications_errors_total", alertmanager=url) >= 1
        right = base + f"      basic_auth: {{username: alice, password_file: '{tmp_path / 'password'}'}}\n"
        asyncio.run(notify(right, [Alert({"alertname": "A"})]))
        assert [json.loads(b)[0]["labels"] for _, _, b in cap.requests] == [{"alertname": "A"}]
    finally:
        cap.close()
