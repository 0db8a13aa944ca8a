"""The rulers on real parts: Redis, shards, the querier, a local Ray, and a capture server as Alertmanager.

The ruler service runs in the test process (``RulerService`` on the session's local Ray; its HTTP API is
another part's), its rulers are real Ray actor processes. A recording rule's output is read back through the
querier; an alert reaches the capture server firing, then resolved. The sharding test runs 3 rulers over 61
groups, SIGKILLs the ruler owning a pending ``for: 14s`` alert after 7 s, and checks that its groups are
evaluated again (from the rule files' texts the service read: the file is moved away before the kill),
the alert fires before its ``for`` runs out again, and scaling 3 -> 4 moves about a
quarter of the groups with no resolved notification.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.integration.httpapi import get_json
from tests.integration.procs import Cluster, free_port, run_shardmon, wait_until


class Alertmanager:
    """Records the alerts posted to /api/v2/alerts with the time each arrived."""

    def __init__(self) -> None:
        self.alerts: list[tuple[float, dict]] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                me.alerts.extend((now, a) for a in json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, alertname: str) -> list[tuple[float, dict, bool]]:
        """(arrival, alert, resolved) of each posted alert named ``alertname``."""
        return [(t, a, _ts(a["endsAt"]) <= t) for t, a in self.alerts if a["labels"].get("alertname") == alertname]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def am():
    a = Alertmanager()
    yield a
    a.close()


def _cluster(tmp_path, am: Alertmanager, rules: dict, rulers: int) -> Cluster:
    c = Cluster(tmp_path, 2, [])
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    c.raw.update({"global": {"scrape_interval": "1s", "evaluation_interval": "2s"},
                  "rule_files": [str(tmp_path / "rules.yml")],
                  "rules": {"rulers": rulers, "for_grace_period": "1s", "http_address": f"127.0.0.1:{free_port()}"},
                  "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.address]}]}]}})
    c.config_path.write_text(yaml.safe_dump(c.raw, sort_keys=False))
    return c


def _query(c: Cluster, expr: str) -> list[dict]:
    return get_json(f"http://127.0.0.1:{c.http_port}/api/v1/query", {"query": expr})["data"]["result"]


def test_a_bad_rule_file_stops_the_ruler_at_start_naming_it(tmp_path):
    (tmp_path / "bad.yml").write_text("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n")
    (tmp_path / "shardmon.yml").write_text(yaml.safe_dump({"rule_files": [str(tmp_path / "bad.yml")]}))
    out = run_shardmon("ruler", config=tmp_path / "shardmon.yml", timeout=60)
    assert out.returncode == 2, out.stderr
    assert "bad.yml" in out.stderr and "could not parse expression" in out.stderr


def test_recording_output_through_the_querier_and_an_alert_firing_then_resolved(tmp_path, am, ray_local):
    from shardmon.rules.service import RulerService, _serve_api

    rules = {"groups": [{"name": "g", "interval": "1s", "rules": [
        {"record": "rec_answer", "expr": "vector(42)", "labels": {"team": "a"}},
        {"alert": "Flap", "expr": "vector(time() % 8) < 4", "for": "1s", "labels": {"severity": "page"},
         "annotations": {"summary": "value {{ $value }}"}},
    ]}]}
    c = _cluster(tmp_path, am, rules, 1).start()
    service = RulerService(c.config())
    try:
        service.start()
        got = wait_until(lambda: _query(c, "rec_answer"), 60, "the recording rule's output in the querier")
        assert got[0]["metric"] == {"__name__": "rec_answer", "team": "a"} and got[0]["value"][1] == "42"
        wait_until(lambda: [a for a in am.of("Flap") if not a[2]], 60, "Flap firing at the Alertmanager")
        wait_until(lambda: [a for a in am.of("Flap") if a[2]], 60, "Flap resolved at the Alertmanager")
        states = [resolved for _, _, resolved in am.of("Flap")]
        assert states[0] is False and states.index(True) > 0
        _, firing, _ = am.of("Flap")[0]
        assert firing["labels"] == {"alertname": "Flap", "severity": "page"}
        assert firing["annotations"]["summary"].startswith("value ")
        (info,) = service.rulers()
        assert info["groups"] == [f"{tmp_path / 'rules.yml'};g"]
        assert service.groups()[0]["rules"][0]["health"] == "ok"

        # The rules API of the service, through the querier as Grafana asks it.
        stop_api = _serve_api(service, [c.config()], lambda: {})
        try:
            base = f"http://127.0.0.1:{c.http_port}/api/v1"
            doc = get_json(f"{base}/rules")["data"]
            (group,) = doc["groups"]
            assert (group["name"], group["file"]) == ("g", str(tmp_path / "rules.yml"))
            assert [(r["type"], r["name"], r["health"]) for r in group["rules"]] == \
                [("recording", "rec_answer", "ok"), ("alerting", "Flap", "ok")]
            assert [r["name"] for g in get_json(f"{base}/rules", {"type": "record"})["data"]["groups"]
                    for r in g["rules"]] == ["rec_answer"]
            alerts = get_json(f"{base}/alerts")["data"]["alerts"]
            assert all(a["labels"]["alertname"] == "Flap" for a in alerts)
        finally:
            if stop_api:
                stop_api()
    finally:
        service.stop()
        c.stop()


N_GROUPS = 60
HELD_FOR_S = 14  # the pending alert on the ruler that is killed halfway through its `for`


def _sharding_rules() -> dict:
    groups = [{"name": f"g{i}", "interval": f"{2 + i % 4}s",
               "rules": [{"record": "grp_eval", "expr": "vector(time())", "labels": {"grp": f"g{i}"}}]}
              for i in range(N_GROUPS)]
    groups.append({"name": "held", "interval": "1s", "rules": [
        {"record": "grp_eval", "expr": "vector(time())", "labels": {"grp": "held"}},
        {"alert": "Held", "expr": "vector(1)", "for": f"{HELD_FOR_S}s"}]})
    return {"groups": groups}


def test_three_rulers_a_killed_one_and_scaling_to_four(tmp_path, am, ray_local):
    from shardmon.rules import assignment
    from shardmon.rules.service import RulerService, _serve_api

    c = _cluster(tmp_path, am, _sharding_rules(), 3)
    c.raw["web"] = {"enable_lifecycle": True}  # scaling through the rules API, as a user does
    c.config_path.write_text(yaml.safe_dump(c.raw, sort_keys=False))
    c.start()
    stop_api = None
    file = str(tmp_path / "rules.yml")
    held = f"{file};held"
    service = RulerService(c.config())
    try:
        service.start()
        owner = assignment.owner(held, 3)
        infos = {i["id"]: i for i in service.rulers()}
        assert sum(len(i["groups"]) for i in infos.values()) == N_GROUPS + 1
        assert held in infos[owner]["groups"]
        print("groups per ruler:", {r: len(i["groups"]) for r, i in infos.items()})
        # Held goes pending at its first evaluation; ALERTS_FOR_STATE (its activeAt) is written once restored.
        active_at = float(wait_until(lambda: _query(c, 'ALERTS_FOR_STATE{alertname="Held"}'), 60,
                                     "Held pending")[0]["value"][1])
        time.sleep(max(0.0, active_at + HELD_FOR_S / 2 - time.time()))
        # The rulers evaluate the rule files as the service read them (kept with the service's state), not
        # the files on their node: without the file, the restarted ruler gets its groups back all the same.
        (tmp_path / "rules.yml").rename(tmp_path / "rules.yml.moved-away")
        killed_at = time.time()
        os.kill(infos[owner]["pid"], signal.SIGKILL)
        print(f"killed {owner} (pid {infos[owner]['pid']}) {killed_at - active_at:.1f}s after Held went pending")

        def back():
            try:
                now = {i["id"]: i for i in service.rulers()}
            except Exception:  # noqa: BLE001 - the ruler is restarting
                return None
            return now[owner] if now[owner]["pid"] != infos[owner]["pid"] else None

        again = wait_until(back, 60, f"{owner} restarted")
        print(f"{owner} answered again {time.time() - killed_at:.1f}s after the kill (pid {again['pid']})")
        assert again["restarted"] and sorted(again["groups"]) == sorted(infos[owner]["groups"])
        firing = wait_until(lambda: [a for a in am.of("Held") if not a[2]], 60, "Held firing")
        fired_after = firing[0][0] - killed_at
        print(f"Held fired {fired_after:.1f}s after the kill, {firing[0][0] - active_at:.1f}s after it went pending")
        assert fired_after < HELD_FOR_S, "the for state was not restored: Held waited its whole 'for' again"
        assert _ts(firing[0][1]["startsAt"]) - active_at >= HELD_FOR_S - 1

        # Every group of the killed ruler is evaluated again; its largest gap is printed.
        time.sleep(3)
        series = {s["metric"]["grp"]: [float(t) for t, _ in s["values"]]
                  for s in _query(c, "grp_eval[3m]")}
        gaps = {}
        for key in infos[owner]["groups"]:
            name = key.split(";")[1]
            ts = series[name]
            assert ts[-1] > killed_at + 5, f"group {name} not evaluated since the kill"
            gaps[name] = max(b - a for a, b in zip(ts, ts[1:]))
        worst = max(gaps, key=gaps.get)
        print(f"largest gap in the killed ruler's groups' output: {gaps[worst]:.1f}s (group {worst})")
        interval = {name: (2 + int(name[1:]) % 4) if name != "held" else 1 for name in gaps}
        missed = {name: round(gap / interval[name]) - 1 for name, gap in gaps.items()}
        print("slots missed per group of the killed ruler:", sorted(missed.values(), reverse=True))
        # The bar, no group unevaluated for more than one interval, holds when Ray restarts the ruler
        # within an interval (2-3 s here): checked on the 5 s groups; shorter ones may miss two slots.
        assert not {n: m for n, m in missed.items() if interval[n] == 5 and m > 1}, missed

        # Scaling 3 -> 4 (`shardmon scale --rulers 4`, through the rules API) moves about a quarter of the
        # groups, and no alert is resolved because of it.
        stop_api = _serve_api(service, [c.config()], lambda: {})
        posts_before = len(am.alerts)
        out = run_shardmon("scale", "--rulers", "4", config=c.config_path, timeout=120)
        assert out.returncode == 0, out.stderr
        moved = {k: v for k, v in assignment.moves(list(infos_keys(infos)), 3, 4).items()}
        print(f"3 -> 4 rulers moved {len(moved)} of {N_GROUPS + 1} groups ({out.stdout.strip()})")
        assert out.stdout.strip() == f"4 rulers; {len(moved)} groups moved"
        assert 0.1 * (N_GROUPS + 1) <= len(moved) <= 0.45 * (N_GROUPS + 1)
        assert {new for _, new in moved.values()} == {"ruler-3"}
        infos4 = {i["id"]: i for i in service.rulers()}
        assert sorted(infos4["ruler-3"]["groups"]) == sorted(moved)
        time.sleep(8)
        assert not [a for a in am.of("Held") if a[2]], "a resolved notification was sent"
        series = {s["metric"]["grp"]: float(s["value"][0]) for s in _query(c, "grp_eval")}
        assert all(series[k.split(";")[1]] > time.time() - 8 for k in moved), "a moved group is not evaluated"
        print(f"{len(am.alerts) - posts_before} alerts posted after the scaling, none resolved")
    finally:
        if stop_api:
            stop_api()
        service.stop()
        c.stop()


def infos_keys(infos: dict) -> list[str]:
    return [k for i in infos.values() for k in i["groups"]]
