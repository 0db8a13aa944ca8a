"""Settings shared by the fuzz tests (property-based, with hypothesis).

Each input must be handled within a time budget: hypothesis's ``deadline``, generous (the inputs are
small and take milliseconds; the budget only catches super-linear paths, and the machine may be busy).
By default each test runs a modest number of examples, so the unit suite stays fast;
``SHARDMON_FUZZ_EXAMPLES=5000`` runs that many per test instead (a longer hunt, e.g. before a release).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

#: Examples per fuzz test when set (overrides each test's own default).
EXAMPLES = int(os.environ.get("SHARDMON_FUZZ_EXAMPLES", "0") or 0)


def fuzz(examples: int = 150, deadline_ms: int = 2000) -> settings:
    """Settings for one fuzz test: ``examples`` inputs (or ``SHARDMON_FUZZ_EXAMPLES``), each within
    ``deadline_ms``."""
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=timedelta(milliseconds=deadline_ms),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
