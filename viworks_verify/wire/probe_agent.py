"""The suite's synthetic agent: a real wss session through the edge, with the suite's own identity.

Checks are synchronous and hold a session open while they call the API, so sessions run on
websockets' asyncio client in one private event-loop thread, behind a small blocking API. (The
threaded client reads and writes one TLS socket from two threads; with TLS 1.3 session tickets
that intermittently loses the handshake response.) Frames are built by ``protocol`` and what each
received frame means is ``session_protocol.AgentProtocol``'s to say; this module only moves them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import platform
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from viworks_verify.edge.endpoint import EdgeEndpoint
from viworks_verify.wire import protocol
from viworks_verify.wire.commands import VERB_ARGS
from viworks_verify.wire.session_protocol import AgentProtocol, Malformed

T = TypeVar("T")


class UpgradeRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class _LoopThread:
    """One event loop in a daemon thread, shared by every session of the process."""

    _instance: _LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="viworks-probe-loop", daemon=True).start()

    @classmethod
    def run(cls, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, timeout_s), cls._instance.loop)
        return future.result(timeout_s + 1)


class Session:
    """A WebSocket session with blocking send/recv/close (``response``/``request``: the handshake)."""

    def __init__(self, connection: ClientConnection, timeout_s: float) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self.response = connection.response
        self.request = connection.request
        self.wire = AgentProtocol()  # the session protocol's agent end: what may be sent and received when

    def send(self, text: str) -> None:
        _LoopThread.run(self._connection.send(text), self._timeout_s)

    def recv(self, timeout: float) -> str | bytes:
        """The next message; TimeoutError when none arrives in time."""
        try:
            return _LoopThread.run(self._connection.recv(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no message within {timeout:.1f} s") from None

    def close(self) -> None:
        _LoopThread.run(self._connection.close(), self._timeout_s)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_session(
    endpoint: EdgeEndpoint,
    *,
    client_cert: Path | None,
    client_key: Path | None,
    path: str | None = None,
    timeout_s: float | None = None,
    headers: dict[str, str] | None = None,
) -> Session:
    """Upgrade to a WebSocket at the agent path; UpgradeRefused with the HTTP status when refused.

    ``headers``: more request headers (a forged identity header, for the checks that nginx ignores it).
    """
    timeout = timeout_s or endpoint.timeout_s

    async def upgrade() -> ClientConnection:
        return await connect(
            endpoint.wss_url(path),
            additional_headers=headers,
            ssl=endpoint.tls_context(client_cert=client_cert, client_key=client_key),
            server_hostname=endpoint.edge.domain,
            host=endpoint.address,  # the TCP address; TLS and Host still speak as the domain
            port=endpoint.edge.https_port,
            open_timeout=timeout,
            close_timeout=2,
            ping_interval=15,
            ping_timeout=30,
        )

    return _session(upgrade(), timeout)


def open_plain_session(url: str, *, headers: dict[str, str] | None = None, timeout_s: float) -> Session:
    """Upgrade to a WebSocket at a plain ``ws://`` URL (no TLS), as a client around the edge would.

    UpgradeRefused with the HTTP status when an HTTP server answers without upgrading; OSError or
    TimeoutError when nothing answers.
    """

    async def upgrade() -> ClientConnection:
        return await connect(
            url, additional_headers=headers, open_timeout=timeout_s, close_timeout=1, ping_interval=None
        )

    return _session(upgrade(), timeout_s)


def _session(upgrade: Coroutine[Any, Any, ClientConnection], timeout_s: float) -> Session:
    """Run the upgrade on the probe's loop; an HTTP answer that is not 101 is UpgradeRefused."""
    try:
        connection = _LoopThread.run(upgrade, timeout_s + 1)
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace") if exc.response.body else ""
        raise UpgradeRefused(exc.response.status_code, body[:200]) from None
    return Session(connection, timeout_s)


def upgrade_status(endpoint: EdgeEndpoint, *, client_cert: Path | None, client_key: Path | None) -> int:
    """The HTTP status the agent path answers to an upgrade request (101 when it upgrades).

    A plain HTTP exchange, for checks that only need the verdict.
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
        with http.stream(
            "GET", endpoint.https_url(endpoint.edge.ws_path), headers=headers, extensions=endpoint.request_extensions
        ) as response:
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


def say_hello(session: Session, agent_id: str, timeout_s: float) -> protocol.Frame:
    """Send hello and return the backend's answer: ``welcome``, ``error``, or whatever frame came instead.

    The session's protocol state (``session.wire``) then awaits the welcome, or holds it.
    """
    session.wire.send_hello(hello_payload(agent_id))
    for data in session.wire.data_to_send():
        session.send(data)
    return _next_frame(session, timeout_s, "an answer to hello")


def _next_frame(session: Session, timeout_s: float, what: str, frame_type: str | None = None) -> protocol.Frame:
    """The next frame the session protocol accepts (of ``frame_type`` when given), before the deadline.

    TimeoutError when none arrives in time; ProtocolError for a message that is not a frame.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {what} within {timeout_s:.0f} s")
        session.wire.receive(session.recv(remaining))
        for event in session.wire.events_received():
            if isinstance(event, Malformed):
                raise protocol.ProtocolError(event.problem)
            frame = getattr(event, "frame", None)
            if frame is not None and (frame_type is None or frame.is_type(frame_type)):
                return frame


class ProbeSession:
    """A welcomed session of the synthetic agent."""

    def __init__(self, session: Session, agent_id: str, welcome: protocol.Frame, upgrade_ms: float) -> None:
        self.session = session
        self.agent_id = agent_id
        self.welcome = welcome
        self.upgrade_ms = upgrade_ms

    def send(self, frame: protocol.Frame) -> None:
        self.session.wire.send(frame)
        for data in self.session.wire.data_to_send():
            self.session.send(data)

    def next_frame(self, timeout_s: float, frame_type: str | None = None) -> protocol.Frame:
        """The next frame (of ``frame_type`` when given, others skipped) before the deadline."""
        return _next_frame(self.session, timeout_s, frame_type or "frame", frame_type)

    def close(self) -> None:
        self.session.close()


def start_probe(
    endpoint: EdgeEndpoint,
    agent_id: str,
    *,
    client_cert: Path,
    client_key: Path,
    hello_agent_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[Session, protocol.Frame, float]:
    """Upgrade (with ``headers``, when given) and say hello; return the session, the backend's answer and the
    upgrade time (ms)."""
    started = time.perf_counter()
    session = open_session(endpoint, client_cert=client_cert, client_key=client_key, headers=headers)
    upgrade_ms = (time.perf_counter() - started) * 1000
    try:
        answer = say_hello(session, hello_agent_id or agent_id, endpoint.timeout_s)
    except Exception:
        session.close()
        raise
    return session, answer, upgrade_ms
