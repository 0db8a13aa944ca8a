"""A shard against hostile timestamps and a Redis that loses its data, on real redis-server and shard
processes: the time guards (a sample 20 days ahead), the Redis identity (FLUSHALL, a restart without
AOF, a rollback to an older snapshot), the recovery paths (--accept-data-loss, --rebuild-from-replicas),
the Redis settings the shard insists on (noeviction, AOF), a failing block cut, and Redis credentials
(password_file, rediss:// with client certificates) that never show up in logs or ``--check``.

How a ShardDB recovers what an older version stored (a lower bound and WAL samples from the future) is
tested in tests/unit/shards/test_engine_recovery.py, and on a real Redis by test_engine_on_redis.py."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shardmon.model.errors import ShardUnavailableError
from shardmon.model.hashing import shards_for_series
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.samples import SampleBatch
from shardmon.procs import redis_server_argv
from shardmon.shards.client import ShardClient
from tests.integration.httpapi import metric
from tests.integration.procs import Child, free_port, proc, run_shardmon, shardmon_proc, wait_until

S = 1000
H = 3_600_000
DAY = 24 * H
N = 10


def _now() -> int:
    return int(time.time() * 1000)


def _series(n: int = N, metric: str = "m") -> tuple[list[Labels], list[bytes], np.ndarray]:
    labels = [Labels.from_dict({"__name__": metric, "i": str(i)}) for i in range(n)]
    return labels, [ls.canonical() for ls in labels], np.array([ls.series_id() for ls in labels], np.uint64)


def _batch(ts, n: int = N, metric: str = "m", value: float = 1.0) -> SampleBatch:
    """One sample per series; ``ts`` one timestamp for all, or one per series."""
    _, keys, ids = _series(n, metric)
    ts = np.broadcast_to(np.asarray(ts, np.int64), (n,)).copy()
    return SampleBatch.of(ids, keys, np.arange(n, dtype=np.uint32), ts, np.full(n, value))


def _read(client: ShardClient, metric: str = "m") -> dict[str, list[int]]:
    return {s.labels.get("i"): s.timestamps_ms.tolist()
            for s in client.series([Matcher(MatchType.EQ, "__name__", metric)], -(2**62), 2**62)}


class Shards:
    """``n`` shard processes, each on its own redis-server, from a configuration this test writes."""

    def __init__(self, tmp: Path, n: int = 1, *, shards_extra: dict | None = None, node_extra=None,
                 redis_extra=(), start_redis: bool = True) -> None:
        self.tmp, self.n = tmp, n
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis_ports = [free_port() for _ in range(n)]
        self.ports = [free_port() for _ in range(n)]
        self.metrics_ports = [free_port() for _ in range(n)]
        nodes = []
        for i in range(n):
            node = {"id": i, "address": f"127.0.0.1:{self.ports[i]}",
                    "redis_url": f"redis://127.0.0.1:{self.redis_ports[i]}/0",
                    "metrics_address": f"127.0.0.1:{self.metrics_ports[i]}"}
            node.update((node_extra or (lambda i: {}))(i))
            nodes.append(node)
        self.raw = {"shards": {"nodes": nodes, "block_duration": "1h", **(shards_extra or {})},
                    "web": {"enable_admin_api": True}}  # Flush is an admin RPC
        self.config_path = tmp / "shardmon.yml"
        self.write_config()
        self.redis: list[Child | None] = [None] * n
        self.shards: list[Child | None] = [None] * n
        self.clients = [ShardClient(i, f"127.0.0.1:{self.ports[i]}") for i in range(n)]
        if start_redis:
            for i in range(n):
                self.start_redis(i, *redis_extra)

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.raw, sort_keys=False))

    def start_redis(self, i: int, *extra: str, aof: bool = True, argv: list[str] | None = None) -> None:
        argv = argv or redis_server_argv(self.redis_ports[i], self.tmp / f"redis-{i}",
                                         appendfsync="everysec" if aof else "off", extra=extra)
        self.redis[i] = proc(f"redis-{i}", argv, self.logs, self.redis_ports[i]).up()

    def start_shard(self, i: int, *flags: str) -> Child:
        self.shards[i] = shardmon_proc(f"shard-{i}", ["shard", "--id", str(i), *flags], self.config_path, self.logs,
                                       self.ports[i]).up()
        return self.shards[i]

    def log(self, i: int) -> str:
        return (self.logs / f"shard-{i}.log").read_text()

    def redis_client(self, i: int) -> redis.Redis:
        return redis.Redis(port=self.redis_ports[i])

    def metric(self, i: int, name: str, **labels: str) -> float:
        """Shard ``i``'s own metric (summed over the samples with these labels); NaN when it has none."""
        return metric(f"http://127.0.0.1:{self.metrics_ports[i]}", name, default=float("nan"), **labels)

    def health(self, i: int, service: str = "shardmon.v1.Shard") -> str:
        with grpc.insecure_channel(f"127.0.0.1:{self.ports[i]}") as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        for p in self.shards + self.redis:
            if p is not None:
                p.stop()


