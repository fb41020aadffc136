"""Faults the lab can inject: the failures the real deployment had, one at a time, and their healing.

A fault is either a *knob* (a value the lab renders differently: nginx's upstream port, the backend's
config, which certificate nginx serves) or an *action* on a running container (stop a unit, remove a
file, disconnect a network). Healing never rebuilds: knobs go back to healthy values, containers a
fault touched by hand are re-created from their cached images, and the gateway is re-deployed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import docker

from viworks_lab import topology
from viworks_lab.layout import BACKEND, GATEWAY_BINARY, NGINX, POSTGRES, GatewayHost, StateDir


class FaultTarget(Protocol):
    """What a fault's action needs of the lab (``viworks_lab.lab.Lab`` is one): no import of it, no cycle."""

    client: docker.DockerClient
    ready_timeout_s: float
    state: StateDir

    @property
    def fault_gateway(self) -> GatewayHost: ...


UNIT = "viworks-gateway-agent.service"
SCRIPTS = "/opt/viworks/scripts"
# A link to /dev/null in a unit directory that outranks /etc/systemd/system masks the unit deployed there.
UNIT_MASK = f"/etc/systemd/system.control/{UNIT}"


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What the lab renders; the healthy values are the defaults."""

    nginx_ws_port: int = 8081
    ws_server_enabled: bool = True
    dispatch_enabled: bool = True
    backend_jwt_secret_rotated: bool = False  # the backend verifies tokens with a secret nobody has
    served_identity: str = "server"  # the .lab/pki stem nginx serves (material.ensure_server_variant's stems)
    agent_ports_published: bool = False  # 8080/8081 published on the host (on loopback: the machine's rule)
    identity_from_client: bool = False  # nginx forwards the client's identity headers on /ws/ instead of setting them
    old_tls_protocols: bool = False  # nginx also speaks TLS 1.0 and 1.1 (and the ciphers they need)
    client_certificate_unchecked: bool = (
        False  # nginx asks for no CA-verified certificate; the backend checks none either
    )
    http_serves_agent: bool = False  # port 80 proxies to the agent's API instead of redirecting to https
    api_identity_from_client: bool = (
        False  # location / passes the client's identity headers; the API takes them as login
    )
    # The backend agent's own defects (its [lab_faults] section).
    backend_faults: tuple[tuple[str, object], ...] = ()
    reported_version: str | None = None  # /health reports this instead of the deployed build's version
    database_created: bool = True  # Postgres has the database the backend's config names (a deploy step of its own)


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    description: str
    knobs: Knobs = Knobs()
    action: Callable[[FaultTarget], None] | None = None
    recreate: tuple[str, ...] = ()  # containers changed by hand: re-created from their image on heal
    redeploy_gateway: bool = False
    # What must still work once the fault is in, so a run sees this fault and nothing else:
    wait_for: tuple[str, ...] = ("backend", "edge", "gateway")


def _gateway(lab: FaultTarget):
    """The gateway host the fault is injected into (``break --host``; gw-lab-01 by default)."""
    return lab.client.containers.get(lab.fault_gateway.container)


def _in_gateway(*command: str) -> Callable[[FaultTarget], None]:
    def act(lab: FaultTarget) -> None:
        topology.exec_checked(_gateway(lab), list(command), " ".join(command))

    return act


def _sequence(*actions: Callable[[FaultTarget], None]) -> Callable[[FaultTarget], None]:
    def act(lab: FaultTarget) -> None:
        for action in actions:
            action(lab)

    return act


def _disconnect_public(lab: FaultTarget) -> None:
    lab.client.networks.get("viworks-public").disconnect(BACKEND)
    lab.client.containers.get(NGINX).restart(timeout=5)  # as a redeploy would: nginx re-resolves the backend


def _stop_postgres(lab: FaultTarget) -> None:
    lab.client.containers.get(POSTGRES).stop(timeout=10)


def _wait_for_postgres_to_answer(lab: FaultTarget) -> None:
    """The re-created Postgres answers (without the database): the backend then reports what is really wrong."""
    from viworks_verify.core.polling import poll_until

    postgres = lab.client.containers.get(POSTGRES)
    poll_until(
        lambda: postgres.exec_run(["pg_isready", "-h", "127.0.0.1", "-q"]).exit_code,
        lambda code: code == 0,
        what="Postgres accepting connections",
        timeout_s=lab.ready_timeout_s,
    )


def _drift_binary(lab: FaultTarget) -> None:
    from viworks_lab.release import build_agent

    drifted = build_agent("backend", build_note="built from a working tree nobody can name")
    backend = lab.client.containers.get(BACKEND)
    topology.put_files(backend, {"/app/viworks-backend-agent": (drifted.data, 0o755)})
    backend.restart(timeout=10)


def _attach_to_bridge(lab: FaultTarget) -> None:
    lab.client.networks.get("bridge").connect(BACKEND)


def _drift_gateway_binary(lab: FaultTarget) -> None:
    """Another build at the unit's ExecStart, same path and mode, the unit restarted on it."""
    from viworks_lab.release import build_agent

    drifted = build_agent("gateway", build_note="a hotfix built on the gateway host")
    gateway = _gateway(lab)
    topology.put_files(gateway, {GATEWAY_BINARY: (drifted.data, 0o755)})
    topology.exec_checked(gateway, ["systemctl", "restart", UNIT], "restart the gateway unit")


