"""The same rule file evaluated by Debian's Prometheus 2.42 and by Shardmon's Ray rulers, on the same data.

Prometheus scrapes a target served here whose values follow a script over wall time (an alert with
``for`` goes pending, fires, resolves and fires again; one with ``keep_firing_for`` keeps firing over a
gap, then resolves; one with a long ``for`` stays pending) and remote-writes the samples to Shardmon's
receiver (its own rule output, ``ALERTS*`` and the recorded ``svc:*``, is not remote-written). Shardmon's
rulers evaluate the same file (same absolute path, so the same hashed slots) with
``global.rule_query_offset`` of one interval: its evaluation at slot T+I queries at T, what Prometheus
queried at T, by when remote write has surely delivered it (batches within 100 ms). The target's values
change half-way between slots, and it is scraped four times an interval, so a sample scraped just before a
slot has the value of the one before it: whether an evaluation sees it or not cannot change a result.

Each system notifies a capture server of its own and a real Alertmanager 0.25 of its own, started here.
One run (a module fixture) serves every test: the alerts received (labels, annotations, ``startsAt`` and
``endsAt`` within one interval, exactly one in fact: Shardmon's alert times are those of its slots, one
interval after the slot Prometheus saw the same data at; the sequence of states), the recorded series (same timestamps, values within 1e-6), the Alertmanagers'
alerts over the run, and ``/api/v1/rules`` and ``/api/v1/alerts`` (timing fields within one interval).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from shardmon.querier.rules import eval_timestamp_ns
from tests.integration.procs import Cluster, free_port, proc, prometheus_proc, wait_until
from tests.integration.test_rulers import Alertmanager as CaptureServer  # records (arrival, alert)
from tests.integration.test_rules_api_vs_prometheus import strip_timing

I_S = 2  # evaluation interval, s
I_MS = I_S * 1000
GROUP = "diff"
# The script, per phase (one interval each, from the epoch, half-way between two slots): svc_errors of api
# and db (svc_requests stays 100 and 200). The slot after phase k's start sees phase k.
PHASES = [(10, 0), (80, 50), (80, 50), (80, 0), (80, 50), (80, 0), (10, 0), (90, 0), (90, 0), (90, 0)]
RULES = {"groups": [{"name": GROUP, "rules": [
    {"record": "svc:error_ratio", "expr": "svc_errors / on(svc) svc_requests", "labels": {"source": "diff"}},
    {"record": "svc:errors:sum", "expr": "sum without(instance, job) (svc_errors)"},
    {"alert": "HighErrorRatio", "expr": "svc:error_ratio > 0.5", "for": f"{2 * I_S}s",
     "labels": {"severity": "page", "svc_upper": "{{ $labels.svc | toUpper }}"},
     "annotations": {"summary": "error ratio {{ $value | humanizePercentage }} on {{ $labels.svc }}",
                     "value": "{{ $value }} {{ humanize $value }}",
                     "requests": '{{ with query "sum(svc_requests)" }}{{ . | first | value | humanize }}{{ end }}'}},
    {"alert": "DbErrors", "expr": 'svc_errors{svc="db"} > 10', "keep_firing_for": f"{2 * I_S}s",
     "labels": {"severity": "ticket"}, "annotations": {"summary": "{{ $labels.svc }}: {{ $value }} errors"}},
    {"alert": "LongPending", "expr": 'svc:error_ratio{svc="api"} > 0.85', "for": "10m",
     "annotations": {"summary": "{{ $labels.source }}"}},
]}]}
AM_CONFIG = "route: {receiver: blackhole, group_wait: 1h}\nreceivers: [{name: blackhole}]\n"


class Target:
    """/metrics of the scripted values: phase 0's before the epoch, then each phase's for one interval,
    the last one's after the script."""

    def __init__(self) -> None:
        self.epoch: float | None = None
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                api, db = me.values(time.time())
                body = (f'# TYPE svc_errors gauge\nsvc_errors{{svc="api"}} {api}\nsvc_errors{{svc="db"}} {db}\n'
                        f'# TYPE svc_requests gauge\nsvc_requests{{svc="api"}} 100\nsvc_requests{{svc="db"}} 200\n')
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def values(self, now: float) -> tuple[int, int]:
        if self.epoch is None or now < self.epoch:
            return PHASES[0]
        return PHASES[min(int((now - self.epoch) / I_S), len(PHASES) - 1)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get_json(url: str, params: dict | None = None) -> dict:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def ms_of(text: str) -> int:
    """RFC 3339 (Go's, up to nanoseconds; Z or an offset) to Unix milliseconds."""
    m = re.fullmatch(r"([^.Z+]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert m, text
    zone = "+00:00" if m[3] == "Z" else m[3]
    return int(datetime.fromisoformat(m[1] + zone).timestamp()) * 1000 + int(((m[2] or "") + "000")[:3])


class AlertmanagerWatch:
    """Polls an Alertmanager's /api/v2/alerts: per alert (its labels), the states it was seen in, in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, list[str]] = {}
        self.last: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                alerts = get_json(self.url)
            except OSError:
                continue
            self.last = alerts
            present = {json.dumps(a["labels"], sort_keys=True): a["status"]["state"] for a in alerts}
            for key in set(self.seen) | set(present):
                state = present.get(key, "gone")
                states = self.seen.setdefault(key, [])
                if not states or states[-1] != state:
                    states.append(state)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _alertmanager(folder: Path):
    exe = shutil.which("prometheus-alertmanager")
    assert exe, "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(AM_CONFIG)
    port = free_port()
    child = proc(f"alertmanager-{folder.name}", [
        exe, f"--config.file={folder / 'alertmanager.yml'}", f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], folder, port)
    return child, f"127.0.0.1:{port}"


def _docs(base: str) -> dict:
    return {"rules": get_json(f"{base}/api/v1/rules")["data"], "alerts": get_json(f"{base}/api/v1/alerts")["data"]}


def _series(base: str, expr: str, at_s: float) -> dict[str, list[tuple[float, float]]]:
    doc = get_json(f"{base}/api/v1/query", {"query": expr, "time": f"{at_s:.3f}"})
    return {json.dumps(s["metric"], sort_keys=True): [(float(t), float(v)) for t, v in s["values"]]
            for s in doc["data"]["result"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_local):
    """Both systems through the whole script; what each received, recorded and showed."""
    from shardmon.rules.service import RulerService, _serve_api

    assert shutil.which("prometheus"), "prometheus is not installed (scripts/setup.sh installs Debian's package)"
    tmp = tmp_path_factory.mktemp("diff")
    rules_file = tmp / "rules.yml"
    rules_file.write_text(yaml.safe_dump(RULES, sort_keys=False))
    target = Target()
    captures = {"prometheus": CaptureServer(), "shardmon": CaptureServer()}
    children = []
    c = service = stop_api = None
    watches: dict[str, AlertmanagerWatch] = {}
    try:
        ams = {}
        t0 = time.monotonic()
        for system in ("prometheus", "shardmon"):
            child, address = _alertmanager(tmp / f"am-{system}")
            children.append(child.start())  # waited for below: everything starts at once
            ams[system] = address

        prom_port = free_port()
        # One external URL for both (Prometheus's --web.external-url, Shardmon's web.external_url): the
        # alerts' generatorURL must then be equal too.
        external_url = f"http://127.0.0.1:{prom_port}/"  # a path would move Prometheus's API under it
        c = Cluster(tmp / "shardmon", 1, [], receiver={})
        c.raw.update({
            "web": {"external_url": external_url},
            "global": {"scrape_interval": f"{I_S}s", "evaluation_interval": f"{I_S}s", "rule_query_offset": f"{I_S}s"},
            "rule_files": [str(rules_file)],
            "rules": {"rulers": 1, "http_address": f"127.0.0.1:{free_port()}"},
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [captures["shardmon"].address, ams["shardmon"]]}]}]}})
        c.config_path.write_text(yaml.safe_dump(c.raw, sort_keys=False))

        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{I_MS // 4}ms", "scrape_timeout": f"{I_MS // 5}ms",
                       "evaluation_interval": f"{I_S}s"},
            "rule_files": [str(rules_file)],
            "scrape_configs": [{"job_name": "svc", "static_configs": [{"targets": [target.address]}]}],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [captures["prometheus"].address, ams["prometheus"]]}]}]},
            "remote_write": [{
                "url": f"http://127.0.0.1:{c.receiver_port}/api/v1/write",
                "queue_config": {"batch_send_deadline": "100ms", "max_samples_per_send": 1000, "capacity": 10000,
                                 "min_backoff": "50ms", "max_backoff": "500ms"},
                "write_relabel_configs": [{"source_labels": ["__name__"], "regex": "ALERTS|ALERTS_FOR_STATE|svc:.*",
                                           "action": "drop"}]}],
        }, sort_keys=False))
        children.append(prometheus_proc("prometheus", tmp / "prometheus.yml", tmp / "prometheus-data", prom_port,
                                        tmp, "--log.level=warn", f"--web.external-url={external_url}").start())
        prom = f"http://127.0.0.1:{prom_port}"
        shardmon = f"http://127.0.0.1:{c.http_port}"
        c.start()
        service = RulerService(c.config())
        service.start()
        for child in children:
            child.wait_ready(30)
        print(f"[diff] everything up after {time.monotonic() - t0:.1f}s", flush=True)
        stop_api = _serve_api(service, [c.config()], lambda: {})
        # Both evaluate with data: Shardmon's recorded series exists (remote write -> shards -> rulers -> shards).
        wait_until(lambda: get_json(f"{shardmon}/api/v1/query", {"query": "svc:error_ratio"})["data"]["result"], 60,
                   "Shardmon's rulers to record from remote-written data")
        wait_until(lambda: get_json(f"{prom}/api/v1/query", {"query": "svc:error_ratio"})["data"]["result"], 30,
                   "Prometheus to record")
        watches = {s: AlertmanagerWatch(f"http://{ams[s]}/api/v2/alerts") for s in ams}
        print(f"[diff] both recording after {time.monotonic() - t0:.1f}s", flush=True)

        slot = eval_timestamp_ns(str(rules_file), GROUP, I_MS, time.time_ns()) / 1e9
        target.epoch = slot + I_S + I_S / 2
        end = target.epoch + len(PHASES) * I_S
        # Read the documents half-way between two slots: both systems have evaluated the slot before (Shardmon
        # on data of the slot before that), neither the next one.
        read_at = end + I_S  # = a slot + I/2
        time.sleep(max(0.0, read_at - time.time()))
        docs = {"prometheus": _docs(prom), "shardmon": _docs(shardmon)}
        docs_again = _docs(prom)
        series_at = time.time() - I_S
        series = {s: {name: _series(base, f"{name}[{(len(PHASES) + 8) * I_S}s]", series_at)
                      for name in ("svc:error_ratio", "svc:errors:sum")}
                  for s, base in (("prometheus", prom), ("shardmon", shardmon))}
        for w in watches.values():
            w.stop()
        yield {"epoch": target.epoch, "end": end, "captures": captures, "docs": docs, "docs_again": docs_again,
               "series": series, "series_at": series_at,
               "am_seen": {s: w.seen for s, w in watches.items()}, "am_last": {s: w.last for s, w in watches.items()}}
    finally:
        for w in watches.values():
            w.stop()
        if stop_api:
            stop_api()
        if service is not None:
            service.stop()
        for child in reversed(children):
            child.stop()
        if c is not None:
            c.stop()
        target.close()
        for cap in captures.values():
            cap.close()


def _sequences(run, system: str) -> dict[str, list[tuple[str, int, int, dict]]]:
    """Per alert (its labels), the (state, startsAt ms, endsAt ms, annotations) of its notifications in order,
    repeats of the same state dropped. Resolved: endsAt at or before its arrival."""
    out: dict[str, list[tuple[str, int, int, dict]]] = {}
    for arrival, a in run["captures"][system].alerts:
        state = "resolved" if ms_of(a["endsAt"]) <= arrival * 1000 else "firing"
        seq = out.setdefault(json.dumps(a["labels"], sort_keys=True), [])
        if not seq or seq[-1][0] != state:
            seq.append((state, ms_of(a["startsAt"]), ms_of(a["endsAt"]), a["annotations"]))
    return out


def _show(what: str, prom, shardmon) -> str:
    return (f"{what} differ.\n--- Prometheus:\n{json.dumps(prom, indent=1, sort_keys=True)}\n"
            f"--- Shardmon:\n{json.dumps(shardmon, indent=1, sort_keys=True)}")


def test_the_alerts_notified_are_the_same(run):
    prom, ours = _sequences(run, "prometheus"), _sequences(run, "shardmon")
    shown = _show("The notifications (state, startsAt, endsAt per alert)", prom, ours)
    assert sorted(prom) == sorted(ours), shown
    assert {k: [(s, a) for s, _, _, a in v] for k, v in prom.items()} == \
        {k: [(s, a) for s, _, _, a in v] for k, v in ours.items()}, shown
    for key in prom:
        for (_, p_start, p_end, _), (_, s_start, s_end, _) in zip(prom[key], ours[key]):
            # Within one interval; exactly one, in fact: Shardmon's evaluation at T + I saw what Prometheus's saw
            # at T (its query offset), and its alert times are its slot's, as Prometheus 2.53's are.
            assert (s_start - p_start, s_end - p_end) == (I_MS, I_MS), shown
    # The link back to the expression (Alertmanager's "Source"), from the same external URL.
    urls = {s: sorted({(a["labels"]["alertname"], a.get("generatorURL")) for _, a in run["captures"][s].alerts})
            for s in ("prometheus", "shardmon")}
    assert urls["prometheus"] == urls["shardmon"], _show("The generatorURLs", urls["prometheus"], urls["shardmon"])
    assert all(u.startswith("http://127.0.0.1:") and "/graph?g0.expr=" in u for _, u in urls["shardmon"])
    # What the script makes happen, as a user would check it.
    by_name = {json.loads(k)["alertname"]: [s for s, _, _, _ in v] for k, v in prom.items()}
    assert by_name == {"HighErrorRatio": ["firing", "resolved", "firing"], "DbErrors": ["firing", "resolved"]}, shown
    (high,) = [v for k, v in prom.items() if json.loads(k)["alertname"] == "HighErrorRatio"]
    assert json.loads(next(k for k in prom if "HighErrorRatio" in k))["svc_upper"] == "API", shown
    assert [a["summary"] for _, _, _, a in high] == ["error ratio 80% on api"] * 2 + ["error ratio 90% on api"], shown
    assert high[0][3]["requests"] == "300", shown


def test_the_recorded_series_are_the_same(run):
    for name in ("svc:error_ratio", "svc:errors:sum"):
        prom, ours = run["series"]["prometheus"][name], run["series"]["shardmon"][name]
        assert sorted(prom) == sorted(ours), _show(f"The series of {name}", prom, ours)
        lo = run["epoch"] - I_S
        for key in prom:
            # Where both were evaluating: from a little before the script to the last slot both have written.
            hi = min(prom[key][-1][0], ours[key][-1][0])
            p = [(t, v) for t, v in prom[key] if lo <= t <= hi]
            s = [(t, v) for t, v in ours[key] if lo <= t <= hi]
            shown = _show(f"{name} {key}", p, s)
            assert len(p) >= len(PHASES) - 1, shown
            assert [t for t, _ in p] == [t for t, _ in s], shown
            assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for (_, a), (_, b) in zip(p, s)), shown


def _without_timing(doc) -> tuple[dict, list]:
    times: list = []
    doc = json.loads(json.dumps(doc))
    for g in doc.get("groups", []):
        for r in g["rules"]:
            r.get("alerts", []).sort(key=lambda a: sorted(a["labels"].items()))
    if "alerts" in doc:
        doc["alerts"].sort(key=lambda a: sorted(a["labels"].items()))
    return strip_timing(doc, times), times


@pytest.mark.parametrize("doc", ["rules", "alerts"])
def test_the_rules_and_alerts_documents_are_the_same(run, doc):
    prom, prom_times = _without_timing(run["docs"]["prometheus"][doc])
    again, _ = _without_timing(run["docs_again"][doc])
    assert prom == again, "Prometheus's document changed while it was read: the script is not steady at its end"
    ours, our_times = _without_timing(run["docs"]["shardmon"][doc])
    assert ours == prom, _show(f"/api/v1/{doc}", prom, ours)
    assert [k for k, _ in our_times] == [k for k, _ in prom_times]
    for (key, mine), (_, theirs) in zip(our_times, prom_times):
        if theirs.startswith("0001-"):
            assert mine == theirs, (key, mine, theirs)
        elif key == "activeAt":  # one slot later, on the same data (see the notifications' test)
            assert ms_of(mine) - ms_of(theirs) == I_MS, (key, mine, theirs)
        else:  # both evaluated the same slot last
            assert abs(ms_of(mine) - ms_of(theirs)) <= I_MS, (key, mine, theirs)
    states = {a["labels"]["alertname"]: a["state"] for a in run["docs"]["prometheus"]["alerts"].get("alerts", [])}
    if doc == "alerts":
        assert states == {"HighErrorRatio": "firing", "LongPending": "pending"}


def test_the_alertmanagers_got_the_same_alerts(run):
    seen_p, seen_s = run["am_seen"]["prometheus"], run["am_seen"]["shardmon"]
    assert seen_p == seen_s, _show("The alerts each Alertmanager showed over the run (states in order)", seen_p, seen_s)
    assert {json.loads(k)["alertname"]: v for k, v in seen_p.items()} == {
        "HighErrorRatio": ["active", "gone", "active"], "DbErrors": ["active", "gone"]}
    last_p = {json.dumps(a["labels"], sort_keys=True): a for a in run["am_last"]["prometheus"]}
    last_s = {json.dumps(a["labels"], sort_keys=True): a for a in run["am_last"]["shardmon"]}
    shown = _show("The Alertmanagers' alerts at the end", last_p, last_s)
    assert sorted(last_p) == sorted(last_s), shown
    for key, a in last_p.items():
        b = last_s[key]
        assert (a["annotations"], a["status"], a["fingerprint"]) == (b["annotations"], b["status"], b["fingerprint"]), \
            shown
        assert ms_of(b["startsAt"]) - ms_of(a["startsAt"]) == I_MS, shown
        assert ms_of(b["endsAt"]) - ms_of(a["endsAt"]) == I_MS, shown
