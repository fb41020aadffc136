"""The suite's pytest plugin: target selection, gathering, shared fixtures, host parametrization, figures.

With ``pytest_early`` (the options, and the gathering child it starts before this module loads),
the only modules of the helpers that import pytest. At session start it takes every host's
snapshot from the gathering (``viworks_verify.gathering``; the child's, or read here), or loads a
recorded one (``--snapshot-in``), and as soon as the edge answers it sends the command round trips
in the background. Checks get
everything from these fixtures: ``settings``, ``secrets``, ``edge``, ``api``, ``recorder``, per-host
``backend_host`` / ``gateway_host`` (parametrized from the inventory or the snapshot, test ids
naming the host) with their ``backend_snapshot`` / ``gateway_snapshot``, ``edge_snapshot``, and
``fact_of(snapshot, field)``: a fact as a ``Reading`` shared by the whole run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import gc
import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest
from pytest_html import extras as html_extras

from viworks_verify.drift import Drift, DriftItem, diff_runs, host_drift, selected
from viworks_verify.edge import EdgeEndpoint
from viworks_verify.gateway_readiness import serves_agent
from viworks_verify.gathering import Gathering, Replay, SnapshotSource
from viworks_verify.pytest_early import GATHER_CHILD, runs_checks
from viworks_verify.inventory import Inventory, InventoryError
from viworks_verify.polling import NotReady, poll_until
from viworks_verify.reading import Reading, Unreadable
from viworks_verify.recorder import Recorder
from viworks_verify.redaction import REDACTOR
from viworks_verify.report_top import banner_html, drift_html, grid_html, waivers_html
from viworks_verify.run_report import CheckOutcome, evidence_html, html_summary, run_facts, summary_document
from viworks_verify.secrets import MissingSecret, Secrets
from viworks_verify.settings import Settings, SettingsError, load_settings
from viworks_verify.snapshot import Fact, RunSnapshot, SecretHasher, Snapshot, SnapshotFormatError
from viworks_verify.targets import TargetHost, target_hosts
from viworks_verify.waivers import WaiverError, WaiverLedger, load_waivers

if TYPE_CHECKING:
    from viworks_verify.api import BackendApi



_SETTINGS = pytest.StashKey[Settings]()
_INVENTORY = pytest.StashKey[Inventory]()
_RECORDER = pytest.StashKey[Recorder]()
_HOSTS = pytest.StashKey[dict[str, TargetHost]]()
_SOURCE = pytest.StashKey[SnapshotSource]()
_REPLAY = pytest.StashKey[RunSnapshot]()
_READINGS = pytest.StashKey[dict[tuple[str, str], Reading]]()
_ROUND_TRIPS = pytest.StashKey["concurrent.futures.Future"]()
_BASELINE = pytest.StashKey[RunSnapshot]()
_HOST = pytest.StashKey[str]()  # the host a check is about (set from its parameters before it runs)
_WAIVERS = pytest.StashKey[WaiverLedger]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORDER] = Recorder()
    config.pluginmanager.register(_RunReports(config), "viworks-run-reports")


EXIT_USAGE = 4  # pytest's own code for a usage error: bad settings, inventory, or a missing secret
EXIT_NOT_READY = 6  # the target's edge never answered within --ready-timeout: nothing was checked
_NEEDS_SECRETS = {"api_token": "api_token", "probe_identity": "agent_key_file"}
# Fixtures of live interactions: a replayed run deselects the checks that use them.
_LIVE_FIXTURES = {"edge", "verified_edge", "public_address", "api", "api_with_token", "anonymous_api", "api_token", "probe_identity", "deployed_agent_id"}
_SNAPSHOT_FIXTURES = ("backend_host", "gateway_host", "edge_snapshot", "drift_host")


def _usage_error(message: str) -> None:
    """A target that cannot be used as given: one line, exit 4, no traceback (whenever it is found)."""
    raise pytest.UsageError(message)


def _settings(config: pytest.Config) -> Settings:
    if _SETTINGS not in config.stash:
        targets_dir = Path(config.getoption("--targets-dir") or Path(config.rootpath) / "targets")
        try:
            settings = load_settings(config.getoption("--target"), targets_dir, config.getoption("--ready-timeout"))
        except SettingsError as exc:
            _usage_error(str(exc))
        config.stash[_SETTINGS] = settings
    return config.stash[_SETTINGS]


def _replay(config: pytest.Config) -> RunSnapshot | None:
    """The recorded snapshot of ``--snapshot-in`` (None on a live run); a bad file is a usage error."""
    return _snapshot_option(config, "--snapshot-in", _REPLAY)


def _baseline(config: pytest.Config) -> RunSnapshot | None:
    """The snapshot of ``--baseline`` (None when not given); a bad file is a usage error."""
    return _snapshot_option(config, "--baseline", _BASELINE)


def _snapshot_option(config: pytest.Config, option: str, key: pytest.StashKey[RunSnapshot]) -> RunSnapshot | None:
    path = config.getoption(option)
    if not path:
        return None
    if key not in config.stash:
        try:
            config.stash[key] = RunSnapshot.load(Path(path))
        except SnapshotFormatError as exc:
            _usage_error(f"{option} {exc}")
    return config.stash[key]


def _fail_on_drift(config: pytest.Config) -> list[str]:
    """The drift paths that fail the gate: ``--fail-on-drift``, else the target's ``[drift] fail_on``."""
    given = config.getoption("--fail-on-drift")
    if given is not None:
        if not config.getoption("--baseline"):
            _usage_error("--fail-on-drift needs --baseline: the snapshot the drift is measured from")
        return [p.strip() for p in given.split(",") if p.strip()]
    return list(_settings(config).drift.fail_on)


