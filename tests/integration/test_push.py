"""The Pushgateway API, following the Pushgateway README's examples, checked through PromQL: the
receiver holds pushed groups, the scrapers scrape them with honor_labels, the querier answers."""

from __future__ import annotations

import base64
import gzip
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.integration.procs import Cluster, wait_until

INTERVAL_S = 1


def _req(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("push")
    # The scrape job must point at the Pushgateway port the cluster picks: build, then rewrite.
    c = Cluster(tmp, n_shards=2, scrape_configs=[], receiver={},
                global_={"scrape_interval": f"{INTERVAL_S}s", "scrape_timeout": "1s"},
                ingest={"self_monitoring": False})
    c.raw["scrape_configs"] = [{"job_name": "pushgateway", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{c.pushgateway_port}"]}]}]
    import yaml

    c.config_path.write_text(yaml.safe_dump(c.raw, sort_keys=False))
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def ingest(ray_local, cluster):
    from ingest.coordinator import start_coordinator

    coordinator = start_coordinator(cluster.config())
    yield coordinator
    ray_local.get(coordinator.stop.remote())
    ray_local.kill(coordinator)


@pytest.fixture(scope="module")
def pg(cluster):
    return f"http://127.0.0.1:{cluster.pushgateway_port}"


def promql(cluster, expr: str) -> dict[frozenset, float]:
    url = f"http://127.0.0.1:{cluster.http_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in body["data"]["result"]}


def eventually(cluster, expr: str, want: list[tuple[dict, float]], timeout_s: float = 10 * INTERVAL_S):
    """Wait until ``expr`` returns exactly ``want``: (labels, value) pairs."""
    want = {frozenset(k.items()): v for k, v in want}
    return wait_until(lambda: promql(cluster, expr) == want or None, timeout_s, f"{expr} == {want}", interval_s=0.3)


def test_push_a_single_sample_into_a_job_group_and_delete_it(cluster, ingest, pg):
    # echo "some_metric 3.14" | curl --data-binary @- http://pushgateway.example.org:9091/metrics/job/some_job
    assert _req("POST", f"{pg}/metrics/job/some_job", b"some_metric 3.14\n")[0] == 200
    eventually(cluster, "some_metric", [({"__name__": "some_metric", "job": "some_job"}, 3.14)])
    times = promql(cluster, 'push_time_seconds{job="some_job"}')
    assert len(times) == 1 and abs(next(iter(times.values())) - time.time()) < 30
    assert promql(cluster, 'push_failure_time_seconds{job="some_job"}') == {
        frozenset({"__name__": "push_failure_time_seconds", "job": "some_job"}.items()): 0.0}
    # curl -X DELETE http://pushgateway.example.org:9091/metrics/job/some_job
    assert _req("DELETE", f"{pg}/metrics/job/some_job")[0] == 202
    eventually(cluster, "some_metric", [])  # Ended by a staleness marker, not five minutes later.


def test_push_something_more_complex_into_a_job_and_instance_group(cluster, ingest, pg):
    body = (b"# TYPE some_metric counter\n"
            b'some_metric{label="val1"} 42\n'
            b"# TYPE another_metric gauge\n"
            b"# HELP another_metric Just an example.\n"
            b"another_metric 2398.283\n")
    assert _req("PUT", f"{pg}/metrics/job/some_job/instance/some_instance", body)[0] == 200
    eventually(cluster, 'some_metric{job="some_job"}',
               [({"__name__": "some_metric", "job": "some_job", "instance": "some_instance", "label": "val1"}, 42)])
    eventually(cluster, "another_metric",
               [({"__name__": "another_metric", "job": "some_job", "instance": "some_instance"}, 2398.283)])

    # POST replaces only the families it pushes; PUT replaces the whole group.
    assert _req("POST", f"{pg}/metrics/job/some_job/instance/some_instance", b"another_metric 1\n")[0] == 200
    eventually(cluster, "another_metric", [({"__name__": "another_metric", "job": "some_job", "instance": "some_instance"}, 1)])
    assert len(promql(cluster, 'some_metric{job="some_job"}')) == 1
    assert _req("PUT", f"{pg}/metrics/job/some_job/instance/some_instance", b"another_metric 2\n")[0] == 200
    eventually(cluster, 'some_metric{job="some_job"}', [])

    # Deleting {job="some_job"} leaves the {job="some_job",instance="some_instance"} group alone.
    assert _req("DELETE", f"{pg}/metrics/job/some_job")[0] == 202
    time.sleep(3 * INTERVAL_S)
    assert len(promql(cluster, "another_metric")) == 1
    assert _req("DELETE", f"{pg}/metrics/job/some_job/instance/some_instance")[0] == 202
    eventually(cluster, "another_metric", [])


def test_grouping_keys_with_base64_values_and_empty_values(cluster, ingest, pg):
    path = base64.urlsafe_b64encode(b"/var/tmp").decode().rstrip("=")
    assert path == "L3Zhci90bXA"
    assert _req("PUT", f"{pg}/metrics/job/directory_cleaner/path@base64/{path}", b'some_other{foo="bar"} 3.14\n')[0] == 200
    eventually(cluster, "some_other",
               [({"__name__": "some_other", "job": "directory_cleaner", "path": "/var/tmp", "foo": "bar"}, 3.14)])
    # An empty label value needs the "=" padding; in PromQL an empty label is no label.
    assert _req("PUT", f"{pg}/metrics/job/example/first_label@base64/=/second_label/foobar", b"x_total 7\n")[0] == 200
    eventually(cluster, "x_total", [({"__name__": "x_total", "job": "example", "second_label": "foobar"}, 7)])
    # URI encoding works too, and so does a gzip body.
    name = urllib.parse.quote("Προμηθεύς")
    assert _req("PUT", f"{pg}/metrics/job/titan/name/{name}", gzip.compress(b"fire 1\n"),
                {"Content-Encoding": "gzip"})[0] == 200
    eventually(cluster, "fire", [({"__name__": "fire", "job": "titan", "name": "Προμηθεύς"}, 1)])


def test_refused_pushes_are_400_and_recorded_as_push_failures(cluster, ingest, pg):
    assert _req("PUT", f"{pg}/metrics/job/failing", b"ok_metric 1\n")[0] == 200
    status, text = _req("PUT", f"{pg}/metrics/job/failing", b"ok_metric 1 1700000000000\n")
    assert status == 400 and "timestamps" in text
    status, text = _req("PUT", f"{pg}/metrics/job/failing", b"bad{ 1\n")
    assert status == 400 and "line 1" in text
    status, text = _req("PUT", f"{pg}/metrics/job/other", b"# TYPE ok_metric gauge\nok_metric 2\n")
    assert status == 400 and "inconsistent" in text
    assert _req("PUT", f"{pg}/metrics/job/", b"x 1\n")[0] in (400, 404)
    failure = wait_until(lambda: promql(cluster, 'push_failure_time_seconds{job="failing"}') or None, 10, "failure time")
    assert next(iter(failure.values())) > 0
    eventually(cluster, "ok_metric", [({"__name__": "ok_metric", "job": "failing"}, 1)])


def test_pushed_groups_survive_a_receiver_restart(cluster, ingest, pg):
    assert _req("PUT", f"{pg}/metrics/job/durable/instance/a", b"kept 5\n")[0] == 200
    # A clean stop writes the groups (receiver.persistence_interval, 5m here, is for what a kill would lose;
    # tests/integration/test_receiver_hostile.py kills one after the interval).
    cluster.receiver.stop()
    cluster.restart_receiver()
    status, text = _req("GET", f"{pg}/metrics")
    assert status == 200 and 'kept{instance="a",job="durable"} 5.0' in text
    eventually(cluster, "kept", [({"__name__": "kept", "job": "durable", "instance": "a"}, 5)])
