"""How the lab knows a part is ready: the backend answers /health on its network, nginx serves the agent
domain, each gateway is Online in the registry; and whether a release candidate's agents started
(ended at once on proof they did not, with their last log lines). Polled against a deadline, never slept."""

from __future__ import annotations

import re
import ssl
from typing import Any

import httpx

from viworks_lab import topology
from viworks_lab.candidate import Candidate
from viworks_lab.engine import LabError
from viworks_lab.layout import (
    AGENT_DOMAIN,
    BACKEND,
    BACKEND_BINARY,
    GATEWAY_BINARY,
    GATEWAY_UNIT,
    LOOPBACK,
    PORTS,
    GatewayHost,
)
from viworks_lab.material import Material, ensure_material
from viworks_verify.core.polling import NotReady, poll_until
from viworks_verify.target.tokens import mint_token

SETTLED_S = 2  # a candidate's process counts as started once it has run this long (or, the backend, answered /health)
_VERSION = re.compile(r"\b\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?\b")


class CandidateDidNotStart(LabError):
    """The lab is up, but a candidate's agent did not start: the message holds its last log lines."""


class LabReadiness:
    """The waits of ``Lab`` (a part of it: it holds the client, the state, the fleet and the deadline)."""

    client: Any
    ready_timeout_s: float

    def _wait_for(self, material: Material, parts: tuple[str, ...]) -> None:
        if "backend" in parts:
            self._wait_backend(material)
        if "edge" in parts:
            self._wait_edge()
        if "gateway" in parts:
            for gateway in self.gateways:
                self._wait_gateway_online(material, gateway.agent_id)

    def _wait_backend(self, material: Material) -> None:
        def health() -> tuple[int, str]:
            response = httpx.get(f"{self._backend_api()}/health", timeout=2)
            return response.status_code, response.json().get("status", "?")

        self._wait(health, lambda seen: seen == (200, "healthy"), "backend agent /health on its Docker network")

    def _backend_api(self) -> str:
        """The backend agent's API as the lab itself reaches it: at its address on a Docker network
        (this machine routes to the lab's bridges), since nothing of it is published on the host."""
        networks = self.client.containers.get(BACKEND).attrs["NetworkSettings"]["Networks"]
        for name in ("viworks-public", *networks):
            address = (networks.get(name) or {}).get("IPAddress")
            if address:
                return f"http://{address}:{PORTS['api']}"
        raise LabError(f"{BACKEND} has no address on any Docker network")

    def _wait_edge(self) -> None:
        context = ssl.create_default_context(
            cafile=str(ensure_material(self.state, self.gateway_count, self.variant).path("ca.crt"))
        )

        def health_via_nginx() -> int:
            # Reach the loopback port, but speak to it as the agent domain (SNI, certificate name, Host).
            with httpx.Client(verify=context, timeout=2) as http:
                response = http.get(
                    f"https://{LOOPBACK}:{PORTS['https']}/health",
                    headers={"Host": AGENT_DOMAIN},
                    extensions={"sni_hostname": AGENT_DOMAIN},
                )
            return response.status_code

        self._wait(
            health_via_nginx,
            lambda status: status == 200,
            f"nginx https://{AGENT_DOMAIN} on {LOOPBACK}:{PORTS['https']}",
        )

    def _wait(self, probe, ready, what: str) -> float:
        try:
            return poll_until(probe, ready, what=what, timeout_s=self.ready_timeout_s).elapsed_s
        except NotReady as exc:
            raise LabError(f"lab not up: {exc}") from exc

    def _binary_version(self, image: str) -> str | None:
        """What the backend binary says its version is (``--version``), in a throwaway container with no network."""
        container = self.client.containers.run(image, [BACKEND_BINARY, "--version"], detach=True, network_disabled=True)
        try:
            outcome = container.wait(timeout=20)
            output = container.logs(stdout=True, stderr=False).decode(errors="replace")
        except Exception:
            return None
        finally:
            container.remove(force=True)
        return _version_in(output) if outcome.get("StatusCode") == 0 else None

    def _gateway_binary_version(self) -> str | None:
        container = self.client.containers.get(self.gateways[0].container)
        done = container.exec_run(["timeout", "20", GATEWAY_BINARY, "--version"], demux=True)
        return _version_in((done.output[0] or b"").decode(errors="replace")) if done.exit_code == 0 else None

    def _wait_candidate_started(self, candidate: Candidate) -> None:
        """Each agent the candidate replaced is up: the backend answers /health (any status), a gateway's
        unit runs its program for a few seconds. Ends at once on proof it did not start: the container
        exited or restarted, the unit failed or restarted. Its last log lines say why."""
        problems = []
        if {"backend_binary", "backend_config"} & candidate.files.keys():
            problems += self._backend_started()
        if {"gateway_binary", "gateway_config", "gateway_env"} & candidate.files.keys():
            problems += [problem for gateway in self.gateways for problem in self._gateway_started(gateway)]
        if problems:
            raise CandidateDidNotStart("the candidate did not start:\n" + "\n".join(problems))
        self.log("the candidate's agents started: run the gate (pytest -m smoke) to judge them")

    def _backend_started(self) -> list[str]:
        def observe() -> tuple[str, int]:
            container = self.client.containers.get(BACKEND)
            state, restarts = container.attrs["State"]["Status"], container.attrs["RestartCount"]
            if state == "running" and restarts == 0:
                try:
                    return (
                        f"answered HTTP {httpx.get(f'{self._backend_api()}/health', timeout=2).status_code}",
                        restarts,
                    )
                except (httpx.HTTPError, LabError):
                    return "running", restarts
            return state, restarts

        try:
            seen, _ = poll_until(
                observe,
                lambda seen: seen[0].startswith("answered") or seen[0] != "running" or seen[1] > 0,
                what="the candidate backend agent",
                timeout_s=self.ready_timeout_s,
            ).value
        except NotReady as exc:
            seen = f"never answered /health ({exc.last})"
        if seen.startswith("answered"):
            return []
        logs = self.client.containers.get(BACKEND).logs(tail=12).decode(errors="replace").rstrip()
        return [f"{BACKEND}: {seen}; its last log lines:\n" + _indent(logs)]

    def _gateway_started(self, gateway: GatewayHost) -> list[str]:
        container = self.client.containers.get(gateway.container)
        show = [
            "systemctl",
            "show",
            GATEWAY_UNIT,
            "-p",
            "ActiveState",
            "-p",
            "SubState",
            "-p",
            "NRestarts",
            "-p",
            "MainPID",
        ]

        def observe() -> dict[str, str]:
            properties = dict(
                line.split("=", 1)
                for line in topology.exec_checked(container, show, "systemctl show").splitlines()
                if "=" in line
            )
            pid = properties.get("MainPID", "0")
            running_s = (
                container.exec_run(["ps", "-o", "etimes=", "-p", pid]).output.decode().strip() if pid != "0" else ""
            )
            properties["running_s"] = running_s if running_s.isdigit() else "0"
            return properties

        def settled(seen: dict[str, str]) -> bool:
            failed = seen.get("NRestarts", "0") != "0" or seen.get("ActiveState") not in ("active", "activating")
            return failed or int(seen["running_s"]) >= SETTLED_S

        try:
            seen = poll_until(
                observe,
                settled,
                what=f"the candidate gateway agent on {gateway.container}",
                timeout_s=self.ready_timeout_s,
            ).value
        except NotReady as exc:
            seen = exc.last or {}
        if (
            seen.get("ActiveState") == "active"
            and seen.get("NRestarts", "0") == "0"
            and int(seen.get("running_s", "0")) >= SETTLED_S
        ):
            return []
        journal = (
            container.exec_run(["journalctl", "-u", GATEWAY_UNIT, "-n", "12", "--no-pager", "-o", "cat"])
            .output.decode(errors="replace")
            .rstrip()
        )
        state = (
            f"ActiveState={seen.get('ActiveState')} SubState={seen.get('SubState')} NRestarts={seen.get('NRestarts')}"
        )
        return [f"{gateway.container}: {GATEWAY_UNIT} {state}; its last log lines:\n" + _indent(journal)]

    def _wait_gateway_online(self, material: Material, agent_id: str) -> None:
        token = mint_token(material.jwt_secret, subject="viworks-lab", role="viewer", ttl_s=self.ready_timeout_s + 60)

        def registry_status() -> str:
            response = httpx.get(
                f"{self._backend_api()}/api/v1/agents/{agent_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=2,
            )
            if response.status_code == 404:
                return "not registered"
            return response.json().get("status", f"HTTP {response.status_code}")

        self._wait(
            registry_status, lambda status: status == "Online", f"gateway agent {agent_id} Online in the registry"
        )


def _version_in(output: str) -> str | None:
    found = _VERSION.search(output)
    return found.group(0) if found else None


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in (text or "(nothing logged)").splitlines())