def _wrong_usage_client_certificate(lab: FaultTarget) -> None:
    from viworks_lab.material import ensure_client_variant

    pem = ensure_client_variant(lab.state, lab.fault_gateway.agent_id, "wrong-usage")
    gateway = _gateway(lab)
    topology.put_files(gateway, {"/opt/viworks/agent/certs/client.crt": (pem, 0o644)})
    topology.exec_checked(gateway, ["systemctl", "restart", UNIT], "restart the gateway unit")


_GATEWAY_ONLY = ("backend", "edge")
FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "ws-server-down",
            "nothing listens on 8081 in the backend container: the WebSocket server never started",
            Knobs(ws_server_enabled=False),
            wait_for=("backend",),
        ),
        Fault(
            "nginx-wrong-port",
            "nginx proxies the agent /ws/ location to 8080 (the API) instead of 8081",
            Knobs(nginx_ws_port=8080),
            wait_for=_GATEWAY_ONLY,
        ),
        Fault(
            "gateway-stopped",
            "the gateway agent unit is stopped",
            action=_in_gateway("systemctl", "stop", UNIT),
            redeploy_gateway=True,
            wait_for=_GATEWAY_ONLY,
        ),
        Fault(
            "gateway-bad-execstart",
            "the unit's ExecStart names a binary path that does not exist (crash loop)",
            action=_sequence(
                _in_gateway(
                    "sed",
                    "-i",
                    "s|^ExecStart=.*|ExecStart=/opt/viworks/bin/viworks-gateway-agent|",
                    "/etc/systemd/system/" + UNIT,
                ),
                _in_gateway("systemctl", "daemon-reload"),
                _in_gateway("systemctl", "restart", UNIT),
            ),
            redeploy_gateway=True,
            wait_for=_GATEWAY_ONLY,
        ),
        Fault(
            "one-network",
            "the backend agent container is disconnected from viworks-public",
            action=_disconnect_public,
            wait_for=("backend", "edge"),
        ),
        Fault(
            "client-cert-missing",
            "the gateway's client certificate is removed; the agent stays active and never reconnects",
            action=_sequence(
                _in_gateway("rm", "-f", "/opt/viworks/agent/certs/client.crt"),
                _in_gateway("systemctl", "kill", "--signal=HUP", UNIT),
            ),
            redeploy_gateway=True,
            wait_for=_GATEWAY_ONLY,
        ),
        Fault(
            "script-missing",
            "add_vpn_user.sh is removed from the gateway's scripts root",
            action=_in_gateway("rm", "-f", "/opt/viworks/scripts/add_vpn_user.sh"),
            redeploy_gateway=True,
        ),
        Fault(
            "script-not-executable",
            "add_vpn_user.sh loses its run bits",
            action=_in_gateway("chmod", "a-x", "/opt/viworks/scripts/add_vpn_user.sh"),
            redeploy_gateway=True,
        ),
        Fault(
            "pin-mismatch",
            "nginx serves a certificate with another key: the gateway's pin no longer matches",
            Knobs(served_identity="server-rekeyed"),
            wait_for=_GATEWAY_ONLY,
        ),
        Fault(
            "cert-expired",
            "nginx serves an expired certificate",
            Knobs(served_identity="server-expired"),
            wait_for=("backend",),
        ),
        Fault(
            "env-missing-key",
            "VIW_AGENT_SITE is removed from the gateway's .env",
            action=_in_gateway("sed", "-i", "/^VIW_AGENT_SITE=/d", "/opt/viworks/agent/.env"),
            redeploy_gateway=True,
        ),
        Fault(
            "api-auth-broken",
            "the API rejects every token (its JWT secret is not the one tokens are signed with)",
            Knobs(backend_jwt_secret_rotated=True),
            wait_for=_GATEWAY_ONLY,
        ),
        Fault(
            "dispatch-broken",
            "the backend accepts commands (201) and never delivers them",
            Knobs(dispatch_enabled=False),
        ),
        Fault("db-down", "Postgres is stopped, so the backend is degraded", action=_stop_postgres, wait_for=()),
        Fault(
            "agent-ports-exposed",
            "the backend agent's 8080/8081 are published on the host (the real deployment's "
            "8080-8081:8080-8081): reachable around the edge, without TLS or a client certificate",
            Knobs(agent_ports_published=True),
        ),
        Fault(
            "identity-header-passthrough",
            "nginx passes a client's own X-Client-CN and X-Client-Verify on /ws/ when it "
            'sends them ("prefer a front proxy\'s identity"): any certificate holder picks its agent id',
            Knobs(identity_from_client=True),
        ),
        Fault(
            "tls-floor-lowered",
            "the edge also speaks TLS 1.0 and 1.1 (ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3)",
            Knobs(old_tls_protocols=True),
        ),
        Fault(
            "client-cert-not-checked",
            "no client certificate is checked: nginx's ssl_verify_client optional_no_ca with no "
            "refusal, and a backend that takes any upgrade",
            Knobs(client_certificate_unchecked=True, backend_faults=(("client_certificate_unchecked", True),)),
        ),
        Fault(
            "registry-empty",
            "the agent registry stays empty: the API lists no agent, though sessions are live",
            Knobs(backend_faults=(("registry_hidden", True),)),
            wait_for=_GATEWAY_ONLY,
        ),
        Fault("api-open", "the API answers /api/v1 without a token", Knobs(backend_faults=(("api_open", True),))),
        Fault(
            "hello-not-bound-to-cn",
            "the backend welcomes a hello whatever agent id it claims, not the certificate's CN",
            Knobs(backend_faults=(("hello_unbound_to_cn", True),)),
        ),
        Fault(
            "duplicate-sessions",
            "the backend welcomes a second live session of the same agent id",
            Knobs(backend_faults=(("duplicate_sessions", True),)),
        ),
        Fault(
            "health-slow",
            "/health answers after 300 ms (the SLO is 100 ms)",
            Knobs(backend_faults=(("health_delay_ms", 300),)),
        ),
        Fault(
            "version-mismatch",
            "/health reports version 1.4.1-lab while the deployed build is 1.4.2-lab",
            Knobs(reported_version="1.4.1-lab"),
        ),
        Fault(
            "http-serves-agent-path",
            "port 80 proxies to the backend agent's API instead of redirecting to https",
            Knobs(http_serves_agent=True),
        ),
        Fault(
            "api-trusts-identity-headers",
            "location / passes the client's X-Client-CN and X-Client-Verify, and the API takes them as authentication",
            Knobs(api_identity_from_client=True, backend_faults=(("api_trusts_identity_headers", True),)),
        ),
        Fault(
            "telemetry-placeholder",
            "the gateway agent sends placeholder telemetry (zeros, no disks) instead of readings",
            action=_sequence(
                _in_gateway("sh", "-c", "echo VIW_LAB_PLACEHOLDER_TELEMETRY=true >> /opt/viworks/agent/.env"),
                _in_gateway("systemctl", "restart", UNIT),
            ),
            redeploy_gateway=True,
        ),
        Fault(
            "database-missing",
            "Postgres runs, but the database the backend's config names was never created",
            Knobs(database_created=False),
            action=_wait_for_postgres_to_answer,
            recreate=(POSTGRES,),
            wait_for=(),
        ),
        Fault(
            "binary-drift",
            "the backend binary differs from the expected release build",
            action=_drift_binary,
            recreate=(BACKEND,),
        ),
        # What should not be there, and artifacts known by content (a closed world).
        Fault(
            "backend-extra-network",
            "the backend agent container is also attached to Docker's default bridge network: its plain "
            "8080/8081 reachable from every container on the host",
            action=_attach_to_bridge,
            recreate=(BACKEND,),
        ),
        Fault(
            "script-stray",
            "a world-writable executable cleanup.sh lies in the gateway's scripts root besides the four scripts",
            action=_in_gateway(
                "sh", "-c", f"printf '#!/bin/sh\\nid\\n' > {SCRIPTS}/cleanup.sh && chmod 0777 {SCRIPTS}/cleanup.sh"
            ),
            redeploy_gateway=True,
        ),
        Fault(
            "script-tampered",
            "add_user.sh is edited on the gateway host (same path, owner and mode, other content)",
            action=_in_gateway("sh", "-c", f"echo 'logger -t viworks edited-on-host' >> {SCRIPTS}/add_user.sh"),
            redeploy_gateway=True,
        ),
        Fault(
            "env-unknown-key",
            "the gateway's .env sets VIW_AGENT_CMD_TIMEOUT=90, a key the agent does not read "
            "(VIW_AGENT_CMD_TIMEOUT_SECS meant): silently ignored",
            action=_in_gateway("sh", "-c", "echo VIW_AGENT_CMD_TIMEOUT=90 >> /opt/viworks/agent/.env"),
            redeploy_gateway=True,
        ),
        Fault(
            "gateway-binary-drift",
            "the gateway agent's program is replaced by another build at the same path with the same mode",
            action=_drift_gateway_binary,
            redeploy_gateway=True,
        ),
        Fault(
            "gateway-unit-masked",
            "the gateway agent's unit is masked (a /dev/null link over it) and stopped",
            action=_sequence(
                _in_gateway("systemctl", "stop", UNIT),
                _in_gateway("sh", "-c", f"mkdir -p {UNIT_MASK.rsplit('/', 1)[0]} && ln -sf /dev/null {UNIT_MASK}"),
                _in_gateway("systemctl", "daemon-reload"),
            ),
            redeploy_gateway=True,
            wait_for=_GATEWAY_ONLY,
        ),
        # Certificates a strict client (rustls, Go, browsers) refuses.
        Fault(
            "edge-cert-cn-only",
            "nginx serves a certificate with agent.lab.test in its subject CN only, no subjectAltName "
            "(same key): Python's ssl accepts it, rustls, Go and browsers refuse it",
            Knobs(served_identity="server-cn-only"),
        ),
        Fault(
            "edge-cert-unsupported-key",
            "nginx serves its certificate (same key) issued by an intermediate with an EC P-521 key: "
            "OpenSSL and Python accept it, the strict clients (rustls, Go, browsers) do not",
            Knobs(served_identity="server-weak-issuer"),
        ),
        Fault(
            "client-cert-wrong-usage",
            "the gateway's client certificate (same key and CA) lists serverAuth only as its extended "
            "key usage: no server may accept it for a client",
            action=_wrong_usage_client_certificate,
            redeploy_gateway=True,
            wait_for=_GATEWAY_ONLY,
        ),
    )
}
