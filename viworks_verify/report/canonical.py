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

A path is segments joined by dots; a key that is data (a file path, a container name, a location)
is in brackets: ``backend-1.containers[viworks-backend-agent-new].networks``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from viworks_verify.backend.listeners import TCP_LISTEN
from viworks_verify.backend.nginx_config import Directive
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
from viworks_verify.target.settings import Backend

DATA_BLOCKS = frozenset({"map", "geo", "types", "split_clients", "match"})  # nginx blocks whose lines are data


def canonical_facts(snapshot: Snapshot) -> Facts:
    """Every canonical fact of one host's snapshot (paths without the host's name)."""
    if not snapshot.connection.ok:
        return {"connection": Observed(f"unreachable: {snapshot.connection.problem}")}
    if isinstance(snapshot, BackendSnapshot):
        return dict(_backend(snapshot))
    if isinstance(snapshot, GatewaySnapshot):
        return dict(snapshot.canonical())
    if isinstance(snapshot, EdgeSnapshot):
        return dict(snapshot.canonical())
    raise TypeError(f"not a host snapshot: {type(snapshot).__name__}")


def _problem_or(fact, path: str, values: Iterator[tuple[str, Observed]]) -> Iterator[tuple[str, Observed]]:
    """The fact's canonical values, or the one fact that it could not be read."""
    if fact.problem is not None:
        yield path, Observed(f"unreadable: {fact.problem}")
        return
    yield from values


# ------------------------------------------------------------------------------------ backend


def _backend(snap: BackendSnapshot) -> Iterator[tuple[str, Observed]]:
    threshold = Backend().max_restarts
    for name, fact in sorted(snap.containers.items()):
        yield from _problem_or(
            fact, key("containers", name), _container(key("containers", name), fact.value or {}, threshold)
        )
    yield from _problem_or(snap.agent_files, "files", _agent_files(snap.agent_files.value or {}))
    yield from _problem_or(
        snap.agent_config, "config", flatten("config", _without(snap.agent_config.value or {}, "redacted"))
    )
    yield from _problem_or(snap.agent_listeners, "listeners", _agent_listeners(snap.agent_listeners.value or {}))
    yield from _problem_or(snap.nginx, "nginx", _nginx(snap.nginx.value or {}))
    yield from _problem_or(snap.nginx_tls_files, "tls_files", _tls_files(snap.nginx_tls_files.value or {}))
    yield from _problem_or(
        snap.clock_skew,
        "clock_skew_s",
        iter([("clock_skew_s", Observed((snap.clock_skew.value or {}).get("seconds"), volatile=True))]),
    )


def _container(prefix: str, inspect: dict[str, Any], restart_threshold: int) -> Iterator[tuple[str, Observed]]:
    state = inspect.get("State") or {}
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    yield f"{prefix}.image", Observed((inspect.get("Config") or {}).get("Image"))
    yield f"{prefix}.image_id", Observed(inspect.get("Image"))
    yield f"{prefix}.networks", Observed(sorted(networks))
    for network, info in sorted(networks.items()):
        yield f"{prefix}.{key('address', network)}", Observed((info or {}).get("IPAddress"), volatile=True)
    yield (
        f"{prefix}.published",
        Observed(
            sorted(
                f"{binding.get('HostIp') or '*'}:{binding.get('HostPort')}->{port}"
                for port, bindings in ((inspect.get("HostConfig") or {}).get("PortBindings") or {}).items()
                for binding in bindings or [{}]
            )
        ),
    )
    yield f"{prefix}.status", Observed(state.get("Status"))
    health = state.get("Health")
    yield f"{prefix}.health", Observed(health.get("Status") if isinstance(health, dict) else None, volatile=True)
    restarts = inspect.get("RestartCount", 0)
    yield f"{prefix}.restart_count", Observed(restarts, volatile=(restarts or 0) < restart_threshold)
    yield f"{prefix}.started_at", Observed(state.get("StartedAt"), volatile=True)


