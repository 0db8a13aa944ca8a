"""The rulers: rule groups of ``rule_files`` evaluated by Ray actors over the shards (``shardmon ruler``).

:mod:`shardmon.rules.assignment` spreads groups over ruler ids (a hash ring), :mod:`shardmon.rules.runner`
runs one ruler's groups on its event loop, :mod:`shardmon.rules.ruler_actor` is the Ray actor around it and
:mod:`shardmon.rules.service` the driver that starts, scales and reloads the rulers; :mod:`shardmon.rules.api` is its HTTP API
(``rules.http_address``).
"""
