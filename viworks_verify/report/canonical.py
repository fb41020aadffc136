"""A host snapshot as canonical facts: a flat map of dotted paths to plain values, for comparing deployments.

What a snapshot records the way a check needs it (nginx as a parsed tree, ``systemctl show``
text, ``docker inspect``), this module turns into facts that compare equal whenever two
deployments are the same, however they were written or when they were read:

- nginx's configuration as structure: a directive's file and line, or the include it came
  through, are not part of it; a block is keyed by what it is (``server[agent.example.com:443]``,
  ``location[/ws/]``), not by where it is;
- certificates as who, by whom, until when and which key, not PEM text;
- the binaries (the backend's, the gateway's program at ExecStart) as size and sha256, and every
  other release artifact (the scripts, the unit file and its drop-ins) by sha256: an artifact is
  identified by its content, so another build at the same path with the same mode is drift;
- the gateway's scripts root as every entry in it (a stray file is drift), each by kind, mode,
  owner and content;
- containers as image, networks, published ports, state; the unit as its properties with
  ``ExecStart`` reduced to its program and arguments.

Volatile facts (PIDs, start times, addresses Docker assigns, clocks, journal lines, restart counts
below the target's threshold, ports the kernel picks) are marked as such by this schema, so a
diff ignores them by default and ``--all`` lists them. Secret values are already keyed hashes in
the snapshot (``hmac-sha256:...``); they are compared as such and never shown.

The backend's and the edge's snapshots say theirs themselves (``HostSnapshot.canonical``: each value
type's ``canonical(path)``), by the same rules.

A path is segments joined by dots; a key that is data (a file path, a container name, a location)
is in brackets: ``backend-1.containers[viworks-backend-agent-new].networks``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from viworks_verify.backend.snapshot import BackendSnapshot
from viworks_verify.core.canonical import (
    EPHEMERAL_PORTS,
    Facts,
    Observed,
    flatten,
    key,
    octal_mode,
)
from viworks_verify.edge.snapshot import EdgeSnapshot
from viworks_verify.gateway.snapshot import GatewaySnapshot
from viworks_verify.gather.snapshot import Snapshot
from viworks_verify.pki import certs
from viworks_verify.target.settings import Gateway

# systemctl show properties that change with every start, not with the deployment.
VOLATILE_UNIT_PROPERTIES = frozenset(
    {
        "MainPID",
        "ExecMainPID",
        "ControlPID",
        "InvocationID",
        "ActiveEnterTimestamp",
        "ActiveExitTimestamp",
        "InactiveEnterTimestamp",
        "InactiveExitTimestamp",
        "StateChangeTimestamp",
        "ExecMainStartTimestamp",
        "ExecMainExitTimestamp",
        "ConditionTimestamp",
        "AssertTimestamp",
        "MemoryCurrent",
        "CPUUsageNSec",
        "TasksCurrent",
    }
)


def canonical_facts(snapshot: Snapshot) -> Facts:
    """Every canonical fact of one host's snapshot (paths without the host's name)."""
    if not snapshot.connection.ok:
        return {"connection": Observed(f"unreachable: {snapshot.connection.problem}")}
    if isinstance(snapshot, BackendSnapshot):
        return dict(snapshot.canonical())
    if isinstance(snapshot, GatewaySnapshot):
        return dict(_gateway(snapshot))
    if isinstance(snapshot, EdgeSnapshot):
        return dict(snapshot.canonical())
    raise TypeError(f"not a host snapshot: {type(snapshot).__name__}")


def _problem_or(fact, path: str, values: Iterator[tuple[str, Observed]]) -> Iterator[tuple[str, Observed]]:
    """The fact's canonical values, or the one fact that it could not be read."""
    if fact.problem is not None:
        yield path, Observed(f"unreadable: {fact.problem}")
        return
    yield from values


# ------------------------------------------------------------------------------------ gateway


def _gateway(snap: GatewaySnapshot) -> Iterator[tuple[str, Observed]]:
    yield from _problem_or(snap.unit, "unit", _unit(snap.unit.value or {}, Gateway().max_restarts))
    env_file = _env_file(snap.unit.value or {})
    if snap.env.ok and snap.agent_toml.ok:
        config = snap.effective_config(env_file)
        by_file: dict[str, list[str]] = {}
        for name, value in sorted(config.values.items()):
            yield f"config.{name}", Observed(value)
            by_file.setdefault(config.sources.get(name) or "?", []).append(name)
        for file, names in sorted(by_file.items()):  # where each setting comes from: .env, or agent.toml
            yield f"config.{key('from', file)}", Observed(names)
    else:
        yield "config", Observed(f"unreadable: {snap.env.problem or snap.agent_toml.problem}")
    yield from _problem_or(
        snap.agent_toml,
        "agent_toml",
        iter([("agent_toml.present", Observed((snap.agent_toml.value or {}).get("present")))]),
    )
    yield from _problem_or(snap.files, "files", _gateway_files(snap.files.value or {}))
    yield from _problem_or(snap.artifacts, "artifacts", _gateway_artifacts(snap))
    yield from _problem_or(snap.scripts_root, "scripts_root", _scripts_root(snap))
    yield from _problem_or(
        snap.client_certificate, "certificate", _certificates("certificate", snap.client_certificate.value or "")
    )
    yield from _problem_or(snap.trust_bundle, "trust", _trust(snap.trust_bundle.value or []))
    yield from _problem_or(snap.process, "process", _process(snap.process.value or {}))
    yield from _problem_or(snap.listeners, "listeners", _host_listeners(snap.listeners.value or []))
    yield from _problem_or(
        snap.journal,
        "journal",
        iter([("journal.connected", Observed((snap.journal.value or {}).get("connected"), volatile=True))]),
    )
    yield from _problem_or(
        snap.clock_skew,
        "clock_skew_s",
        iter([("clock_skew_s", Observed((snap.clock_skew.value or {}).get("seconds"), volatile=True))]),
    )


