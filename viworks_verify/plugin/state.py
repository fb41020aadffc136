"""What the run knows of its target, kept in the pytest config's stash: settings, inventory, the
snapshot source, the baseline and waivers, each host's id; usage errors (exit 4) and exit codes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from viworks_verify.core.fact import Fact
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.gateway.readiness import serves_agent
from viworks_verify.gather.gathering import Gathering, Replay, SnapshotSource
from viworks_verify.gather.reading import Reading
from viworks_verify.gather.snapshot import RunSnapshot, Snapshot, SnapshotFormatError
from viworks_verify.plugin.early import GATHER_CHILD, TARGETS_DIR, runs_checks
from viworks_verify.report.drift import Drift, diff_runs, drift_paths, unknown_patterns, unknown_patterns_message
from viworks_verify.report.recorder import Recorder
from viworks_verify.report.waivers import WaiverError, WaiverLedger, load_waivers
from viworks_verify.target.connections import TargetHost, target_hosts
from viworks_verify.target.inventory import Inventory, InventoryError
from viworks_verify.target.secrets import Secrets
from viworks_verify.target.settings import Settings, SettingsError, load_settings

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
_DRIFT = pytest.StashKey[Drift]()
_FAIL_ON_DRIFT = pytest.StashKey[list[str]]()

EXIT_USAGE = 4  # pytest's own code for a usage error: bad settings, inventory, or a missing secret
EXIT_NOT_READY = 6  # the target's edge never answered within --ready-timeout: nothing was checked
_NEEDS_SECRETS = {"api_token": "api_token", "probe_identity": "agent_key_file"}
# Fixtures of live interactions: a replayed run deselects the checks that use them.
_LIVE_FIXTURES = {
    "edge",
    "verified_edge",
    "public_address",
    "api",
    "api_with_token",
    "anonymous_api",
    "api_token",
    "probe_identity",
    "deployed_agent_id",
}
_SNAPSHOT_FIXTURES = ("backend_host", "gateway_host", "edge_snapshot", "drift_host")


def _usage_error(message: str) -> None:
    """A target that cannot be used as given: one line, exit 4, no traceback (whenever it is found)."""
    raise pytest.UsageError(message)


def _settings(config: pytest.Config) -> Settings:
    if _SETTINGS not in config.stash:
        targets_dir = Path(
            config.getoption("--targets-dir") or TARGETS_DIR
        )  # the checkout's, wherever pytest's rootdir is
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


def _drift(config: pytest.Config) -> Drift | None:
    """The drift since ``--baseline`` over every host of the run, compared once (the gated check of
    each host and the report both read it); None without a baseline or before the gathering."""
    if _DRIFT not in config.stash:
        baseline, source = config.stash.get(_BASELINE, None), config.stash.get(_SOURCE, None)
        if baseline is None or source is None:
            return None
        config.stash[_DRIFT] = diff_runs(baseline, source.run_snapshot())
    return config.stash[_DRIFT]


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
    """The drift paths that fail the gate: ``--fail-on-drift``, else the target's ``[drift] fail_on``.

    With a baseline, every pattern given (and each of the target's ``[drift] fail_on`` and ``ignore``)
    must select some fact of the baseline: one that selects nothing is a typo, a usage error."""
    if _FAIL_ON_DRIFT not in config.stash:
        given = config.getoption("--fail-on-drift")
        if given is not None and not config.getoption("--baseline"):
            _usage_error("--fail-on-drift needs --baseline: the snapshot the drift is measured from")
        settings = _settings(config)
        patterns = (
            [p.strip() for p in given.split(",") if p.strip()] if given is not None else list(settings.drift.fail_on)
        )
        baseline = _baseline(config)
        if baseline is not None:
            _check_drift_patterns(config, baseline, settings, given_patterns=patterns if given is not None else None)
        config.stash[_FAIL_ON_DRIFT] = patterns
    return config.stash[_FAIL_ON_DRIFT]


def _check_drift_patterns(
    config: pytest.Config, baseline: RunSnapshot, settings: Settings, given_patterns: list[str] | None
) -> None:
    """A usage error naming the first place (``--fail-on-drift``, the settings file's ``[drift]``
    keys) with patterns that select nothing of the baseline, the patterns and what there is."""
    paths = drift_paths(baseline)
    name = config.getoption("--baseline")
    places = [("--fail-on-drift", given_patterns)] if given_patterns is not None else []
    places += [
        (f"{settings.source}: [drift] {key}", list(getattr(settings.drift, key))) for key in ("fail_on", "ignore")
    ]
    for place, patterns in places:
        unknown = unknown_patterns(patterns, paths)
        if unknown:
            _usage_error(f"{place}: {unknown_patterns_message(unknown, paths, name)}")


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
            child = config.stash.get(GATHER_CHILD, None)  # started by plugin.early, before the suite loaded
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
            _ = inventory.hosts  # parse now: a broken inventory is a usage error, not fifty failures
        except InventoryError as exc:
            _usage_error(str(exc))
        config.stash[_INVENTORY] = inventory
        config.stash[_HOSTS] = target_hosts(settings, inventory)
    return config.stash[_INVENTORY]


def _runs_checks(config: pytest.Config) -> bool:
    """Whether this run collects checks (as opposed to, say, the project's own tests only)."""
    return runs_checks(config.rootpath, config.args)


def _deployed_agent_ids(config: pytest.Config) -> list[str]:
    """The gateway agents the target runs: the settings' agent_ids, else the inventory's gateway names."""
    settings = _settings(config)
    return list(settings.gateway.agent_ids) or [name for name, _ in _group_hosts(config, "gateway")]


def _host_ids(item: pytest.Item) -> list[str]:
    """The hosts a check is about, from its parameters (not parsed out of its id)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    ids = []
    for fixture, group in (("gateway_host", "gateway"), ("backend_host", "backend")):
        if fixture in params:
            ids += [host_id for name, host_id in _group_hosts(item.config, group) if name == params[fixture]]
    return ids


def _gateway_host_running(config: pytest.Config, agent_id: str) -> str | None:
    """The id of the gateway host that runs ``agent_id`` (by its snapshot's .env, its inventory name
    first, as it usually is); None when no host does."""
    hosts = sorted(_group_hosts(config, "gateway"), key=lambda host: host[0] != agent_id)
    return next((host_id for _, host_id in hosts if serves_agent(_source(config).snapshot(host_id), agent_id)), None)


def _reading(config: pytest.Config, snapshot: Snapshot, field: str) -> Reading:
    """One Reading per host and fact for the whole run: its problem fails one check, the rest skip."""
    readings = config.stash.setdefault(_READINGS, {})
    key = (snapshot.host, field)
    if key not in readings:
        fact: Fact = getattr(snapshot, field)
        readings[key] = Reading(fact.value, fact.problem)
    return readings[key]


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
        return next(
            (host_id for name, host_id in hosts if name == params["deployed_agent_id"]),
            f"agent://{params['deployed_agent_id']}",
        )
    if "public_address" in params:
        backends = _group_hosts(config, "backend")
        return backends[0][1] if backends else f"tcp://{params['public_address']}"
    if _SETTINGS not in config.stash:
        return ""  # not a check of a target (the project's own tests)
    return f"https://{_settings(config).edge.domain}"