@pytest.fixture()
def shards(tmp_path):
    made: list[Shards] = []

    def make(*args, **kw) -> Shards:
        made.append(Shards(tmp_path / f"c{len(made)}", *args, **kw))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def _refused(client: ShardClient, batch_id: str, batch: SampleBatch) -> str:
    """The error message once a write is refused (a Redis still restarting may refuse differently first)."""
    try:
        client.write(batch_id, batch, timeout_s=3)
    except ShardUnavailableError as exc:
        return str(exc)
    return ""


# -- time guards -------------------------------------------------------------------------------------


def test_a_sample_20_days_ahead_is_refused_and_present_writes_go_on_through_backfill_flush_and_restart(shards):
    c = shards(1, shards_extra={"retention_time": "15d"})
    c.start_shard(0)
    client = c.clients[0]
    t0 = _now()
    assert client.write("w1", _batch(t0 - 60 * S)).samples_appended == N
    # One series' sample 20 days ahead, the others now: that one is refused, the rest written.
    mixed = _batch([t0 + 20 * DAY] + [t0 - 30 * S] * (N - 1))
    out = client.write("w2", mixed)
    assert out.samples_appended == N - 1 and dict(out.samples_rejected) == {"too_far_in_future": 1}
    assert client.write("w3", _batch(t0 - 20 * S)).samples_appended == N  # not out of bounds
    # Within max_future_time (10m) ahead is fine.
    assert client.write("w3b", _batch(t0 + 5 * 60 * S, metric="ahead", n=1)).samples_appended == 1
    # Backfill refuses it too; the past samples of the batch are written.
    bf = client.write("bf1", _batch([t0 + 20 * DAY] + [t0 - 3 * H] * (N - 1)), backfill=True)
    assert bf.samples_appended == N - 1 and dict(bf.samples_rejected) == {"too_far_in_future": 1}
    assert c.metric(0, "shardmon_shard_samples_rejected_total", reason="too_far_in_future") == 2
    # Flush writes the head into blocks (and runs retention): present-day writes still work afterwards.
    assert client.flush() >= 1
    out = client.write("w4", _batch(_now()))
    assert out.samples_appended == N and not out.samples_rejected
    # A restart recovers the same rules: present-day writes go on, nothing from the future, nothing lost.
    c.shards[0].kill()
    c.start_shard(0)
    t5 = _now()
    assert wait_until(lambda: _write_ok(client, "w5", _batch(t5)), 30, "the restarted shard").samples_appended == N
    got = _read(client)
    assert len(got) == N
    assert all(max(ts) <= t5 for ts in got.values())
    assert got["1"][:3] == [t0 - 3 * H, t0 - 60 * S, t0 - 30 * S] and got["1"][-1] == t5
    assert got["0"][:2] == [t0 - 60 * S, t0 - 20 * S]  # its future sample never went in
    assert _read(client, "ahead") == {"0": [t0 + 5 * 60 * S]}


def test_an_import_says_which_samples_the_shards_refused_as_too_far_in_the_future(shards, tmp_path):
    c = shards(1)
    c.start_shard(0)
    now_s = _now() // 1000
    path = tmp_path / "f.om"
    path.write_text(f"# TYPE x gauge\nx 1 {now_s - 3600}\nx 2 {now_s + 20 * 86400}\n# EOF\n")
    proc = run_shardmon("import", "openmetrics", str(path), config=c.config_path)
    assert proc.returncode == 0, proc.stderr
    assert "refused by the shards: 1 too far in future" in proc.stdout, proc.stdout
    assert list(_read(c.clients[0], "x").values()) == [[(now_s - 3600) * 1000]]


