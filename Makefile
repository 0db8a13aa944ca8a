# The two commands of the README. Each sets the machine up first (scripts/setup.sh).
.PHONY: up test setup

setup:
	@scripts/setup.sh

# A whole local cluster on the embedded default config; Ctrl-C stops it.
up: setup
	@.venv/bin/shardmon up

# The whole test suite: unit, PromQL scripts and integration tests on real processes.
test: setup
	@.venv/bin/python -m pytest -q
