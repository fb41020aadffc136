"""The run's lifecycle: the target validated before collection, gathering started, the selected checks
settled (secrets, replay, drift gate), the edge waited for once (exit 6), the round trips sent early."""

from __future__ import annotations

import concurrent.futures
import gc

import pytest

from viworks_verify.core.polling import NotReady, poll_until
from viworks_verify.edge.endpoint import EdgeEndpoint
from viworks_verify.gather.gathering import Gathering
from viworks_verify.plugin.state import (
    EXIT_NOT_READY,
    HOST_PARAMETERS,
    LIVE_FIXTURES,
    NEEDS_SECRETS,
    Run,
    usage_error,
)
from viworks_verify.target.secrets import MissingSecret, Secrets

# The fixtures that hand a check a host's snapshot: a run with a check that takes one starts the gathering.
SNAPSHOT_FIXTURES = {parameter.fixture for parameter in HOST_PARAMETERS if parameter.judges_snapshot}


def _start_round_trips(run: Run, edge: EdgeEndpoint) -> None:
    """Send the command round trip to every Online gateway now, in the background: it runs while
    the host checks are judged, and the round-trip checks find it done (or still waiting for it)."""
    from viworks_verify.backend.api import BackendApi
    from viworks_verify.wire.round_trips import round_trips

    settings = run.settings
    try:
        token = Secrets.load(settings.secrets_file).api_token(role="admin")
    except MissingSecret:
        return  # the checks that need the token say so

    def send() -> dict:
        with BackendApi(edge, token) as api:
            return round_trips(api, run.deployed_agent_ids, settings.timing.ready_timeout_s)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="viworks-round-trips")
    run.round_trips = pool.submit(send)
    pool.shutdown(wait=False)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Validate the target before collecting: a bad one is one line and exit 4, not a collection error per module."""
    run = Run.of(session.config)
    if run.runs_checks:
        _ = run.settings, run.shard, run.baseline, run.fail_on_drift, run.waivers
        if run.replay is None:
            _ = run.inventory  # a broken inventory is one usage error, before collection
            if not session.config.option.collectonly and not run.distributes:
                _ = run.source  # gathering starts now: the hosts are read while pytest collects


def pytest_collection_finish(session: pytest.Session) -> None:
    # Everything imported so far lives for the whole run: keep it out of every later garbage
    # collection (pytest collects five times at the end, and a gate should not pay for its imports).
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Settle usage before anything runs: the selected checks' secrets must be there (exit 4 if not)."""
    run = Run.of(config)
    if run.runs_checks and not run.shard.is_first:
        # Another shard has them: the backend's, the edge's, the public address's checks (target.shards).
        elsewhere = [item for item in items if not run.in_this_shard(item)]
        if elsewhere:
            config.hook.pytest_deselected(items=elsewhere)
            items[:] = [item for item in items if item not in elsewhere]
    if run.baseline is None or not run.fail_on_drift:
        # The drift gate is a check only when there is a baseline and drift that fails it.
        drift_checks = [item for item in items if "drift_host" in getattr(item, "fixturenames", ())]
        if drift_checks:
            config.hook.pytest_deselected(items=drift_checks)
            items[:] = [item for item in items if item not in drift_checks]
    if run.replay is not None:
        # Behaviour (a round trip, an upgrade) is not in a snapshot: only the judgements of facts run.
        live = [item for item in items if LIVE_FIXTURES & set(getattr(item, "fixturenames", ()))]
        if live:
            config.hook.pytest_deselected(items=live)
            items[:] = [item for item in items if item not in live]
        return
    needed = {name for item in items for name in NEEDS_SECRETS if name in getattr(item, "fixturenames", ())}
    if not needed:
        return
    settings = run.settings
    secrets = Secrets.load(settings.secrets_file)
    try:
        for name in sorted(needed):
            getattr(secrets, NEEDS_SECRETS[name])()
    except MissingSecret as exc:
        usage_error(f"target {settings.name}: {exc}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Start gathering every host; wait, once, for the edge to answer at all (exit 6 if it never does)."""
    run = Run.of(session.config)
    if session.config.option.collectonly or not session.items or run.distributes:
        return
    uses = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    saving = bool(session.config.getoption("--snapshot-out") or session.config.getoption("--baseline"))
    source = run.source if uses & SNAPSHOT_FIXTURES or saving else None  # reading every host starts now
    wants_edge = "edge_snapshot" in uses or saving
    if run.replay is not None or not any(item.get_closest_marker("e2e") for item in session.items):
        if wants_edge and isinstance(source, Gathering):
            source.start_edge()
        return
    settings = run.settings
    edge = EdgeEndpoint(settings.edge, timeout_s=settings.timing.connect_timeout_s)
    timeout = settings.timing.ready_timeout_s
    try:
        ready = poll_until(edge.answers, lambda answered: answered, what=run.edge_id, timeout_s=timeout)
    except NotReady as exc:
        last = exc.last
    else:
        run.recorder.figure("edge readiness", ready.elapsed_s * 1000, " ms", host=settings.edge.domain)
        if wants_edge and isinstance(source, Gathering):
            source.start_edge()
        if "system_health_round_trips" in uses:
            _start_round_trips(run, edge)
        return
    pytest.exit(
        f"target {settings.name} never became ready: {run.edge_id} "
        f"({edge.address}:{settings.edge.https_port}) did not answer within {timeout:.0f} s; last: {last}",
        returncode=EXIT_NOT_READY,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A shard with nothing to check (more shards than gateway hosts) has passed: nothing of its part is wrong."""
    run = Run.of(session.config)
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and run.runs_checks and run.shard.count > 1:
        session.exitstatus = pytest.ExitCode.OK