def _write_ok(client, batch_id, batch):
    try:
        return client.write(batch_id, batch, timeout_s=3)
    except ShardUnavailableError:
        return None


# -- Redis integrity ---------------------------------------------------------------------------------


def test_flushall_is_noticed_writes_are_refused_reads_go_on_and_accept_data_loss_recovers(shards):
    c = shards(1)
    c.start_shard(0)
    client = c.clients[0]
    t0 = _now()
    assert client.write("a1", _batch(t0 - 10 * S)).samples_appended == N
    assert c.metric(0, "shardmon_shard_redis_data_lost") == 0 and c.health(0) == "SERVING"
    c.redis_client(0).flushall()
    msg = _refused(client, "a2", _batch(t0 - 5 * S))
    assert "lost data" in msg and "identity key shardmon:0:identity is gone" in msg and "--accept-data-loss" in msg
    assert c.metric(0, "shardmon_shard_redis_data_lost") == 1
    wait_until(lambda: c.health(0) == "NOT_SERVING", 5, "the Shard service's health to turn NOT_SERVING")
    assert c.health(0, "") == "SERVING"  # the process serves (reads)
    assert _read(client) == {str(i): [t0 - 10 * S] for i in range(N)}  # reads go on (from memory)
    # Nothing was written into the flushed Redis but the marker that remembers the loss.
    assert {k.decode() for k in c.redis_client(0).keys("*")} == {"shardmon:0:data_lost"}
    # A restart without the flag still refuses: the loss must be accepted explicitly.
    c.shards[0].stop()
    c.start_shard(0)
    assert "lost data" in wait_until(lambda: _refused(client, "a3", _batch(t0 - 4 * S)), 30, "a refusal")
    assert c.metric(0, "shardmon_shard_redis_data_lost") == 1
    c.shards[0].stop()
    c.start_shard(0, "--accept-data-loss")
    out = wait_until(lambda: _write_ok(client, "a4", _batch(t0 - 3 * S)), 30, "writes after --accept-data-loss")
    assert out.samples_appended == N
    assert c.metric(0, "shardmon_shard_redis_data_lost") == 0
    wait_until(lambda: c.health(0) == "SERVING", 5, "health SERVING")
    assert _read(client) == {str(i): [t0 - 3 * S] for i in range(N)}
    assert "data loss accepted" in c.log(0)


def test_a_redis_restarted_without_aof_is_noticed_whether_it_comes_back_empty_or_from_an_old_snapshot(shards):
    c = shards(2)
    c.start_shard(0)
    c.start_shard(1)
    t0 = _now()
    for i in range(2):
        assert c.clients[i].write("b1", _batch(t0 - 10 * S)).samples_appended == N
    # Redis 0 comes back empty (no AOF, no snapshot).
    c.redis[0].kill()
    c.start_redis(0, aof=False)
    msg = wait_until(lambda: _refused(c.clients[0], "b2", _batch(t0 - 5 * S)), 30, "the loss to be noticed")
    assert "identity key shardmon:0:identity is gone" in msg
    # Redis 1 comes back from a snapshot older than the shard's last writes (Debian's default: RDB, no AOF).
    c.redis_client(1).save()
    assert c.clients[1].write("b2", _batch(t0 - 5 * S)).samples_appended == N
    c.redis[1].kill()
    c.start_redis(1, aof=False)
    msg = wait_until(lambda: _refused(c.clients[1], "b3", _batch(t0 - 4 * S)), 30, "the rollback to be noticed")
    assert "generation went back" in msg
    assert c.metric(1, "shardmon_shard_redis_data_lost") == 1


