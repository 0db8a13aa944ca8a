"""The rulers' HTTP API (rules/api.py) on a real listener, over fake ruler calls (the rulers are Ray
actors): the merged, sorted and filtered Prometheus documents, the lifecycle endpoints, 503 when the rulers
do not answer, and the request counter."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from shardmon.model.config import parse_config
from shardmon.model.errors import BadRequestError, ShardmonError
from shardmon.procs import free_port
from shardmon.rules.api import LIFECYCLE_DISABLED, REGISTRY, RulesAPI, serve


def group(file: str, name: str, *kinds: str) -> dict:
    return {"name": name, "file": file, "rules": [{"name": f"{name}-{k}", "query": "x > 1", "type": k} for k in kinds],
            "interval": 60.0, "limit": 0, "evaluationTime": 0.000054864, "lastEvaluation": "0001-01-01T00:00:00Z"}


class FakeRulers:
    """Two rulers' worth of groups and alerts; records scale and reload calls; fails when told."""

    def __init__(self) -> None:
        self.calls: list = []
        self.down = False

    def groups(self) -> list[dict]:
        if self.down:
            raise ShardmonError("ruler-1 does not answer", retryable=True)
        return [group("b.yml", "g1", "alerting"), group("a.yml", "z", "recording", "alerting"),
                group("a.yml", "b", "recording")]

    def alerts(self) -> list[dict]:
        return [{"labels": {"alertname": name}, "annotations": {}, "state": "firing",
                 "activeAt": "2023-11-14T22:13:20Z", "value": "1e+00"} for name in ("B", "A")]

    def scale(self, n: int) -> dict:
        self.calls.append(("scale", n))
        if n == 13:
            raise BadRequestError("count 13 is more than the service allows")
        return {"rulers": n, "groups": 3, "moved": 1}

    def reload(self) -> dict:
        self.calls.append(("reload",))
        return {"groups": 3}


@pytest.fixture
def api_at():
    stops = []

    def start(config_text: str = "") -> tuple[str, FakeRulers]:
        fake = FakeRulers()
        config = parse_config(config_text)
        api = RulesAPI(fake.groups, fake.alerts, lambda: [{"ruler": "ruler-0", "groups": 3}], fake.scale,
                       fake.reload, lambda: config, max_rulers=16)
        address = f"127.0.0.1:{free_port()}"
        stops.append(serve(api, address))
        return f"http://{address}", fake

    yield start
    for stop in stops:
        stop()


def call(url: str, data: dict | None = None, method: str | None = None) -> tuple[int, str, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def counted(handler: str, code: str) -> float:
    return REGISTRY.get_sample_value("shardmon_ruler_api_requests_total", {"handler": handler, "code": code}) or 0.0


def test_rules_and_alerts_are_merged_sorted_and_filtered_as_prometheus(api_at):
    base, _ = api_at()
    before = counted("rules", "200")
    status, ctype, text = call(base + "/api/v1/rules")
    assert status == 200 and ctype.startswith("application/json")
    doc = json.loads(text)
    assert doc["status"] == "success"
    assert [(g["file"], g["name"]) for g in doc["data"]["groups"]] == [("a.yml", "b"), ("a.yml", "z"), ("b.yml", "g1")]
    # Written as Go writes it: > escaped, floats with Go's digits.
    assert '"query":"x \\u003e 1"' in text and '"interval":60,' in text and '"evaluationTime":0.000054864' in text
    _, _, text = call(base + "/api/v1/rules?type=Alert")
    assert [[r["type"] for r in g["rules"]] for g in json.loads(text)["data"]["groups"]] == [[], ["alerting"], ["alerting"]]
    status, _, text = call(base + "/api/v1/rules?type=foo")
    assert status == 400 and json.loads(text) == {
        "status": "error", "errorType": "bad_data", "error": 'invalid parameter "type": not supported value "foo"'}
    _, _, text = call(base + "/api/v1/alerts")
    assert [a["labels"]["alertname"] for a in json.loads(text)["data"]["alerts"]] == ["A", "B"]
    assert call(base + "/api/v1/rules", {"type": "alert"})[0] == 405  # GET only, as 2.42
    assert counted("rules", "200") == before + 2 and counted("rules", "400") >= 1


def test_rulers_that_do_not_answer_are_a_retryable_503(api_at):
    base, fake = api_at()
    fake.down = True
    status, _, text = call(base + "/api/v1/rules")
    assert status == 503 and json.loads(text)["errorType"] == "unavailable" and "ruler-1" in text


def test_scaling_and_reload_are_the_lifecycle_api(api_at):
    base, fake = api_at()
    assert call(base + "/api/v1/rulers")[0] == 200
    status, _, text = call(base + "/api/v1/rulers", {"count": "3"})
    assert status == 403 and json.loads(text)["error"] == LIFECYCLE_DISABLED
    status, ctype, text = call(base + "/-/reload", {})
    assert (status, text) == (403, LIFECYCLE_DISABLED) and ctype.startswith("text/plain")
    assert fake.calls == []

    base, fake = api_at("web:\n  enable_lifecycle: true\n")
    status, _, text = call(base + "/api/v1/rulers", {"count": "4"})
    assert status == 200 and json.loads(text)["data"] == {"rulers": 4, "groups": 3, "moved": 1}
    for bad, words in (("0", "at least 1"), ("x", "at least 1"), ("17", "more than the most rulers allowed (16)"),
                       ("13", "more than the service allows")):
        status, _, text = call(base + "/api/v1/rulers", {"count": bad})
        assert status == 400 and words in json.loads(text)["error"], bad
    assert call(base + "/-/reload", {})[0] == 200
    assert call(base + "/-/reload")[0] == 405
    assert fake.calls == [("scale", 4), ("scale", 13), ("reload",)]
    assert call(base + "/-/healthy")[0] == 200 and call(base + "/-/ready")[0] == 200
    status, _, text = call(base + "/metrics")
    assert status == 200 and 'shardmon_ruler_api_requests_total{code="200",handler="rulers"}' in text
