"""The Pushgateway API, following the Pushgateway README's examples, checked through PromQL: the
receiver holds pushed groups, the scrapers scrape them with honor_labels, the querier answers."""

from __future__ import annotations

import base64
import gzip
import time
import urllib.parse

import pytest

from tests.integration.httpapi import request, vector
from tests.integration.procs import Cluster, wait_until

INTERVAL_S = 1


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
    from shardmon.ingest.coordinator import start_coordinator

    coordinator = start_coordinator(cluster.config())
    yield coordinator
    ray_local.get(coordinator.stop.remote())
    ray_local.kill(coordinator)


@pytest.fixture(scope="module")
def pg(cluster):
    return f"http://127.0.0.1:{cluster.pushgateway_port}"


def promql(cluster, expr: str) -> dict[frozenset, float]:
    return vector(f"http://127.0.0.1:{cluster.http_port}", expr)


def eventually(cluster, expr: str, want: list[tuple[dict, float]], timeout_s: float = 10 * INTERVAL_S):
    """Wait until ``expr`` returns exactly ``want``: (labels, value) pairs."""
    want = {frozenset(k.items()): v for k, v in want}
    return wait_until(lambda: promql(cluster, expr) == want or None, timeout_s, f"{expr} == {want}", interval_s=0.3)


def test_push_a_single_sample_into_a_job_group_and_delete_it(cluster, ingest, pg):
    # echo "some_metric 3.14" | curl --data-binary @- http://pushgateway.example.org:9091/metrics/job/some_job
    assert request("POST", f"{pg}/metrics/job/some_job", b"some_metric 3.14\n").status == 200
    eventually(cluster, "some_metric", [({"__name__": "some_metric", "job": "some_job"}, 3.14)])
    times = promql(cluster, 'push_time_seconds{job="some_job"}')
    assert len(times) == 1 and abs(next(iter(times.values())) - time.time()) < 30
    assert promql(cluster, 'push_failure_time_seconds{job="some_job"}') == {
        frozenset({"__name__": "push_failure_time_seconds", "job": "some_job"}.items()): 0.0}
    # curl -X DELETE http://pushgateway.example.org:9091/metrics/job/some_job
    assert request("DELETE", f"{pg}/metrics/job/some_job").status == 202
    eventually(cluster, "some_metric", [])  # Ended by a staleness marker, not five minutes later.


def test_push_something_more_complex_into_a_job_and_instance_group(cluster, ingest, pg):
    body = (b"# TYPE some_metric counter\n"
            b'some_metric{label="val1"} 42\n'
            b"# TYPE another_metric gauge\n"
            b"# HELP another_metric Just an example.\n"
            b"another_metric 2398.283\n")
    assert request("PUT", f"{pg}/metrics/job/some_job/instance/some_instance", body).status == 200
    eventually(cluster, 'some_metric{job="some_job"}',
               [({"__name__": "some_metric", "job": "some_job", "instance": "some_instance", "label": "val1"}, 42)])
    eventually(cluster, "another_metric",
               [({"__name__": "another_metric", "job": "some_job", "instance": "some_instance"}, 2398.283)])

    # POST replaces only the families it pushes; PUT replaces the whole group.
    assert request("POST", f"{pg}/metrics/job/some_job/instance/some_instance", b"another_metric 1\n").status == 200
    eventually(cluster, "another_metric", [({"__name__": "another_metric", "job": "some_job", "instance": "some_instance"}, 1)])
    assert len(promql(cluster, 'some_metric{job="some_job"}')) == 1
    assert request("PUT", f"{pg}/metrics/job/some_job/instance/some_instance", b"another_metric 2\n").status == 200
    eventually(cluster, 'some_metric{job="some_job"}', [])

    # Deleting {job="some_job"} leaves the {job="some_job",instance="some_instance"} group alone.
    assert request("DELETE", f"{pg}/metrics/job/some_job").status == 202
    time.sleep(3 * INTERVAL_S)
    assert len(promql(cluster, "another_metric")) == 1
    assert request("DELETE", f"{pg}/metrics/job/some_job/instance/some_instance").status == 202
    eventually(cluster, "another_metric", [])


def test_grouping_keys_with_base64_values_and_empty_values(cluster, ingest, pg):
    path = base64.urlsafe_b64encode(b"/var/tmp").decode().rstrip("=")
    assert path == "L3Zhci90bXA"
    assert request("PUT", f"{pg}/metrics/job/directory_cleaner/path@base64/{path}", b'some_other{foo="bar"} 3.14\n').status == 200
    eventually(cluster, "some_other",
               [({"__name__": "some_other", "job": "directory_cleaner", "path": "/var/tmp", "foo": "bar"}, 3.14)])
    # An empty label value needs the "=" padding; in PromQL an empty label is no label.
    assert request("PUT", f"{pg}/metrics/job/example/first_label@base64/=/second_label/foobar", b"x_total 7\n").status == 200
    eventually(cluster, "x_total", [({"__name__": "x_total", "job": "example", "second_label": "foobar"}, 7)])
    # URI encoding works too, and so does a gzip body.
    name = urllib.parse.quote("Προμηθεύς")
    assert request("PUT", f"{pg}/metrics/job/titan/name/{name}", gzip.compress(b"fire 1\n"),
                   headers={"Content-Encoding": "gzip"}).status == 200
    eventually(cluster, "fire", [({"__name__": "fire", "job": "titan", "name": "Προμηθεύς"}, 1)])


def test_refused_pushes_are_400_and_recorded_as_push_failures(cluster, ingest, pg):
    assert request("PUT", f"{pg}/metrics/job/failing", b"ok_metric 1\n").status == 200
    r = request("PUT", f"{pg}/metrics/job/failing", b"ok_metric 1 1700000000000\n")
    assert r.status == 400 and "timestamps" in r.text
    r = request("PUT", f"{pg}/metrics/job/failing", b"bad{ 1\n")
    assert r.status == 400 and "line 1" in r.text
    r = request("PUT", f"{pg}/metrics/job/other", b"# TYPE ok_metric gauge\nok_metric 2\n")
    assert r.status == 400 and "inconsistent" in r.text
    assert request("PUT", f"{pg}/metrics/job/", b"x 1\n").status in (400, 404)
    failure = wait_until(lambda: promql(cluster, 'push_failure_time_seconds{job="failing"}') or None, 10, "failure time")
    assert next(iter(failure.values())) > 0
    eventually(cluster, "ok_metric", [({"__name__": "ok_metric", "job": "failing"}, 1)])


def test_pushed_groups_survive_a_receiver_restart(cluster, ingest, pg):
    assert request("PUT", f"{pg}/metrics/job/durable/instance/a", b"kept 5\n").status == 200
    # A clean stop writes the groups (receiver.persistence_interval, 5m here, is for what a kill would lose;
    # tests/integration/test_receiver_hostile.py kills one after the interval).
    cluster.receiver.stop()
    cluster.restart_receiver()
    r = request("GET", f"{pg}/metrics")
    assert r.status == 200 and 'kept{instance="a",job="durable"} 5.0' in r.text
    eventually(cluster, "kept", [({"__name__": "kept", "job": "durable", "instance": "a"}, 5)])