def test_rebuild_from_replicas_brings_a_shards_series_back(shards):
    c = shards(3, shards_extra={"replication_factor": 2})
    for i in range(3):
        c.start_shard(i)
    n = 60
    labels, keys, ids = _series(n, "rb")
    owners = shards_for_series(ids, [0, 1, 2], 2)
    t0 = _now() - 20 * 60 * S
    steps = np.arange(20) * 30 * S + t0
    for shard in range(3):
        rows = np.flatnonzero((owners == shard).any(axis=1))
        refs = np.repeat(np.arange(rows.shape[0], dtype=np.uint32), steps.shape[0])
        batch = SampleBatch.of(ids[rows], [keys[r] for r in rows], refs, np.tile(steps, rows.shape[0]),
                               np.tile(steps.astype(np.float64), rows.shape[0]))
        assert c.clients[shard].write(f"rb-{shard}", batch).samples_appended == batch.num_samples
    c.clients[0].flush()  # some of it in blocks, on every shard alike
    want = _read(c.clients[0], "rb")
    assert len(want) == int((owners == 0).any(axis=1).sum()) and 0 < len(want) < n
    c.redis_client(0).flushall()
    assert "lost data" in _refused(c.clients[0], "rb-x", _batch(_now(), metric="rb", n=1))
    c.shards[0].stop()
    c.start_shard(0, "--rebuild-from-replicas")
    wait_until(lambda: "rebuild from replicas done" in c.log(0), 60, "the rebuild")
    assert _read(c.clients[0], "rb") == want  # exactly its own series, every sample, once
    assert c.metric(0, "shardmon_shard_rebuilt_samples_total") == len(want) * steps.shape[0]
    assert c.metric(0, "shardmon_shard_redis_data_lost") == 0
    assert c.clients[0].write("rb-after", _batch(_now(), metric="rb", n=1)).samples_appended == 1


# -- the Redis settings the shard insists on ---------------------------------------------------------


def test_a_redis_that_may_evict_keys_is_refused_at_start(shards):
    c = shards(1, redis_extra=("--maxmemory-policy", "allkeys-lru"))
    res = run_shardmon("shard", "--id", "0", config=c.config_path, timeout=60)
    assert res.returncode == 2
    assert "maxmemory-policy allkeys-lru" in res.stderr and "noeviction" in res.stderr


def test_the_shard_makes_aof_persistent_or_refuses_writes_without_it(shards):
    # A Redis with a config file saying appendonly no: the shard turns AOF on and rewrites the file.
    c = shards(1, start_redis=False)
    conf = c.tmp / "redis.conf"
    conf.write_text("appendonly no\n")
    c.start_redis(0, argv=redis_server_argv(c.redis_ports[0], c.tmp / "redis-0", appendfsync="off", config_file=conf))
    c.start_shard(0)
    assert "appendonly yes" in conf.read_text()
    assert c.clients[0].write("d1", _batch(_now())).samples_appended == N
    assert c.metric(0, "shardmon_shard_redis_appendonly") == 1
    # A Redis without AOF that refuses CONFIG (as managed ones do): writes are refused, not acknowledged.
    d = shards(1, start_redis=False)
    d.start_redis(0, "--rename-command", "CONFIG", "", aof=False)
    d.start_shard(0)
    msg = _refused(d.clients[0], "e1", _batch(_now()))
    assert "without an append-only file" in msg and "shards.wal_appendfsync" in msg
    assert d.metric(0, "shardmon_shard_redis_appendonly") == 0
    wait_until(lambda: d.health(0) == "NOT_SERVING", 5, "health NOT_SERVING")
    # ...unless the configuration asks for no AOF.
    d.shards[0].stop()
    d.raw["shards"]["wal_appendfsync"] = "off"
    d.write_config()
    d.start_shard(0)
    assert d.clients[0].write("e2", _batch(_now())).samples_appended == N


def test_a_failing_block_cut_is_retried_with_backoff_counted_and_shown_in_health(shards):
    c = shards(1, shards_extra={"block_duration": "4s"})
    c.start_shard(0)
    client = c.clients[0]
    r = c.redis_client(0)
    # Two samples 7 s apart (the second a little ahead of the clock): the first's window is cut once the
    # clock passes its end by 2 s. Redis is out of memory by then.
    t0 = _now()
    client.write("c1", _batch(t0))
    client.write("c2", _batch(t0 + 7 * S))
    r.config_set("maxmemory", "1")
    with pytest.raises(ShardUnavailableError, match="maxmemory"):
        client.write("c3", _batch(t0 + 8 * S))  # retryable: the sender keeps it
    wait_until(lambda: c.metric(0, "shardmon_shard_block_cut_failures_total") >= 3, 60, "three failed cuts")
    assert c.metric(0, "shardmon_shard_block_cut_consecutive_failures") >= 3
    assert c.health(0) == "NOT_SERVING"
    assert c.metric(0, "shardmon_shard_blocks") == 0
    r.config_set("maxmemory", "0")
    wait_until(lambda: c.metric(0, "shardmon_shard_blocks") >= 1, 60, "the cut to succeed")
    wait_until(lambda: c.health(0) == "SERVING", 10, "health back")
    assert c.metric(0, "shardmon_shard_block_cut_consecutive_failures") == 0
    assert "block cut failed (1 in a row)" in c.log(0)
    assert _read(client) == {str(i): [t0, t0 + 7 * S] for i in range(N)}


