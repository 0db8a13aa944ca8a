"""buildinfo: Prometheus's fields, the checkout's revision when there is one."""

import re

from shardmon.model.buildinfo import build_info


def test_buildinfo_has_prometheus_fields_and_this_checkouts_revision():
    info = build_info()
    assert set(info) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    assert all(isinstance(v, str) for v in info.values())
    assert re.fullmatch(r"python3\.\d+\.\d+.*", info["goVersion"])
    assert info["revision"] == "" or re.fullmatch(r"[0-9a-f]{40}", info["revision"])
