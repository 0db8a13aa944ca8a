"""Go's text/template as Prometheus uses it for alert labels and annotations (pure logic, no I/O).

``executor.Template`` parses and executes a template; ``prometheus`` adds Prometheus's data, prelude and
function map (``expand_template``, ``check_template``).
"""
