# The two commands of the README. Each sets the machine up first (scripts/setup.sh).
.PHONY: up test setup

setup:
	@scripts/setup.sh

# A whole local cluster on the embedded default config; Ctrl-C stops it.
up: setup
	@.venv/bin/shardmon up

# The whole test suite: unit tests (pure logic, on every core), then the PromQL scripts and integration
# tests on real processes, one at a time (they time real intervals and start real services).
test: setup
	@.venv/bin/python -m pytest -q -n auto tests/unit
	@.venv/bin/python -m pytest -q tests/integration
