"""`shardmon import openmetrics`: a file of a million timestamped samples backfilled into the shards
and queried back exactly (values bit for bit, timestamps to the millisecond)."""

from __future__ import annotations

import numpy as np

from tests.integration.procs import Cluster, run_shardmon

N_SERIES = 1000
N_SAMPLES = 1000  # per series: a million samples
STEP_MS = 15_000
START_MS = 1_700_000_000_123  # spans about 4.2 hours: three 2h block windows


def _write_file(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    values = rng.normal(1000, 300, (N_SERIES, N_SAMPLES))
    values[::2] = values[::2].round(2)  # Half with two decimals, half with full precision.
    values[0, 5] = float("nan")
    values[1, 7] = float("inf")
    ts = START_MS + np.arange(N_SAMPLES, dtype=np.int64) * STEP_MS
    names = [f'bf_metric{{job="backfill",series="{i}"}}' for i in range(N_SERIES)]
    with open(path, "w") as fh:
        fh.write("# TYPE bf_metric gauge\n# HELP bf_metric Backfilled.\n")
        # Time-major order, as exporters' dumps are: every series at t0, then every series at t1...
        cols = values.T.tolist()
        for j, t in enumerate(ts.tolist()):
            sec = f"{t // 1000}.{t % 1000:03d}"
            fh.write("".join(f"{names[i]} {v!r} {sec}\n" for i, v in enumerate(cols[j])))
        fh.write("# EOF\n")
    return names, ts, values


def test_import_backfills_a_million_samples_that_query_back_exactly(tmp_path):
    cluster = Cluster(tmp_path, n_shards=2, scrape_configs=[], shards_extra={"block_duration": "2h"}).start()
    try:
        path = tmp_path / "backfill.om"
        _, ts, values = _write_file(path)
        proc = run_shardmon("import", "openmetrics", str(path), config=cluster.config_path, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert "imported 1,000,000 samples of 1,000 series" in proc.stdout, proc.stdout
        assert "100.0%" in proc.stderr  # The progress bar reached its end.
        print("\n" + proc.stdout.strip())

        from shardmon.client import QueryClient

        end_s = (ts[-1] + 1) / 1000
        with QueryClient(f"127.0.0.1:{cluster.grpc_port}") as client:
            res = client.instant("bf_metric[5h]", int(end_s * 1000))
        assert res.result_type == "matrix" and len(res.series) == N_SERIES
        for s in res.series:
            i = int(s.labels.get("series"))
            assert s.labels.get("job") == "backfill"
            assert np.array_equal(s.timestamps_ms, ts), i
            assert np.array_equal(s.values.view(np.uint64), values[i].view(np.uint64)), i

        # Importing the same file again adds nothing twice.
        proc = run_shardmon("import", "openmetrics", str(path), config=cluster.config_path, timeout=600)
        assert proc.returncode == 0, proc.stderr
        with QueryClient(f"127.0.0.1:{cluster.grpc_port}") as client:
            again = client.instant("count(bf_metric)", int(end_s * 1000))
            raw = client.instant('bf_metric{series="3"}[5h]', int(end_s * 1000))
        assert again.series[0].values[0] == N_SERIES
        assert raw.series[0].timestamps_ms.shape[0] == N_SAMPLES
    finally:
        cluster.stop()


def test_a_file_without_timestamps_or_eof_is_refused_with_the_line(tmp_path):
    cluster = Cluster(tmp_path, n_shards=1, scrape_configs=[])
    path = tmp_path / "bad.om"
    path.write_text("# TYPE a gauge\na 1 1700000000\na 2\n# EOF\n")
    proc = run_shardmon("import", "openmetrics", str(path), config=cluster.config_path, timeout=60)
    assert proc.returncode == 1 and "line 3" in proc.stderr and "timestamp" in proc.stderr
