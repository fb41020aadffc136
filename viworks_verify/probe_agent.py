"""The suite's synthetic agent: a real wss session through the edge, with the suite's own identity.

Threaded (websockets' sync client) so a check can hold a session open while it calls the API.
Frames are built and parsed by ``protocol``; this module only moves them.
"""

from __future__ import annotations

import base64
import os
import platform
import time
import ssl
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from viworks_verify import protocol
from viworks_verify.commands import VERB_ARGS
from viworks_verify.edge import EdgeEndpoint


class UpgradeRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def open_session(
    endpoint: EdgeEndpoint,
    *,
    client_cert: Path | None,
    client_key: Path | None,
    path: str | None = None,
    timeout_s: float | None = None,
) -> ClientConnection:
    """Upgrade to a WebSocket at the agent path; UpgradeRefused with the HTTP status when refused."""
    context: ssl.SSLContext = endpoint.tls_context(client_cert=client_cert, client_key=client_key)
    timeout = timeout_s or endpoint.timeout_s
    try:
        return connect(
            endpoint.wss_url(path),
            sock=endpoint.open_tcp(),
            ssl=context,
            server_hostname=endpoint.edge.domain,
            open_timeout=timeout,
            close_timeout=2,
            ping_interval=15,
            ping_timeout=30,
        )
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace") if exc.response.body else ""
        raise UpgradeRefused(exc.response.status_code, body[:200]) from None


def upgrade_status(endpoint: EdgeEndpoint, *, client_cert: Path | None, client_key: Path | None) -> int:
    """The HTTP status the agent path answers to an upgrade request (101 when it upgrades).

    A plain HTTP exchange, for checks that only need the verdict: refusals arrive with
    ``Connection: close``, which a WebSocket client may report as a timeout instead of a status.
    """
    headers = {
        **endpoint.host_header,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    context = endpoint.tls_context(client_cert=client_cert, client_key=client_key)
    with httpx.Client(verify=context, timeout=endpoint.timeout_s) as http:
        with http.stream("GET", endpoint.https_url(endpoint.edge.ws_path), headers=headers,
                         extensions=endpoint.request_extensions) as response:
            return response.status_code


def hello_payload(agent_id: str, site: str = "suite") -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "site": site,
        "agent_version": "viworks-verify",
        "os": platform.system(),
        "kernel": platform.release(),
        "container_engine": "none",
        "supported_verbs": sorted(VERB_ARGS),
        "start_time": protocol.rfc3339(),
        "feature_flags": {"exec_enable": True, "inbound_http": False},
    }


def send_frame(session: ClientConnection, frame: protocol.Frame) -> None:
    session.send(frame.to_json())


def receive_frame(session: ClientConnection, timeout_s: float) -> protocol.Frame:
    """The next frame (TimeoutError when none arrives in time)."""
    return protocol.Frame.parse(session.recv(timeout=timeout_s))


def say_hello(session: ClientConnection, agent_id: str, timeout_s: float) -> protocol.Frame:
    """Send hello and return the backend's answer (``welcome`` or ``error``)."""
    send_frame(session, protocol.make_frame(protocol.HELLO, hello_payload(agent_id)))
    return receive_frame(session, timeout_s)


class ProbeSession:
    """A welcomed session of the synthetic agent; closing it waits for nothing (see the fixture)."""

    def __init__(self, connection: ClientConnection, agent_id: str, welcome: protocol.Frame, upgrade_ms: float) -> None:
        self.connection = connection
        self.agent_id = agent_id
        self.welcome = welcome
        self.upgrade_ms = upgrade_ms

    def send(self, frame: protocol.Frame) -> None:
        send_frame(self.connection, frame)

    def next_frame(self, timeout_s: float, frame_type: str | None = None) -> protocol.Frame:
        """The next frame (of ``frame_type`` when given, others skipped) before the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {frame_type or 'frame'} within {timeout_s:.0f} s")
            frame = receive_frame(self.connection, remaining)
            if frame_type is None or frame.is_type(frame_type):
                return frame

    def close(self) -> None:
        self.connection.close()


def start_probe(
    endpoint: EdgeEndpoint, agent_id: str, *, client_cert: Path, client_key: Path, hello_agent_id: str | None = None
) -> tuple[ClientConnection, protocol.Frame, float]:
    """Upgrade and say hello; return the connection, the backend's answer and the upgrade time (ms)."""
    started = time.perf_counter()
    connection = open_session(endpoint, client_cert=client_cert, client_key=client_key)
    upgrade_ms = (time.perf_counter() - started) * 1000
    try:
        answer = say_hello(connection, hello_agent_id or agent_id, endpoint.timeout_s)
    except Exception:
        connection.close()
        raise
    return connection, answer, upgrade_ms