# -- Redis credentials ---------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=shardmon test CA", cwd=folder)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=folder)
        (folder / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)
    return folder


PASSWORD = "s3cret-Pa55word"


def test_rediss_with_client_certificates_and_a_password_file_and_no_password_anywhere(shards, tmp_path):
    certs = _certificates(tmp_path / "certs")
    pw_file = tmp_path / "redis.pw"
    pw_file.write_text(PASSWORD + "\n")
    c = shards(1, start_redis=False, node_extra=lambda i: {
        "redis_password_file": str(pw_file),
        "redis_tls_config": {"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / "client.crt"),
                             "key_file": str(certs / "client.key")}})
    c.raw["shards"]["nodes"][0]["redis_url"] = f"rediss://127.0.0.1:{c.redis_ports[0]}/0"
    c.write_config()
    c.start_redis(0, argv=redis_server_argv(0, c.tmp / "redis-0", extra=(
        "--tls-port", str(c.redis_ports[0]), "--tls-cert-file", str(certs / "server.crt"),
        "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file", str(certs / "ca.crt"),
        "--tls-auth-clients", "yes", "--requirepass", PASSWORD)))
    c.start_shard(0)
    t0 = _now()
    assert c.clients[0].write("t1", _batch(t0)).samples_appended == N
    assert _read(c.clients[0]) == {str(i): [t0] for i in range(N)}
    check = run_shardmon("shard", "--id", "0", "--check", config=c.config_path, timeout=60)
    assert check.returncode == 0 and "rediss://127.0.0.1" in check.stdout and "TLS" in check.stdout
    assert PASSWORD not in check.stdout + check.stderr + c.log(0)
    # Without a client certificate the TLS Redis refuses the shard (tls-auth-clients yes).
    c.shards[0].stop()
    del c.raw["shards"]["nodes"][0]["redis_tls_config"]["cert_file"]
    del c.raw["shards"]["nodes"][0]["redis_tls_config"]["key_file"]
    c.write_config()
    proc = shardmon_proc("shard-0-nocert", ["shard", "--id", "0"], c.config_path, c.logs, None).start()
    try:
        wait_until(lambda: "waiting for redis" in (c.logs / "shard-0-nocert.log").read_text(), 30, "a refusal")
    finally:
        proc.stop()


def test_a_password_in_redis_url_is_used_and_masked_and_a_wrong_one_is_refused(shards):
    c = shards(1, start_redis=False)
    c.raw["shards"]["nodes"][0]["redis_url"] = f"redis://:{PASSWORD}@127.0.0.1:{c.redis_ports[0]}/0"
    c.write_config()
    c.start_redis(0, "--requirepass", PASSWORD)
    check = run_shardmon("shard", "--id", "0", "--check", config=c.config_path, timeout=60)
    assert check.returncode == 0 and "password set" in check.stdout and PASSWORD not in check.stdout
    c.start_shard(0)
    assert c.clients[0].write("p1", _batch(_now())).samples_appended == N
    assert PASSWORD not in c.log(0)
    c.shards[0].stop()
    c.raw["shards"]["nodes"][0]["redis_url"] = f"redis://:wrong-{PASSWORD}@127.0.0.1:{c.redis_ports[0]}/0"
    c.write_config()
    proc = shardmon_proc("shard-0-wrong", ["shard", "--id", "0"], c.config_path, c.logs, None).start()
    try:
        log = wait_until(lambda: (lambda t: t if "waiting for redis" in t else "")(
            (c.logs / "shard-0-wrong.log").read_text()), 30, "the refusal to be logged")
    finally:
        proc.stop()
    assert PASSWORD not in log