def _unit(properties: dict[str, str], restart_threshold: int) -> Iterator[tuple[str, Observed]]:
    for name, value in sorted(properties.items()):
        if name == "ExecStart":
            yield "unit.ExecStart", Observed(_exec_command(value))
        elif name == "NRestarts":
            count = int(value) if str(value).isdigit() else value
            yield "unit.NRestarts", Observed(count, volatile=isinstance(count, int) and count < restart_threshold)
        else:
            yield f"unit.{name}", Observed(value, volatile=name in VOLATILE_UNIT_PROPERTIES)


def _exec_command(text: str) -> str:
    """``{ path=... ; argv[]=/opt/agent --flag ; ... pid=0 ; start_time=... }`` as its command line."""
    found = re.search(r"argv\[\]=(.*?) ;", text)
    return found.group(1).strip() if found else text


def _env_file(properties: dict[str, str]) -> str:
    first = (properties.get("EnvironmentFiles") or "").split(" (")[0].strip()
    return first or Gateway().env_file


def _gateway_files(data: dict[str, Any]) -> Iterator[tuple[str, Observed]]:
    for path, stat in sorted(data.get("stats", {}).items()):
        yield f"{key('files', path)}.kind", Observed(stat.get("kind"))
        yield f"{key('files', path)}.mode", Observed(octal_mode(stat.get("mode")))
        yield f"{key('files', path)}.owner", Observed(f"{stat.get('user')}:{stat.get('group')}")
    for path, reason in sorted(data.get("errors", {}).items()):
        yield f"{key('files', path)}.kind", Observed(f"unreadable: {reason}")


def _gateway_artifacts(snap: GatewaySnapshot) -> Iterator[tuple[str, Observed]]:
    """The program at ExecStart as one fact (size and sha256, as the backend's binary), the unit file and
    its drop-ins by sha256. The scripts are the scripts root's."""
    data = snap.artifacts.value or {}
    digests, errors = data.get("sha256") or {}, data.get("errors") or {}
    root = (snap.scripts_root.value or {}).get("path") if snap.scripts_root.ok else None
    program = snap.unit_properties(Gateway().unit).exec_start_path if snap.unit.ok else None
    stats = (snap.files.value or {}).get("stats", {}) if snap.files.ok else {}
    for path in sorted(digests.keys() | errors.keys()):
        if root and path.startswith(root.rstrip("/") + "/"):
            continue
        if path == program:
            yield (
                "binary",
                Observed({"path": path, "size": (stats.get(path) or {}).get("size"), "sha256": digests.get(path)}),
            )
        elif path in digests:
            yield f"{key('files', path)}.sha256", Observed(digests[path])
        else:
            yield f"{key('files', path)}.sha256", Observed(f"unreadable: {errors[path]}")


def _scripts_root(snap: GatewaySnapshot) -> Iterator[tuple[str, Observed]]:
    """Every entry of the scripts root (a stray file shows as added), each by kind, mode, owner and content."""
    data = snap.scripts_root.value or {}
    entries = snap.scripts_root_entries()
    root = str(data.get("path") or "")
    yield "scripts_root.path", Observed(f"{root} ({data.get('state')})" if root else data.get("state"))
    yield "scripts_root.entries", Observed([entry.name for entry in entries])
    for entry in entries:
        prefix = key("scripts_root", entry.name)
        yield f"{prefix}.kind", Observed(entry.kind)
        yield f"{prefix}.mode", Observed(entry.octal)
        yield f"{prefix}.owner", Observed(entry.user)
        if entry.kind == "regular file":
            yield (
                f"{prefix}.content",
                Observed({"size": entry.size, "sha256": snap.sha256_of(f"{root.rstrip('/')}/{entry.name}")}),
            )


def _trust(bundle: list[str]) -> Iterator[tuple[str, Observed]]:
    anchors = [certs.describe(c) for pem in bundle for c in certs.load_pem_certificates(pem.encode())]
    yield "trust", Observed(sorted(f"{a['subject']} ({a['spki_pin']})" for a in anchors))


def _process(data: dict[str, Any]) -> Iterator[tuple[str, Observed]]:
    yield "process.program", Observed(data.get("program_resolved") or data.get("program"))
    yield "process.argv", Observed(list(data.get("argv", [])))
    yield "process.exe", Observed(data.get("exe"))
    yield "process.pid", Observed(data.get("pid"), volatile=True)
    yield "process.state", Observed(data.get("state"), volatile=True)


def _host_listeners(listeners: list[dict[str, Any]]) -> Iterator[tuple[str, Observed]]:
    steady, ephemeral = set(), set()
    for item in listeners:
        owners = sorted({name for name, _ in item.get("processes", [])})
        text = f"{item['proto']} {item['address']}:{item['port']} {','.join(owners) or '-'}"
        (ephemeral if int(item["port"]) in EPHEMERAL_PORTS else steady).add(text)
    yield "listeners", Observed(sorted(steady))
    yield "listeners.ephemeral", Observed(sorted(ephemeral), volatile=True)


# ------------------------------------------------------------------------------------- shared


def _certificates(prefix: str, pem: str) -> Iterator[tuple[str, Observed]]:
    try:
        found = certs.load_pem_certificates(pem.encode())
    except ValueError as exc:
        yield prefix, Observed(f"unreadable: {exc}")
        return
    for index, certificate in enumerate(found):
        yield from flatten(
            prefix if index == 0 else f"{prefix}.{key('chain', str(index))}", certs.describe(certificate)
        )
