#!/usr/bin/env bash
# Sets up a fresh machine for Shardmon: redis-server and prometheus (Debian packages) when missing, a
# virtualenv in .venv with Shardmon and its test dependencies. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: redis-server (every shard's storage) and prometheus (a real peer for the
# remote_write test and the benchmarks). Their own services are not used: Shardmon and the tests
# start their own processes on their own ports.
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
# A real exporter for the scrape tests (tests/integration/test_node_exporter.py).
command -v prometheus-node-exporter >/dev/null 2>&1 || missing="$missing prometheus-node-exporter"
# A real Alertmanager (0.25) receiving the notifier's alerts (tests/integration/test_notifier.py).
command -v prometheus-alertmanager >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
# kubectl (1.27 or later: kustomize v5 built in) builds deploy/kubernetes for its offline checks
# (tests/unit/shardmon/test_kubernetes.py). These machines come with it; Debian 12's own kubectl
# (kubernetes-client 1.20) is too old for the kustomization, so it is not installed here: only a warning.
# A real browser for the web UI's tests (tests/integration/test_ui_*.py): chromium driven by chromedriver.
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
command -v kubectl >/dev/null 2>&1 || echo "setup: kubectl is missing: the checks of deploy/kubernetes skip (fail under CI)" >&2
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -q $missing >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $missing >/dev/null
  }
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.shardmon-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv (a minute or two the first time)"
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[test]"; } >"$log" 2>&1; then
    tail -30 "$log"; echo "setup: pip install failed; the whole log is in $log" >&2; exit 1
  fi
  .venv/bin/python -c "import shardmon, ray, grpc, redis, zstandard, promql_parser"
  touch "$stamp"
fi
# The project's own modules byte-compiled, as pip does for the packages it installs (an editable install
# does not): where PYTHONDONTWRITEBYTECODE is set, every start of a service would compile them anew
# (about 0.2 CPU-s of each shard's start here). Files already compiled and unchanged are skipped.
.venv/bin/python -m compileall -q model shards ingest querier rules shardmon >/dev/null || true
