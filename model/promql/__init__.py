"""The PromQL evaluation both floors share: values over the step grid, range-vector functions, windows and
aggregations (the querier's engine evaluates with them; a shard with them computes partial aggregates for
the querier's aggregation push-down, :mod:`shardmon.model.promql.pushdown`). Nothing here parses PromQL
text: the querier's engine (``shardmon.querier.promql``) does that and calls in here."""
