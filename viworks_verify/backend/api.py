"""A typed client for the backend agent's HTTP API, through the TLS edge."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx

from viworks_verify.core.polling import poll_until
from viworks_verify.edge.endpoint import EdgeEndpoint

UNSETTLED = ("Pending", "Executing")  # a command's statuses before its RESULT (or its timeout) settles it


@dataclasses.dataclass(frozen=True)
class Timed:
    """A response and how long it took, in milliseconds (a figure worth recording)."""

    response: httpx.Response
    elapsed_ms: float

    @property
    def status(self) -> int:
        return self.response.status_code

    def json(self) -> Any:
        return self.response.json()


class BackendApi:
    """``/health`` and ``/api/v1`` on the agent domain. The token is sent only where one is given."""

    def __init__(self, endpoint: EdgeEndpoint, token: str | None = None) -> None:
        self.endpoint = endpoint
        self.token = token
        self._http = httpx.Client(
            verify=endpoint.tls_context(),
            timeout=httpx.Timeout(endpoint.timeout_s),
            headers=endpoint.host_header,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BackendApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, auth: bool = True, token: str | None = None, **kwargs: Any) -> Timed:
        headers = dict(kwargs.pop("headers", {}))
        bearer = token if token is not None else (self.token if auth else None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        started = time.perf_counter()
        response = self._http.request(
            method,
            self.endpoint.https_url(path),
            headers=headers,
            extensions=self.endpoint.request_extensions,
            **kwargs,
        )
        return Timed(response, (time.perf_counter() - started) * 1000)

    def health(self) -> Timed:
        return self.request("GET", "/health", auth=False)

    def agents(self, *, auth: bool = True, token: str | None = None) -> Timed:
        return self.request("GET", "/api/v1/agents", auth=auth, token=token)

    def agent(self, agent_id: str) -> Timed:
        return self.request("GET", f"/api/v1/agents/{agent_id}")

    def agent_info(self, agent_id: str) -> dict[str, Any]:
        """AgentInfo, or ``{"status": "not registered"}`` / ``{"status": "HTTP <code>"}``: always a status to report."""
        timed = self.agent(agent_id)
        if timed.status == 404:
            return {"status": "not registered"}
        if timed.status != 200:
            return {"status": f"HTTP {timed.status}"}
        return timed.json()

    def listed_agents(self) -> dict[str, dict[str, Any]] | None:
        """Every agent the registry lists, AgentInfo by agent id, in one request (None when the list
        cannot be read: ask each agent with ``agent_info``)."""
        listed = self.agents()
        if listed.status != 200:
            return None
        return {
            agent["agent_id"]: agent
            for agent in listed.json().get("agents") or []
            if isinstance(agent, dict) and "agent_id" in agent
        }

    def agent_telemetry(self, agent_id: str) -> Timed:
        return self.request("GET", f"/api/v1/agents/{agent_id}/telemetry")

    def forget_agent(self, agent_id: str) -> Timed:
        return self.request("DELETE", f"/api/v1/agents/{agent_id}")

    def submit_command(
        self, verb: str, args: dict[str, Any], agent_targets: list[str], timeout_s: int | None = None
    ) -> Timed:
        body: dict[str, Any] = {"verb": verb, "args": args, "agent_targets": agent_targets}
        if timeout_s is not None:
            body["timeout"] = timeout_s
        return self.request("POST", "/api/v1/commands", json=body)

    def command(self, correlation_id: str) -> Timed:
        return self.request("GET", f"/api/v1/commands/{correlation_id}")

    def wait_for_command(
        self, correlation_id: str, timeout_s: float, *, interval_s: float = 0.05, max_interval_s: float = 0.25
    ) -> dict[str, Any]:
        """The command once it has settled (no longer Pending or Executing): its JSON.

        ``NotReady`` at the deadline, its ``last`` the command as last seen (or the error that read it).
        """
        return poll_until(
            lambda: self.command(correlation_id).json(),
            lambda command: command.get("status") not in UNSETTLED,
            what=f"command {correlation_id}",
            timeout_s=timeout_s,
            interval_s=interval_s,
            max_interval_s=max_interval_s,
        ).value
