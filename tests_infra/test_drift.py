"""Drift since the baseline: the facts the target gates on are what they were at the last green deploy.

Collected only with ``--baseline`` and drift paths to fail on (``--fail-on-drift binary,networks``
or the target's ``[drift] fail_on``); the report lists all drift either way.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.area("drift")]


@pytest.mark.smoke
def test_no_gated_drift_since_the_baseline(drift_host, gated_drift):
    items, baseline = gated_drift(drift_host)
    if items:
        pytest.fail(f"{drift_host}: drifted since the baseline {baseline}: " + "; ".join(item.line() for item in items), pytrace=False)
