"""Drift since the baseline: the facts the target gates on are what they were at the last green deploy.

Collected only with ``--baseline`` and drift paths to fail on (``--fail-on-drift binary,networks``
or the target's ``[drift] fail_on``); the report lists all drift either way.
"""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail

pytestmark = [pytest.mark.infra, pytest.mark.area("drift")]


@pytest.mark.smoke
def test_no_gated_drift_since_the_baseline(drift_host, gated_drift):
    items, baseline = gated_drift(drift_host)
    if items:
        fail(
            drift_host,
            f"gated facts since the baseline {baseline}",
            expected="no drift",
            found="; ".join(item.line() for item in items),
        )
