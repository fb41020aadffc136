"""The agent WebSocket server: the upgrade, hello/welcome, the session loop and its frames, as a part
of ``BackendAgent``."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from viworks_verify.wire import protocol, session_protocol

try:  # Runtime-only dependencies: the lab image has them; the suite's venv (pure unit tests) need not.
    from aiohttp import WSMsgType, web
except ImportError:  # pragma: no cover - only the pure helpers are usable without them
    web = WSMsgType = None  # type: ignore[assignment]

from viworks_lab.agents.backend.api_model import as_text
from viworks_lab.agents.backend.config import brief_error
from viworks_lab.agents.backend.responses import client_address, json_error, utc_now
from viworks_lab.agents.backend.sessions import AgentSession
from viworks_lab.agents.backend.store import SHUTDOWN_STEP_TIMEOUT_S, CacheUnavailable, DatabaseError

log = logging.getLogger("viworks.backend")

LAST_SEEN_WRITE_INTERVAL_S = 5.0


class AgentWebSocket:
    """Agent sessions from upgrade to close; ``BackendAgent`` holds the state they use."""

    async def handle_agent_ws(self, request: Any) -> Any:
        remote = client_address(request)
        client_cn = request.headers.get(self.cn_header, "").strip()
        verified = request.headers.get(self.verify_header, "").strip()
        if (verified != "SUCCESS" or not client_cn) and not self.faults.get("client_certificate_unchecked"):
            log.warning(
                "agent websocket refused remote=%s: no verified client certificate (%s=%r, %s %s)",
                remote,
                self.verify_header,
                verified[:64],
                self.cn_header,
                "present" if client_cn else "missing",
            )
            return json_error(403, "forbidden", "a verified client certificate is required")
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, autoping=True)
        if not ws.can_prepare(request).ok:
            return json_error(
                426, "upgrade_required", f"{self.ws_path} needs a WebSocket upgrade", {"Upgrade": "websocket"}
            )
        await ws.prepare(request)
        session: AgentSession | None = None
        reason = "connection closed"
        try:
            session = await self._handshake(ws, client_cn, remote)
            if session is not None:
                reason = await self._session_loop(session)
        except asyncio.CancelledError:
            reason = "server shutdown"
            raise
        except Exception as exc:
            log.exception("agent websocket handler failed (agent_cn=%s)", client_cn)
            reason = f"internal error: {brief_error(exc)}"
        finally:
            if session is not None:
                await self._end_session(session, session.close_reason or reason)
            if not ws.closed:
                try:
                    await asyncio.wait_for(ws.close(), SHUTDOWN_STEP_TIMEOUT_S)
                except Exception:
                    pass
        return ws

    async def _reject(
        self, ws: Any, wire: session_protocol.BackendProtocol, code: str, message: str, *, client_cn: str
    ) -> None:
        """Refuse the hello (or its absence) with the contract's error frame, then close (1008)."""
        log.warning("agent session rejected client_cn=%s code=%s: %s", client_cn, code, message)
        if wire.state is not session_protocol.State.CLOSED:
            wire.reject(code, message)
        try:
            for data in wire.data_to_send():
                await ws.send_str(data)
            await asyncio.wait_for(ws.close(code=1008, message=code.encode()), SHUTDOWN_STEP_TIMEOUT_S)
        except Exception:
            pass

    async def _handshake(self, ws: Any, client_cn: str, remote: str) -> AgentSession | None:
        wire = session_protocol.BackendProtocol()
        try:
            msg = await ws.receive(timeout=self.hello_timeout)
        except TimeoutError:
            await self._reject(
                ws, wire, "HELLO_TIMEOUT", f"no hello within {self.hello_timeout:g}s", client_cn=client_cn
            )
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            log.info("agent connection closed before hello client_cn=%s remote=%s", client_cn, remote)
            return None
        wire.receive(msg.data)
        event = wire.events_received()[0]
        if isinstance(event, session_protocol.Rejected):
            await self._reject(ws, wire, event.code, event.message, client_cn=client_cn)
            return None
        agent_id = event.agent_id
        if agent_id != client_cn and not self.faults.get("hello_unbound_to_cn"):
            await self._reject(
                ws,
                wire,
                "AGENT_ID_MISMATCH",
                f"hello agent_id {agent_id!r} does not match the client certificate CN {client_cn!r}",
                client_cn=client_cn,
            )
            return None
        if self._stopping:
            await self._reject(ws, wire, "SERVER_SHUTTING_DOWN", "the backend is shutting down", client_cn=client_cn)
            return None
        existing = self._live(agent_id)
        if existing is not None and not self.faults.get("duplicate_sessions"):
            await self._reject(
                ws,
                wire,
                "DUPLICATE_SESSION",
                f"agent {agent_id} already has a live session {existing.session_id}",
                client_cn=client_cn,
            )
            return None
        now = utc_now()
        session = AgentSession(
            agent_id=agent_id,
            session_id=str(uuid.uuid4()),
            ws=ws,
            wire=wire,
            client_cn=client_cn,
            remote_addr=remote,
            hello=event.hello,
            connected_at=now,
            last_seen=now,
        )
        self.sessions[agent_id] = session  # registered before any await: a racing duplicate is refused
        await self._upsert_agent(session)
        wire.accept(session.session_id)
        if not await session.flush():
            session.close_reason = "closed before welcome"
            return session
        log.info(
            "agent session established agent_id=%s session_id=%s site=%s version=%s remote=%s",
            agent_id,
            session.session_id,
            as_text(session.hello.get("site")),
            as_text(session.hello.get("agent_version")),
            remote,
        )
        return session

    async def _upsert_agent(self, session: AgentSession) -> None:
        hello = session.hello
        session.last_db_touch = time.monotonic()

        async def upsert(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO agents (agent_id, site, status, version, capabilities, feature_flags, connection_info,"
                " hello, last_seen, updated_at) VALUES ($1, $2, 'Online', $3, $4, $5, $6, $7, $8, now()) "
                "ON CONFLICT (agent_id) DO UPDATE SET site = EXCLUDED.site, status = 'Online',"
                " version = EXCLUDED.version, capabilities = EXCLUDED.capabilities,"
                " feature_flags = EXCLUDED.feature_flags, connection_info = EXCLUDED.connection_info,"
                " hello = EXCLUDED.hello, last_seen = EXCLUDED.last_seen, updated_at = now()",
                session.agent_id,
                as_text(hello.get("site")),
                as_text(hello.get("agent_version")),
                list(hello.get("supported_verbs") or []),
                dict(hello.get("feature_flags") or {}),
                session.connection_info(),
                hello,
                session.last_seen,
            )

        try:
            await self.db.run(upsert, timeout=3.0)
            session.db_synced = True
        except DatabaseError as exc:
            session.db_synced = False
            log.warning("agent %s is live but not recorded in the database yet: %s", session.agent_id, exc)

    async def _touch(self, session: AgentSession) -> None:
        """last_seen to the database, at most every few seconds per session."""
        if time.monotonic() - session.last_db_touch < LAST_SEEN_WRITE_INTERVAL_S:
            return
        if not session.db_synced:
            await self._upsert_agent(session)
            return
        session.last_db_touch = time.monotonic()
        try:
            await self.db.run(
                lambda c: c.execute(
                    "UPDATE agents SET last_seen = $2 WHERE agent_id = $1 AND connection_info->>'session_id' = $3",
                    session.agent_id,
                    session.last_seen,
                    session.session_id,
                ),
                timeout=3.0,
            )
        except DatabaseError:
            session.db_synced = False

    async def _end_session(self, session: AgentSession, reason: str) -> None:
        if self.sessions.get(session.agent_id) is session:
            del self.sessions[session.agent_id]
        session.close_reason = session.close_reason or reason
        log.info("agent session closed agent_id=%s reason=%s", session.agent_id, reason)
        now = utc_now()
        if session.db_synced:
            sql = (
                "UPDATE agents SET status = 'Offline', connection_info = NULL, last_seen = $2, updated_at = now() "
                "WHERE agent_id = $1 AND connection_info->>'session_id' = $3"
            )
            args: tuple[Any, ...] = (session.agent_id, now, session.session_id)
        elif self._live(session.agent_id) is None:
            sql = (
                "UPDATE agents SET status = 'Offline', connection_info = NULL, last_seen = $2, updated_at = now() "
                "WHERE agent_id = $1"
            )
            args = (session.agent_id, now)
        else:
            return
        try:
            await self.db.run(lambda c: c.execute(sql, *args), timeout=SHUTDOWN_STEP_TIMEOUT_S)
        except DatabaseError as exc:
            log.warning("agent %s offline but not recorded (the next database resync will): %s", session.agent_id, exc)

    async def _session_loop(self, session: AgentSession) -> str:
        ws = session.ws
        while True:
            if session.close_reason:
                return session.close_reason
            try:
                msg = await ws.receive(timeout=self.connection_timeout)
            except TimeoutError:
                return f"silent for {self.connection_timeout:g}s"
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                session.last_seen = utc_now()
                try:
                    await self._handle_frame(session, msg.data)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # nothing an agent sends may end the session or the server
                    log.exception("frame from agent_id=%s could not be handled", session.agent_id)
                    await session.send(protocol.error_frame("INTERNAL_ERROR", f"frame not handled: {brief_error(exc)}"))
                await self._touch(session)
            elif msg.type == WSMsgType.CLOSE:
                return f"closed by agent (code {msg.data}{', ' + msg.extra if msg.extra else ''})"
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                if session.close_reason:
                    return session.close_reason
                if isinstance(ws.exception(), asyncio.TimeoutError):
                    return "keepalive pong not received"
                return "connection lost"
            elif msg.type == WSMsgType.ERROR:
                return f"websocket error: {msg.data}"

    async def _handle_frame(self, session: AgentSession, data: str | bytes) -> None:
        session.wire.receive(data)
        for event in session.wire.events_received():
            if isinstance(event, session_protocol.TelemetryReceived):
                await self._on_telemetry(session, event)
            elif isinstance(event, session_protocol.ResultReceived):
                await self._on_result(session, event)
            elif isinstance(event, session_protocol.ErrorReceived):
                log.warning(
                    "agent_id=%s reported error code=%s message=%s correlation_id=%s",
                    session.agent_id,
                    event.code[:64],
                    event.message[:300],
                    event.correlation_id,
                )
            elif isinstance(event, session_protocol.Answered):
                log.info("frame from agent_id=%s answered %s: %s", session.agent_id, event.code, event.message[:500])
        await session.flush()

    async def _on_telemetry(self, session: AgentSession, event: session_protocol.TelemetryReceived) -> None:
        try:
            await self.cache.store(session.agent_id, event.payload, protocol.rfc3339(session.last_seen))
        except CacheUnavailable as exc:
            log.warning("telemetry from agent_id=%s not stored: redis unavailable (%s)", session.agent_id, exc)
            return
        log.debug("telemetry stored agent_id=%s", session.agent_id)

    async def _on_result(self, session: AgentSession, event: session_protocol.ResultReceived) -> None:
        corr_id = event.corr_id
        try:
            outcome = await self.record_result(session.agent_id, event.payload)
        except DatabaseError as exc:
            log.warning("RESULT %s from agent_id=%s not stored: %s", corr_id, session.agent_id, exc)
            await session.send(
                protocol.error_frame("BACKEND_UNAVAILABLE", "result not stored: database unavailable", corr_id)
            )
            return
        if outcome == "unknown":
            log.info("RESULT for unknown corr_id=%s from agent_id=%s", corr_id, session.agent_id)
            await session.send(protocol.error_frame("UNKNOWN_CORRELATION_ID", f"no command {corr_id}", corr_id))
        elif outcome == "not_targeted":
            await session.send(
                protocol.error_frame("NOT_TARGETED", f"command {corr_id} does not target {session.agent_id}", corr_id)
            )