def _agent_files(files: dict[str, Any]) -> Iterator[tuple[str, Observed]]:
    for path, item in sorted(files.items()):
        if item.get("sha256"):  # the binary: what the release check judges, as one fact
            yield "binary", Observed({"path": path, "size": item.get("size"), "sha256": item.get("sha256")})
        yield f"{key('files', path)}.kind", Observed(item.get("kind"))
        yield f"{key('files', path)}.mode", Observed(octal_mode(item.get("mode")))
        yield f"{key('files', path)}.owner", Observed(item.get("owner"))
        if not item.get("sha256"):
            yield f"{key('files', path)}.size", Observed(item.get("size"))


def _agent_listeners(data: dict[str, Any]) -> Iterator[tuple[str, Observed]]:
    listening = [s for s in data.get("sockets", []) if s.get("state") == TCP_LISTEN]
    yield (
        "listeners",
        Observed(
            sorted({f"{s['family']} {s['address']}:{s['port']}" for s in listening if s["port"] not in EPHEMERAL_PORTS})
        ),
    )
    yield (
        "listeners.ephemeral",
        Observed(
            sorted({f"{s['family']} {s['address']}:{s['port']}" for s in listening if s["port"] in EPHEMERAL_PORTS}),
            volatile=True,
        ),
    )


def _tls_files(files: dict[str, Any]) -> Iterator[tuple[str, Observed]]:
    for path, item in sorted(files.items()):
        yield f"{key('files', path)}.mode", Observed(octal_mode(item.get("mode")))
        yield f"{key('files', path)}.owner", Observed(item.get("owner"))
        if item.get("content"):
            yield from _certificates(key("certificates", path), item["content"])


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


def _nginx(data: dict[str, Any]) -> Iterator[tuple[str, Observed]]:
    from viworks_verify.backend.snapshot import directive_from_json

    tree = [directive_from_json(d) for d in data.get("tree", [])]
    yield from _nginx_block("nginx", tree)
    if data.get("errors"):
        yield "nginx.errors", Observed(sorted(data["errors"]))


def _nginx_block(prefix: str, directives: list[Directive]) -> Iterator[tuple[str, Observed]]:
    """A block as its directives' values by name, and each child block under its key."""
    values: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for directive in directives:
        if directive.block is None:
            values.setdefault(directive.name, []).append(" ".join(directive.args))
            continue
        if directive.name in DATA_BLOCKS:  # its lines are a table (key value), not directives
            table = {d.name: " ".join(d.args) for d in directive.block}
            yield f"{prefix}.{key(directive.name, ' '.join(directive.args))}", Observed(dict(sorted(table.items())))
            continue
        label = _block_key(directive)
        block_key = key(directive.name, label) if label else directive.name
        seen[block_key] = seen.get(block_key, 0) + 1
        if seen[block_key] > 1:
            block_key = key(directive.name, f"{label}#{seen[block_key]}")
        yield from _nginx_block(f"{prefix}.{block_key}", directive.block)
    for name, args in sorted(values.items()):
        yield f"{prefix}.{name}", Observed(args[0] if len(args) == 1 else args)


def _block_key(directive: Directive) -> str:
    if directive.name != "server":
        return " ".join(directive.args)
    names = [" ".join(d.args) for d in directive.block or [] if d.name == "server_name"]
    ports = sorted({_listen_port(d.args) for d in directive.block or [] if d.name == "listen"})
    return f"{' '.join(names) or '_'}:{'/'.join(ports) or '80'}"


def _listen_port(args: tuple[str, ...]) -> str:
    first = args[0] if args else "80"
    return first.rsplit(":", 1)[-1] if not first.startswith("unix:") else first


# ------------------------------------------------------------------------------------- shared


def _without(data: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: (_without(v, name) if isinstance(v, dict) else v) for k, v in data.items() if k != name}