def _waiver_ledger(config: pytest.Config) -> WaiverLedger:
    """The target's waivers (none when it has no waivers file); a malformed file is a usage error."""
    if _WAIVERS not in config.stash:
        settings = _settings(config)
        given = config.getoption("--waivers")
        path = Path(given) if given else settings.waivers or settings.source.parent / "waivers.toml"
        waivers = []
        if given or settings.waivers or path.exists():
            try:
                waivers = load_waivers(path, settings.name)
            except WaiverError as exc:
                _usage_error(str(exc))
        config.stash[_WAIVERS] = WaiverLedger(waivers, dt.date.today())
    return config.stash[_WAIVERS]


@dataclasses.dataclass(frozen=True)
class RecordedHost:
    """A host of a replayed snapshot: its name and id, nothing to connect to."""

    id: str
    name: str


def _group_hosts(config: pytest.Config, group: str) -> list[tuple[str, str]]:
    """(name, id) of the target's hosts in ``group``: from the inventory, or from the replayed snapshot."""
    replay = _replay(config)
    if replay is not None:
        return [(h.name, h.host) for h in replay.of_kind(group)]
    return [(h.name, h.id) for h in _inventory(config).group(group)]


def _start_round_trips(config: pytest.Config, edge: EdgeEndpoint) -> None:
    """Send the command round trip to every Online gateway now, in the background: it runs while
    the host checks are judged, and the round-trip checks find it done (or still waiting for it)."""
    from viworks_verify.api import BackendApi
    from viworks_verify.round_trips import round_trips

    settings = _settings(config)
    try:
        token = Secrets.load(settings.secrets_file).api_token(role="admin")
    except MissingSecret:
        return  # the checks that need the token say so

    def send() -> dict:
        with BackendApi(edge, token) as api:
            return round_trips(api, _deployed_agent_ids(config), settings.timing.ready_timeout_s)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="viworks-round-trips")
    config.stash[_ROUND_TRIPS] = pool.submit(send)
    pool.shutdown(wait=False)


@pytest.fixture(scope="session")
def started_round_trips(pytestconfig: pytest.Config) -> dict:
    """The round trips sent at session start (agent id -> RoundTrip); empty when none were started."""
    future = pytestconfig.stash.get(_ROUND_TRIPS, None)
    if future is None:
        return {}
    try:
        return dict(future.result())
    except Exception:  # noqa: BLE001 - a failed early send is retried by the fixture that needs it
        return {}


def _distributes(config: pytest.Config) -> bool:
    """This process hands the checks to pytest-xdist workers (``-n``): the workers gather, not it."""
    return config.pluginmanager.hasplugin("dsession")


def _source(config: pytest.Config) -> SnapshotSource:
    """Where snapshots come from: the recorded file, or the live gathering started at session start."""
    if _SOURCE not in config.stash:
        replay = _replay(config)
        if replay is not None:
            config.stash[_SOURCE] = Replay(replay)
        else:
            settings = _settings(config)
            child = config.stash.get(GATHER_CHILD, None)  # started by pytest_early, before the suite loaded
            key = Secrets.load(settings.secrets_file).snapshot_key() or (child.run_key.encode() if child else None)
            gathering = Gathering(settings, SecretHasher(key), child)
            _inventory(config)
            gathering.start_hosts(config.stash[_HOSTS].values())
            config.stash[_SOURCE] = gathering
    return config.stash[_SOURCE]


