"""The run: what one pytest session knows of its target, one ``Run`` per session (``Run.of(config)``);
which host each check is about (``HOST_PARAMETERS``, the one table of it); usage errors and exit codes."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, NoReturn

import pytest

from viworks_verify.core.fact import Fact
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.edge.snapshot import edge_host_id
from viworks_verify.gateway.readiness import serves_agent
from viworks_verify.gather.gathering import Gathering, Replay, SnapshotSource
from viworks_verify.gather.snapshot import RunSnapshot, Snapshot, SnapshotFormatError
from viworks_verify.plugin.early import GATHER_CHILD, TARGETS_DIR, runs_checks
from viworks_verify.report.drift import Drift, diff_runs, drift_paths, unknown_patterns, unknown_patterns_message
from viworks_verify.report.recorder import Recorder
from viworks_verify.report.waivers import WaiverError, WaiverLedger, load_waivers
from viworks_verify.target import connections
from viworks_verify.target.connections import TargetHost
from viworks_verify.target.inventory import Inventory, InventoryError
from viworks_verify.target.secrets import Secrets
from viworks_verify.target.settings import Settings, SettingsError, load_settings
from viworks_verify.target.shards import WHOLE, Shard, ShardError

EXIT_USAGE = int(pytest.ExitCode.USAGE_ERROR)  # 4, pytest's own (``usage_error``): bad settings, inventory, secret
EXIT_NOT_READY = 6  # the target's edge never answered within --ready-timeout: nothing was checked

# The fixtures that need a secret, and the Secrets method that reads it: checked before anything runs.
NEEDS_SECRETS = {"api_token": "api_token", "probe_identity": "agent_key_file"}
# Fixtures of live interactions: a replayed run deselects the checks that use them.
LIVE_FIXTURES = {
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


def usage_error(message: str) -> NoReturn:
    """A target that cannot be used as given: one line, exit 4, no traceback (whenever it is found)."""
    raise pytest.UsageError(message)


# ------------------------------------------------------------------------ which host a check is about

INVENTORY_KINDS = ("backend", "gateway")  # the inventory's groups: hosts read over a connection each


@dataclasses.dataclass(frozen=True)
class HostParameter:
    """A parameter of the checks that names a host they are about, and how its test id is formed.

    ``kind``, the hosts it takes: ``backend`` or ``gateway`` (the inventory's hosts of that group, or the
    replayed snapshot's; the value is a host's name), ``every host`` (the value is the host's id),
    ``public address`` (each address the backend publishes), ``gateway agent`` (each deployed agent id),
    ``edge`` (the value is the edge's domain).
    """

    fixture: str
    kind: str
    host_id: Callable[[str], str] | None  # the value's host id, its test id; None: the id of the host it names
    indirect: bool = False  # a fixture of that name turns the value into what the check gets
    judges_snapshot: bool = False  # the check judges that host's gathered snapshot
    about_when_paired: bool = True  # False: a check that pairs it with another host is about the other one
    unless_beside: tuple[str, ...] = ()  # not a parameter of a check that also takes one of these


# In the order the parameters appear in a test id (``[local://backend-lab-ssh://gw-lab-01]``).
HOST_PARAMETERS = (
    # local://backend-lab, ssh://<name>; paired with a gateway host, the check is the gateway's
    HostParameter("backend_host", "backend", None, indirect=True, judges_snapshot=True, about_when_paired=False),
    HostParameter("gateway_host", "gateway", None, indirect=True, judges_snapshot=True),  # ssh://gw-lab-01
    HostParameter("drift_host", "every host", str),  # judges the drift of the host's snapshot, not the snapshot
    HostParameter("public_address", "public address", "tcp://{}".format),  # tcp://203.0.113.7
    HostParameter("deployed_agent_id", "gateway agent", "agent://{}".format),  # agent://gw-lab-01
    # https://agent.example.com; an agent's checks all go through the edge, their test id names the agent
    HostParameter("edge", "edge", edge_host_id, indirect=True, unless_beside=("deployed_agent_id",)),
    HostParameter(
        "edge_snapshot",
        "edge",
        edge_host_id,
        indirect=True,
        judges_snapshot=True,
        unless_beside=("deployed_agent_id", "edge"),
    ),
)


class CheckHost(NamedTuple):
    """A host a check is about: the parameter that names it, its value there, the host's id (its test id)."""

    parameter: HostParameter
    value: str
    id: str


@dataclasses.dataclass(frozen=True)
class NamedHost:
    """A host as the run names it: its id and its name (all a replayed host has: nothing to connect to)."""

    id: str
    name: str


# ------------------------------------------------------------------------ the run


class Run:
    """What one pytest session knows of its target; ``Run.of(config)`` is the session's.

    Everything that reads a file, the inventory or a host is computed on first use and kept: a run
    that collects only (``--collect-only``) gathers nothing, and a run of the project's own tests
    loads no target. A target that cannot be used as given is a usage error (exit 4) wherever found.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.recorder = Recorder()  # the figures, facts and evidence the checks record
        # The command round trips sent at session start (a future of agent id -> RoundTrip); None if none were.
        self.round_trips: concurrent.futures.Future | None = None
        self._source: SnapshotSource | None = None
        self._drift: Drift | None = None
        self._reported: set[str] = set()  # the unreadable facts' problems a check has reported

    @classmethod
    def of(cls, config: pytest.Config) -> Run:
        """The session's run (made on first use)."""
        if _RUN not in config.stash:
            config.stash[_RUN] = cls(config)
        return config.stash[_RUN]

    # -------------------------------------------------------------------- what kind of run

    @functools.cached_property
    def runs_checks(self) -> bool:
        """Whether this run collects checks (as opposed to, say, the project's own tests only)."""
        return runs_checks(self.config.rootpath, self.config.args)

    @property
    def distributes(self) -> bool:
        """This process hands the checks to pytest-xdist workers (``-n``): the workers gather, not it."""
        return self.config.pluginmanager.hasplugin("dsession")

    # -------------------------------------------------------------------- the target

    @functools.cached_property
    def settings(self) -> Settings:
        """The target's settings (``--target``), validated; a bad file is a usage error naming the key."""
        # Target names are looked up in the checkout's targets/, wherever pytest's rootdir is.
        targets_dir = Path(self.config.getoption("--targets-dir") or TARGETS_DIR)
        try:
            return load_settings(
                self.config.getoption("--target"),
                targets_dir,
                self.config.getoption("--ready-timeout"),
                self.config.getoption("--max-connections"),
            )
        except SettingsError as exc:
            usage_error(str(exc))

    @functools.cached_property
    def inventory(self) -> Inventory:
        """The target's inventory, parsed now: a broken one is a usage error, not fifty failures."""
        try:
            inventory = Inventory.of_target(self.settings)
            _ = inventory.hosts
        except InventoryError as exc:
            usage_error(str(exc))
        return inventory

    @functools.cached_property
    def target_hosts(self) -> dict[str, TargetHost]:
        """Every host of the inventory (of its gateways, this shard's), by name, as the run connects to it."""
        return connections.target_hosts(self.settings, self.inventory, self.shard)

    @functools.cached_property
    def shard(self) -> Shard:
        """The part of the fleet this run checks (``--shard K/N``; all of it without); a bad one is a usage error."""
        given = self.config.getoption("--shard")
        try:
            return Shard.parse(given) if given is not None else WHOLE
        except ShardError as exc:
            usage_error(str(exc))

    def hosts_of_kind(self, kind: str) -> list[NamedHost]:
        """The target's hosts of an inventory group (``backend``, ``gateway``): the inventory's, or the replayed
        snapshot's; of the gateways, this shard's."""
        found = self._all_hosts_of_kind(kind)
        if kind != "gateway":
            return found
        return [host for host in found if host.name in self._shards_gateways]

    def _all_hosts_of_kind(self, kind: str) -> list[NamedHost]:
        if self.replay is not None:
            return [NamedHost(snapshot.host, snapshot.name) for snapshot in self.replay.of_kind(kind)]
        return [NamedHost(host.id, host.name) for host in self.inventory.group(kind)]

    @functools.cached_property
    def _shards_gateways(self) -> set[str]:
        """The names of this shard's gateway hosts (dealt once per run, not per check)."""
        return self.shard.part(host.name for host in self._all_hosts_of_kind("gateway"))

    @functools.cached_property
    def _shards_gateway_ids(self) -> set[str]:
        return {host.id for host in self.hosts_of_kind("gateway")}

    def in_this_shard(self, item: pytest.Item) -> bool:
        """Whether the check runs in this shard: a gateway host's or agent's in its host's shard (they are the only
        ones parametrized here), every other one in shard 1."""
        if self.shard.is_first:
            return True
        return any(
            host.parameter.kind in ("gateway", "gateway agent") or host.id in self._shards_gateway_ids
            for host in self.hosts_of(item)
        )

    def target_host(self, name: str) -> TargetHost | NamedHost:
        """The backend or gateway host of that name: to connect to, or on a replay its recorded name and id."""
        if self.replay is not None:
            found = next(h for h in self.replay.hosts if h.kind in INVENTORY_KINDS and h.name == name)
            return NamedHost(found.host, found.name)
        return self.target_hosts[name]

    @property
    def deployed_agent_ids(self) -> list[str]:
        """The gateway agents the target runs: the settings' agent_ids (this shard's, dealt as its gateways are),
        else the gateway hosts' names."""
        declared = list(self.settings.gateway.agent_ids)
        if declared:
            ours = self.shard.part(declared)
            return [agent for agent in declared if agent in ours]
        return [host.name for host in self.hosts_of_kind("gateway")]

    @property
    def edge_id(self) -> str:
        """The target's edge's host id (``https://<domain>``)."""
        return edge_host_id(self.settings.edge.domain)

    # -------------------------------------------------------------------- snapshots

    @functools.cached_property
    def replay(self) -> RunSnapshot | None:
        """The recorded snapshot of ``--snapshot-in`` (None on a live run); a bad file is a usage error."""
        return self._snapshot_option("--snapshot-in")

    @property
    def source(self) -> SnapshotSource:
        """Where snapshots come from: the recorded file, or the live gathering, started on first use."""
        if self._source is None:
            if self.replay is not None:
                self._source = Replay(self.replay)
            else:
                child = self.config.stash.get(GATHER_CHILD, None)  # started by plugin.early, before the suite loaded
                key = Secrets.load(self.settings.secrets_file).snapshot_key() or (
                    child.run_key.encode() if child else None
                )
                gathering = Gathering(self.settings, SecretHasher(key), child)
                gathering.start_hosts(self.target_hosts.values())
                self._source = gathering
        return self._source

    @property
    def started_source(self) -> SnapshotSource | None:
        """The snapshot source if something has started it, else None (a report must not start it)."""
        return self._source

    def snapshot(self, host_id: str) -> Snapshot:
        """The host's snapshot (waits for that host only)."""
        return self.source.snapshot(host_id)

    def gateway_host_running(self, agent_id: str) -> str | None:
        """The id of the gateway host that runs ``agent_id`` (by its snapshot's .env, its inventory name
        first, as it usually is); None when no host does."""
        hosts = sorted(self.hosts_of_kind("gateway"), key=lambda host: host.name != agent_id)
        return next((host.id for host in hosts if serves_agent(self.snapshot(host.id), agent_id)), None)

    def first_to_report(self, problem: str) -> bool:
        """Whether no check has reported ``problem`` yet (and now one has): an unreadable fact fails the first
        check that needs it, and every later one skips naming it."""
        first = problem not in self._reported
        self._reported.add(problem)
        return first

    def mark_reported(self, fact: Fact) -> None:
        """A check has said what is wrong with ``fact`` in its own words: the checks that need it skip."""
        if fact.problem is not None:
            self._reported.add(fact.problem)

    # -------------------------------------------------------------------- baseline, drift, waivers

    @functools.cached_property
    def baseline(self) -> RunSnapshot | None:
        """The snapshot of ``--baseline`` (None when not given); a bad file is a usage error."""
        return self._snapshot_option("--baseline")

    @functools.cached_property
    def fail_on_drift(self) -> list[str]:
        """The drift paths that fail the gate: ``--fail-on-drift``, else the target's ``[drift] fail_on``.

        With a baseline, every pattern given (and each of the target's ``[drift] fail_on`` and ``ignore``)
        must select some fact of the baseline: one that selects nothing is a typo, a usage error."""
        given = self.config.getoption("--fail-on-drift")
        if given is not None and not self.config.getoption("--baseline"):
            usage_error("--fail-on-drift needs --baseline: the snapshot the drift is measured from")
        settings = self.settings
        patterns = (
            [p.strip() for p in given.split(",") if p.strip()] if given is not None else list(settings.drift.fail_on)
        )
        if self.baseline is not None:
            self._check_drift_patterns(self.baseline, given_patterns=patterns if given is not None else None)
        return patterns

    @property
    def drift(self) -> Drift | None:
        """The drift since ``--baseline`` over every host of the run, compared once (the gated check of
        each host and the report both read it); None without a baseline or before the gathering."""
        if self._drift is None and self._source is not None and self.baseline is not None:
            self._drift = diff_runs(self.baseline, self._source.run_snapshot())
        return self._drift

    @functools.cached_property
    def waivers(self) -> WaiverLedger:
        """The target's waivers (none when it has no waivers file); a malformed file is a usage error."""
        given = self.config.getoption("--waivers")
        path = Path(given) if given else self.settings.waivers or self.settings.source.parent / "waivers.toml"
        waivers = []
        if given or self.settings.waivers or path.exists():
            try:
                waivers = load_waivers(path, self.settings.name)
            except WaiverError as exc:
                usage_error(str(exc))
        return WaiverLedger(waivers, dt.date.today())

    # -------------------------------------------------------------------- each check's host

    def hosts_taken_by(self, parameter: HostParameter) -> list[CheckHost]:
        """Every host a parameter takes in this run (what its checks are parametrized with)."""
        if parameter.kind in INVENTORY_KINDS:
            return [CheckHost(parameter, host.name, host.id) for host in self.hosts_of_kind(parameter.kind)]
        return [CheckHost(parameter, value, parameter.host_id(value)) for value in self._values_of(parameter.kind)]

    def hosts_of(self, item: pytest.Item) -> list[CheckHost]:
        """The hosts a check is about, from its parameters (not parsed out of its id): the one it is about first."""
        params = getattr(getattr(item, "callspec", None), "params", {})
        hosts = []
        for parameter in HOST_PARAMETERS:
            if parameter.fixture in params:
                value = params[parameter.fixture]
                host_id = self._host_id(parameter, value)
                if host_id is not None:
                    hosts.append(CheckHost(parameter, value, host_id))
        return sorted(hosts, key=lambda host: not host.parameter.about_when_paired)

    def host_of(self, item: pytest.Item) -> str:
        """The host a check is about, the id its test id shows (``ssh://gw-lab-01``, ``agent://gw-lab-01``,
        ``tcp://203.0.113.7``, ``https://agent.example.com``); "" for a check of no host."""
        hosts = self.hosts_of(item)
        return hosts[0].id if hosts else ""

    def inventory_hosts_of(self, item: pytest.Item) -> list[str]:
        """The ids of the backend and gateway hosts a check is about (the one it is about first)."""
        return [host.id for host in self.hosts_of(item) if host.parameter.kind in INVENTORY_KINDS]

    def row_of(self, item: pytest.Item) -> str:
        """The host a check counts for in the report grid: its host; a gateway agent's checks count for its
        gateway host; exposure probes for the backend host; the rest for the edge."""
        hosts = self.hosts_of(item)
        if not hosts:
            return self.edge_id if self.runs_checks else ""  # "": not a check of a target (the project's own tests)
        host = hosts[0]
        if host.parameter.kind == "gateway agent":
            return next((h.id for h in self.hosts_of_kind("gateway") if h.name == host.value), host.id)
        if host.parameter.kind == "public address":
            backends = self.hosts_of_kind("backend")
            return backends[0].id if backends else host.id
        return host.id

    # -------------------------------------------------------------------- helpers

    def _values_of(self, kind: str) -> list[str]:
        """The values a host parameter of a kind the inventory does not list takes in this run."""
        if kind == "every host":
            return [host.id for group in INVENTORY_KINDS for host in self.hosts_of_kind(group)] + [self.edge_id]
        if kind == "public address":
            edge = self.settings.edge
            return list(self.settings.backend.public_addresses) or [edge.connect_address or edge.domain]
        if kind == "gateway agent":
            return self.deployed_agent_ids
        if kind == "edge":
            return [self.settings.edge.domain]
        raise ValueError(f"HOST_PARAMETERS: unknown kind of host {kind!r}")

    def _host_id(self, parameter: HostParameter, value: str) -> str | None:
        """None: no host of that name (the check's empty parameter set: the target has no host of the kind)."""
        if parameter.host_id is None:
            return next((host.id for host in self.hosts_of_kind(parameter.kind) if host.name == value), None)
        return parameter.host_id(value)

    def _snapshot_option(self, option: str) -> RunSnapshot | None:
        path = self.config.getoption(option)
        if not path:
            return None
        try:
            return RunSnapshot.load(Path(path))
        except SnapshotFormatError as exc:
            usage_error(f"{option} {exc}")

    def _check_drift_patterns(self, baseline: RunSnapshot, given_patterns: list[str] | None) -> None:
        """A usage error naming the first place (``--fail-on-drift``, the settings file's ``[drift]``
        keys) with patterns that select nothing of the baseline, the patterns and what there is."""
        paths = drift_paths(baseline)
        name = self.config.getoption("--baseline")
        places = [("--fail-on-drift", given_patterns)] if given_patterns is not None else []
        places += [
            (f"{self.settings.source}: [drift] {key}", list(getattr(self.settings.drift, key)))
            for key in ("fail_on", "ignore")
        ]
        for place, patterns in places:
            unknown = unknown_patterns(patterns, paths)
            if unknown:
                usage_error(f"{place}: {unknown_patterns_message(unknown, paths, name)}")


_RUN = pytest.StashKey[Run]()
