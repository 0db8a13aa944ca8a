"""The Kubernetes metrics APIs (``metrics.k8s.io``, ``custom.metrics.k8s.io``, ``external.metrics.k8s.io``)
served from Shardmon's data, as Metrics Server and prometheus-adapter serve them (``shardmon k8s-api``)."""