def _inventory(config: pytest.Config) -> Inventory:
    if _INVENTORY not in config.stash:
        settings = _settings(config)
        try:
            inventory = Inventory.of_target(settings)
            inventory.hosts  # parse now: a broken inventory is a usage error, not fifty failures
        except InventoryError as exc:
            _usage_error(str(exc))
        config.stash[_INVENTORY] = inventory
        config.stash[_HOSTS] = target_hosts(settings, inventory)
    return config.stash[_INVENTORY]


def _runs_checks(config: pytest.Config) -> bool:
    """Whether this run collects checks (as opposed to, say, the project's own tests only)."""
    return runs_checks(config.rootpath, config.args)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Validate the target before collecting: a bad one is one line and exit 4, not a collection error per module."""
    if _runs_checks(session.config):
        _settings(session.config)
        _baseline(session.config)
        _fail_on_drift(session.config)
        _waiver_ledger(session.config)
        if _replay(session.config) is None:
            _inventory(session.config)  # a broken inventory is one usage error, before collection
            if not session.config.option.collectonly and not _distributes(session.config):
                _source(session.config)  # gathering starts now: the hosts are read while pytest collects


def pytest_collection_finish(session: pytest.Session) -> None:
    # Everything imported so far lives for the whole run: keep it out of every later garbage
    # collection (pytest collects five times at the end, and a gate should not pay for its imports).
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Settle usage before anything runs: the selected checks' secrets must be there (exit 4 if not)."""
    if _baseline(config) is None or not _fail_on_drift(config):
        # The drift gate is a check only when there is a baseline and drift that fails it.
        drift_checks = [item for item in items if "drift_host" in getattr(item, "fixturenames", ())]
        if drift_checks:
            config.hook.pytest_deselected(items=drift_checks)
            items[:] = [item for item in items if item not in drift_checks]
    if _replay(config) is not None:
        # Behaviour (a round trip, an upgrade) is not in a snapshot: only the judgements of facts run.
        live = [item for item in items if _LIVE_FIXTURES & set(getattr(item, "fixturenames", ()))]
        if live:
            config.hook.pytest_deselected(items=live)
            items[:] = [item for item in items if item not in live]
        return
    needed = {name for item in items for name in _NEEDS_SECRETS if name in getattr(item, "fixturenames", ())}
    if not needed:
        return
    settings = _settings(config)
    secrets = Secrets.load(settings.secrets_file)
    try:
        for name in sorted(needed):
            getattr(secrets, _NEEDS_SECRETS[name])()
    except MissingSecret as exc:
        _usage_error(f"target {settings.name}: {exc}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Start gathering every host; wait, once, for the edge to answer at all (exit 6 if it never does)."""
    if session.config.option.collectonly or not session.items or _distributes(session.config):
        return
    uses = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    saving = bool(session.config.getoption("--snapshot-out") or session.config.getoption("--baseline"))
    source = _source(session.config) if uses & set(_SNAPSHOT_FIXTURES) or saving else None  # reading every host starts now
    wants_edge = "edge_snapshot" in uses or saving
    if _replay(session.config) is not None or not any(item.get_closest_marker("e2e") for item in session.items):
        if wants_edge and isinstance(source, Gathering):
            source.start_edge()
        return
    settings = _settings(session.config)
    edge = EdgeEndpoint(settings.edge, timeout_s=settings.timing.connect_timeout_s)
    timeout = settings.timing.ready_timeout_s
    try:
        ready = poll_until(edge.answers, lambda answered: answered, what=f"https://{settings.edge.domain}", timeout_s=timeout)
    except NotReady as exc:
        last = exc.last
    else:
        session.config.stash[_RECORDER].figure("edge readiness", ready.elapsed_s * 1000, " ms", host=settings.edge.domain)
        if wants_edge and isinstance(source, Gathering):
            source.start_edge()
        if "system_health_round_trips" in uses:
            _start_round_trips(session.config, edge)
        return
    pytest.exit(
        f"target {settings.name} never became ready: https://{settings.edge.domain} "
        f"({edge.address}:{settings.edge.https_port}) did not answer within {timeout:.0f} s; last: {last}",
        returncode=EXIT_NOT_READY,
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give every check the host it is about, in its test id (``[ssh://gw-lab-01]``)."""
    for fixture, group in (("backend_host", "backend"), ("gateway_host", "gateway")):
        if fixture in metafunc.fixturenames:
            hosts = _group_hosts(metafunc.config, group)
            metafunc.parametrize(fixture, [name for name, _ in hosts], ids=[host_id for _, host_id in hosts], indirect=True, scope="session")
    if "drift_host" in metafunc.fixturenames:
        hosts = [host_id for group in ("backend", "gateway") for _, host_id in _group_hosts(metafunc.config, group)]
        hosts.append(f"https://{_settings(metafunc.config).edge.domain}")
        metafunc.parametrize("drift_host", hosts, ids=hosts, scope="session")
    if "public_address" in metafunc.fixturenames:
        settings = _settings(metafunc.config)
        addresses = list(settings.backend.public_addresses) or [settings.edge.connect_address or settings.edge.domain]
        metafunc.parametrize("public_address", addresses, ids=[f"tcp://{a}" for a in addresses], scope="session")
    if "deployed_agent_id" in metafunc.fixturenames:
        agent_ids = _deployed_agent_ids(metafunc.config)
        metafunc.parametrize("deployed_agent_id", agent_ids, ids=[f"agent://{a}" for a in agent_ids], scope="session")
    else:
        for fixture in ("edge", "edge_snapshot"):
            if fixture in metafunc.fixturenames:
                domain = _settings(metafunc.config).edge.domain
                metafunc.parametrize(fixture, [domain], ids=[f"https://{domain}"], indirect=True, scope="session")
                break


def _deployed_agent_ids(config: pytest.Config) -> list[str]:
    """The gateway agents the target runs: the settings' agent_ids, else the inventory's gateway names."""
    settings = _settings(config)
    return list(settings.gateway.agent_ids) or [name for name, _ in _group_hosts(config, "gateway")]


@pytest.fixture(scope="session")
def deployed_agents(pytestconfig: pytest.Config) -> list[str]:
    """Every deployed gateway agent id of the target (the ``deployed_agent_id`` parameters, all at once)."""
    return _deployed_agent_ids(pytestconfig)


def _target_host(request: pytest.FixtureRequest) -> TargetHost | RecordedHost:
    replay = _replay(request.config)
    if replay is not None:
        found = next(h for h in replay.hosts if h.kind in ("backend", "gateway") and h.name == request.param)
        return RecordedHost(found.host, found.name)
    _inventory(request.config)
    return request.config.stash[_HOSTS][request.param]


def _host_ids(item: pytest.Item) -> list[str]:
    """The hosts a check is about, from its parameters (not parsed out of its id)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    ids = []
    for fixture, group in (("gateway_host", "gateway"), ("backend_host", "backend")):
        if fixture in params:
            ids += [host_id for name, host_id in _group_hosts(item.config, group) if name == params[fixture]]
    return ids


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """An unreachable host fails its first check once, fast; its other checks skip with the reason.

    Done before any fixture runs, so no cached fixture error repeats the failure for every check.
    """
    item.config.stash[_RECORDER].current_check = item.nodeid
    item.stash[_HOST] = _host_of(item)
    item.user_properties += [("host", item.stash[_HOST]), ("area", _area_of(item)), ("row", _row_of(item))]
    for host_id in _host_ids(item):
        snapshot = _source(item.config).snapshot(host_id)
        _reading(item.config, snapshot, "connection").require()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_setup")
def pytest_runtest_setup_reports_unreadable_facts(item: pytest.Item):
    try:
        return (yield)
    except Unreadable as exc:
        _report_unreadable(exc)


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_call")
def pytest_runtest_call_reports_unreadable_facts(item: pytest.Item):
    try:
        return (yield)
    except Unreadable as exc:
        _report_unreadable(exc)


def _report_unreadable(exc: Unreadable) -> None:
    """The first check that needed the fact fails with its problem; every later one skips naming it."""
    if exc.first:
        pytest.fail(exc.problem, pytrace=False)
    pytest.skip(f"already reported: {exc.problem}")


def _reading(config: pytest.Config, snapshot: Snapshot, field: str) -> Reading:
    """One Reading per host and fact for the whole run: its problem fails one check, the rest skip."""
    readings = config.stash.setdefault(_READINGS, {})
    key = (snapshot.host, field)
    if key not in readings:
        fact: Fact = getattr(snapshot, field)
        readings[key] = Reading(fact.value, fact.problem)
    return readings[key]


@pytest.fixture(scope="session")
def fact_of(pytestconfig: pytest.Config) -> Callable[[Snapshot, str], Reading]:
    """``fact_of(snapshot, "unit")``: that fact as a Reading shared by every check of the run."""
    return lambda snapshot, field: _reading(pytestconfig, snapshot, field)


@pytest.fixture(scope="session")
def backend_host(request: pytest.FixtureRequest) -> TargetHost | RecordedHost:
    return _target_host(request)


@pytest.fixture(scope="session")
def gateway_host(request: pytest.FixtureRequest) -> TargetHost | RecordedHost:
    return _target_host(request)


@pytest.fixture(scope="session")
def backend_snapshot(pytestconfig: pytest.Config, backend_host) -> Snapshot:
    """What the gather phase read of this backend host (waits for that host only)."""
    return _source(pytestconfig).snapshot(backend_host.id)


@pytest.fixture(scope="session")
def gateway_snapshot(pytestconfig: pytest.Config, gateway_host) -> Snapshot:
    """What the gather phase read of this gateway host (waits for that host only)."""
    return _source(pytestconfig).snapshot(gateway_host.id)


@pytest.fixture(scope="session")
def gateway_snapshot_of(pytestconfig: pytest.Config) -> Callable[[str], Snapshot | None]:
    """``gateway_snapshot_of(agent_id)``: the snapshot of the gateway host running that agent (None if none does)."""

    def find(agent_id: str) -> Snapshot | None:
        if _replay(pytestconfig) is None and _SOURCE not in pytestconfig.stash:
            return None
        hosts = _group_hosts(pytestconfig, "gateway")
        ordered = sorted(hosts, key=lambda host: host[0] != agent_id)  # the host named for the agent first: usually it
        for _, host_id in ordered:
            snapshot = _source(pytestconfig).snapshot(host_id)
            if serves_agent(snapshot, agent_id):
                return snapshot
        return None

    return find


@pytest.fixture(scope="session")
def edge_snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """What the gather phase read of the TLS edge; a check that needs it fails (once) when it could not be read."""
    return _source(request.config).snapshot(f"https://{request.param}")


@pytest.fixture(scope="session")
def gated_drift(pytestconfig: pytest.Config) -> Callable[[str], tuple[list[DriftItem], str]]:
    """``gated_drift(host_id)``: the host's drift since the baseline that fails the gate, and the baseline's name."""
    baseline = _baseline(pytestconfig)
    settings = _settings(pytestconfig)
    patterns = _fail_on_drift(pytestconfig)

    def of_host(host_id: str) -> tuple[list[DriftItem], str]:
        source = _source(pytestconfig)
        items = [item for item in host_drift(baseline, source.snapshot(host_id), source.secret_key_id) if not item.volatile]
        ignored = selected(items, settings.drift.ignore)
        return [item for item in selected(items, patterns) if item not in ignored], pytestconfig.getoption("--baseline")

    return of_host


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def secrets(settings: Settings) -> Secrets:
    return Secrets.load(settings.secrets_file)


@pytest.fixture(scope="session")
def recorder(pytestconfig: pytest.Config) -> Recorder:
    return pytestconfig.stash[_RECORDER]


@pytest.fixture(scope="session")
def edge(settings: Settings) -> EdgeEndpoint:
    return EdgeEndpoint(settings.edge, timeout_s=settings.timing.connect_timeout_s)


@pytest.fixture(scope="session")
def probe_identity(settings: Settings, secrets: Secrets) -> tuple[Path, Path]:
    """The synthetic agent's client certificate and key (CN = settings.probe.agent_id)."""
    if settings.probe.client_cert is None or not settings.probe.client_cert.is_file():
        pytest.fail(f"probe.client_cert in {settings.source} must name the synthetic agent's certificate; found {settings.probe.client_cert}", pytrace=False)
    try:
        return settings.probe.client_cert, secrets.agent_key_file()
    except MissingSecret as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def api_token(secrets: Secrets) -> str:
    try:
        return secrets.api_token(role="admin")
    except MissingSecret as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def verified_edge(edge: EdgeEndpoint) -> EdgeEndpoint:
    """The edge, once a verified TLS session to it works.

    Checks that go through the edge depend on this: when its certificate does not verify they are
    skipped with the reason, and only the TLS checks (which use ``edge``) fail: one root cause, one
    failure, not thirty.
    """
    problem = edge.tls_problem()
    if problem:
        pytest.skip(f"https://{edge.edge.domain}: {problem} (see the tls checks)")
    return edge


@pytest.fixture(scope="session")
def api_with_token(verified_edge: EdgeEndpoint, api_token: str) -> Iterator["BackendApi"]:
    """The API with the suite's token, whether or not the target accepts it (for the check that it does)."""
    from viworks_verify.api import BackendApi

    with BackendApi(verified_edge, api_token) as client:
        yield client


@pytest.fixture(scope="session")
def api(api_with_token: "BackendApi") -> "BackendApi":
    """The API, once it accepts the suite's token; checks that need it are skipped with the reason otherwise."""
    status = api_with_token.agents().status
    if status != 200:
        pytest.skip(f"https://{api_with_token.endpoint.edge.domain}/api/v1 answers HTTP {status} to the suite's token "
                    "(see test_api_accepts_the_suite_token)")
    return api_with_token


@pytest.fixture(scope="session")
def anonymous_api(verified_edge: EdgeEndpoint) -> Iterator["BackendApi"]:
    from viworks_verify.api import BackendApi

    with BackendApi(verified_edge) as client:
        yield client


def _host_of(item: pytest.Item) -> str:
    """The host a check is about, from its parameters (its first host when it pairs two): the id its
    test id shows (``ssh://gw-lab-01``, ``agent://gw-lab-01``, ``tcp://203.0.113.7``, ``https://agent.example.com``)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if _host_ids(item):
        return _host_ids(item)[0]
    if "drift_host" in params:
        return params["drift_host"]
    if "deployed_agent_id" in params:
        return f"agent://{params['deployed_agent_id']}"
    if "public_address" in params:
        return f"tcp://{params['public_address']}"
    for fixture in ("edge", "edge_snapshot"):
        if fixture in params:
            return f"https://{params[fixture]}"
    return ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and call.excinfo.errisinstance(pytest.fail.Exception) \
            and not call.excinfo.value.pytrace:
        # A check's own one-line verdict is the whole story: not the exception it was handling.
        report.longrepr = _verdict(item, call.excinfo.value.msg)
    elif report.failed and call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
        crash = getattr(report.longrepr, "reprcrash", None)
        verdict = str(call.excinfo.value).split("\nassert ")[0]
        if crash is not None and verdict and not verdict.startswith("assert "):
            # The summary line (terminal, JUnit message) is the check's own verdict; pytest's
            # introspection of the comparison stays in the traceback for whoever wants it.
            crash.message = verdict
    _redact_longrepr(report)
    for index, (name, text) in enumerate(report.sections):
        report.sections[index] = (name, REDACTOR.redact(text))
    if report.failed:
        evidence = item.config.stash[_RECORDER].evidence.get(item.nodeid, [])
        report.extras = [*getattr(report, "extras", []), *(html_extras.html(evidence_html(e)) for e in evidence)]
        for item_evidence in evidence:  # JUnit and the terminal get it too, as a report section
            report.sections.append((f"evidence: {item_evidence.label}", REDACTOR.redact(item_evidence.text)))
    _apply_waivers(item, report)


def _apply_waivers(item: pytest.Item, report: pytest.TestReport) -> None:
    """A failure a waiver covers is shown as waived (pytest's xfail: it does not fail the run); past the
    waiver's expiry it stays a failure that says so. A pass under a waiver makes the waiver stale."""
    if _WAIVERS not in item.config.stash or report.when not in ("setup", "call"):
        return
    ledger = item.config.stash[_WAIVERS]
    check = getattr(item, "originalname", item.name)
    if report.passed and report.when == "call":
        ledger.record_pass(check, item.stash.get(_HOST, ""))
    if not report.failed:
        return
    waiver, holds = ledger.for_failure(check, item.stash.get(_HOST, ""))
    if waiver is None:
        return
    if holds:
        report.outcome = "skipped"
        report.wasxfail = f"waived until {waiver.expires.isoformat()}: {waiver.justification}"
        return
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        crash.message += f" [waiver expired on {waiver.expires.isoformat()}: {waiver.justification}]"
    report.sections.append(("waiver", f"expired on {waiver.expires.isoformat()}: {waiver.describe()}"))


def _area_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("area")
    return str(marker.args[0]) if marker and marker.args else ""


def _row_of(item: pytest.Item) -> str:
    """The host a check counts for in the report grid: its host; a gateway agent's checks count for its
    gateway host; exposure probes for the backend host; the rest for the edge."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    config = item.config
    if "gateway_host" in params or "backend_host" in params:
        return _host_ids(item)[0]
    if "drift_host" in params:
        return params["drift_host"]
    if "deployed_agent_id" in params:
        hosts = _group_hosts(config, "gateway")
        return next((host_id for name, host_id in hosts if name == params["deployed_agent_id"]), f"agent://{params['deployed_agent_id']}")
    if "public_address" in params:
        backends = _group_hosts(config, "backend")
        return backends[0][1] if backends else f"tcp://{params['public_address']}"
    if _SETTINGS not in config.stash:
        return ""  # not a check of a target (the project's own tests)
    return f"https://{_settings(config).edge.domain}"


@dataclasses.dataclass
class CheckVerdict:
    """A failure that is just the check's one-line verdict.

    It has what pytest's reports read of a failure (``toterminal`` for the terminal and the HTML
    report, ``reprcrash.message`` for the short summary line and JUnit's message attribute) without
    pytest's private representation classes. Across pytest-xdist it travels as its text.
    """

    message: str
    path: str
    lineno: int

    @property
    def reprcrash(self) -> "CheckVerdict":
        return self

    def toterminal(self, out) -> None:
        out.line(self.message)

    def __str__(self) -> str:
        return self.message


def _verdict(item: pytest.Item, message: str) -> CheckVerdict:
    _, line, _ = item.location
    return CheckVerdict(message, str(item.path), (line or 0) + 1)


def _redact_longrepr(report: pytest.TestReport) -> None:
    """Pass whatever a failure or skip shows through the redactor, keeping pytest's structure.

    The structure matters: JUnit's message and the terminal's summary line come from the crash
    entry; flattening the report to text would put the traceback's first lines there instead.
    """
    longrepr = report.longrepr
    if longrepr is None:
        return
    if isinstance(longrepr, CheckVerdict):
        longrepr.message = REDACTOR.redact(longrepr.message)
        return
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        path, line, reason = longrepr
        report.longrepr = (path, line, REDACTOR.redact(reason))
        return
    if isinstance(longrepr, str) or not hasattr(longrepr, "chain"):
        report.longrepr = REDACTOR.redact(str(longrepr))
        return
    for traceback, crash, description in longrepr.chain:
        if crash is not None:
            crash.message = REDACTOR.redact(crash.message)
        for entry in traceback.reprentries:
            if hasattr(entry, "lines"):
                entry.lines = [REDACTOR.redact(line) for line in entry.lines]
            if getattr(entry, "reprfuncargs", None) is not None:
                entry.reprfuncargs.args = [(name, REDACTOR.redact(str(value))) for name, value in entry.reprfuncargs.args]
            if getattr(entry, "reprlocals", None) is not None:
                entry.reprlocals.lines = [REDACTOR.redact(line) for line in entry.reprlocals.lines]
    if longrepr.reprcrash is not None:
        longrepr.reprcrash.message = REDACTOR.redact(longrepr.reprcrash.message)
    longrepr.sections = [(name, REDACTOR.redact(text), sep) for name, text, sep in longrepr.sections]


class _RunReports:
    """The suite's own reports of a run (JSON summary, HTML header and host column), bound to its config."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.outcomes: list[CheckOutcome] = []
        self.started = dt.datetime.now(dt.timezone.utc)
        self._drift: dict | None = None
        self._drift_done = False

    def facts(self) -> dict[str, str]:
        target = self.config.stash[_SETTINGS].name if _SETTINGS in self.config.stash else self.config.getoption("--target")
        return run_facts(target, Path(self.config.rootpath), self.started)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.outcome == "passed":
            return
        verdict = "error" if report.when != "call" and report.failed else report.outcome
        if hasattr(report, "wasxfail"):
            verdict = "waived"
        crash = getattr(report.longrepr, "reprcrash", None)
        message = report.longrepr[2] if isinstance(report.longrepr, tuple) else crash.message if crash is not None else str(report.longrepr or "")
        name = re.sub(r"\[.*\]$", "", report.nodeid.split("::")[-1])
        properties = dict(report.user_properties)
        self.outcomes.append(CheckOutcome(name, str(properties.get("host", "")), verdict, _first_line(message),
                                          str(properties.get("area", "")), str(properties.get("row", ""))))

    def drift(self) -> dict | None:
        """The drift since ``--baseline`` over every host of the run (None without a baseline), once."""
        if not self._drift_done:
            self._drift_done = True
            baseline = self.config.stash.get(_BASELINE, None)
            source = self.config.stash.get(_SOURCE, None)
            if baseline is not None and source is not None:
                drift = diff_runs(baseline, source.run_snapshot())
                ignored = selected(drift.items, _settings(self.config).drift.ignore)
                drift.items = [item for item in drift.items if item not in ignored]
                self._drift = drift.to_json()
        return self._drift

    def waivers(self) -> list[dict]:
        ledger = self.config.stash.get(_WAIVERS, None)
        return ledger.report() if ledger is not None else []

    def rows(self) -> list[tuple[str, str]]:
        """The report grid's rows in reading order: backend hosts, the edge, each gateway (and any other host a check named)."""
        if _SETTINGS not in self.config.stash:
            return []
        rows = [(host_id, f"{host_id} (backend host)") for _, host_id in _group_hosts(self.config, "backend")]
        edge = f"https://{_settings(self.config).edge.domain}"
        rows.append((edge, f"{edge} (edge)"))
        rows += [(host_id, host_id) for _, host_id in _group_hosts(self.config, "gateway")]
        known = {row for row, _ in rows}
        rows += [(row, row) for row in dict.fromkeys(o.row for o in self.outcomes) if row and row not in known]
        return rows

    def release_observed(self) -> str:
        facts = self.config.stash[_RECORDER].facts
        parts = [f"version {facts['backend version (observed)']}" if facts.get("backend version (observed)") else ""]
        if facts.get("backend binary sha256 (observed)"):
            parts.append(f"binary sha256 {facts['backend binary sha256 (observed)'][:12]}…, {facts.get('backend binary size (observed)', '')}")
        return "; ".join(p for p in parts if p)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        out = self.config.getoption("--snapshot-out")
        if out and _SOURCE in self.config.stash:
            self.config.stash[_SOURCE].run_snapshot().save(Path(out))
        self.drift()  # while the source still answers (the HTML report asks for it later)
        if _SOURCE in self.config.stash:
            self.config.stash[_SOURCE].close()
        path = self.config.getoption("--json-summary")
        if path:
            document = summary_document(self.facts(), self.outcomes, self.config.stash[_RECORDER], int(exitstatus),
                                        self.drift(), self.waivers())
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(document, indent=2) + "\n")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report) -> None:
        report.title = "ViWorkS deploy verification"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session) -> None:
        target = self.facts()["target"]
        prefix.append(banner_html(target, self.release_observed(), self.outcomes, self.rows(), self.drift(), self.waivers()))
        prefix.append(grid_html(self.outcomes, self.rows()))
        if self.drift() is not None:
            prefix.append(drift_html(self.drift()))
        if self.waivers():
            prefix.append(waivers_html(self.waivers()))
        prefix.extend(html_summary(self.facts(), self.config.stash[_RECORDER]))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, "<th>Host</th>")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        cells.insert(2, f"<td>{html.escape(str(dict(report.user_properties).get('host', '')))}</td>")


def _first_line(message: str) -> str:
    """The line of a failure an operator acts on (pytest's ``E   ...`` line when there is one)."""
    for line in message.splitlines():
        if line.startswith("E "):
            return line[1:].strip()
    return message.strip().splitlines()[0] if message.strip() else ""


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash[_RECORDER].summary() if _RECORDER in config.stash else []
    if rows:
        terminalreporter.section("viworks figures")
        for row in rows:
            terminalreporter.write_line(
                f"{row['name']:<40} n={row['count']:<3} p50={row['p50']:.1f} {row['unit']}  p95={row['p95']:.1f} {row['unit']}  max={row['max']:.1f} {row['unit']}"
            )
    source = config.stash.get(_SOURCE, None)
    if isinstance(source, Gathering) and source.read_here:
        terminalreporter.section("viworks gathering")
        for reason in source.read_here:
            terminalreporter.write_line(f"read in the pytest process instead: {reason}")
    reports = config.pluginmanager.get_plugin("viworks-run-reports")
    drift = reports.drift() if reports is not None else None
    if drift is not None:
        terminalreporter.section("viworks drift since the baseline")
        terminalreporter.write_line(drift["summary"])
        for line in [*drift["notes"], *(item["line"] for item in drift["items"])]:
            terminalreporter.write_line(REDACTOR.redact(line))
    waivers = reports.waivers() if reports is not None else []
    if waivers:
        terminalreporter.section("viworks waivers")
        for waiver in waivers:
            terminalreporter.write_line(waiver["line"])
