"""The querier: PromQL over the shard fan-out, served over the Prometheus HTTP API and gRPC. The engine
is the subpackage :mod:`shardmon.querier.promql`; the modules here serve it (see querier/README.md)."""
