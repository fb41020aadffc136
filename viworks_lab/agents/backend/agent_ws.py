"""The agent WebSocket server: the upgrade, hello/welcome, the session loop and its frames, as a part of ``BackendAgent``."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Mapping


from viworks_verify import protocol

try:  # Runtime-only dependencies: the lab image has them; the suite's venv (pure unit tests) need not.
    from aiohttp import WSMsgType, web
except ImportError:  # pragma: no cover - only the pure helpers are usable without them
    web = WSMsgType = None  # type: ignore[assignment]

from viworks_lab.agents.backend.api_model import as_text
from viworks_lab.agents.backend.config import brief_error
from viworks_lab.agents.backend.sessions import AgentSession
from viworks_lab.agents.backend.store import SHUTDOWN_STEP_TIMEOUT_S, CacheUnavailable, DatabaseError
from viworks_lab.agents.backend.responses import json_error, utc_now, client_address

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
            return json_error(426, "upgrade_required", f"{self.ws_path} needs a WebSocket upgrade", {"Upgrade": "websocket"})
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

    async def _reject(self, ws: Any, code: str, message: str, *, client_cn: str, correlation_id: str | None = None) -> None:
        log.warning("agent session rejected client_cn=%s code=%s: %s", client_cn, code, message)
        try:
            await ws.send_str(protocol.error_frame(code, message, correlation_id).to_json())
            await asyncio.wait_for(ws.close(code=1008, message=code.encode()), SHUTDOWN_STEP_TIMEOUT_S)
        except Exception:
            pass

    async def _handshake(self, ws: Any, client_cn: str, remote: str) -> AgentSession | None:
        try:
            msg = await ws.receive(timeout=self.hello_timeout)
        except asyncio.TimeoutError:
            await self._reject(ws, "HELLO_TIMEOUT", f"no hello within {self.hello_timeout:g}s", client_cn=client_cn)
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            log.info("agent connection closed before hello client_cn=%s remote=%s", client_cn, remote)
            return None
        correlation_id = None
        try:
            frame = protocol.Frame.parse(msg.data)
            correlation_id = frame.correlation_id
            if not frame.is_type(protocol.HELLO):
                raise protocol.ProtocolError(f"first frame must be hello, got {frame.type!r}")
            agent_id = protocol.validate_hello(frame.payload)
        except protocol.ProtocolError as exc:
            await self._reject(ws, "INVALID_HELLO", str(exc), client_cn=client_cn, correlation_id=correlation_id)
            return None
        if agent_id != client_cn and not self.faults.get("hello_unbound_to_cn"):
            await self._reject(
                ws,
                "AGENT_ID_MISMATCH",
                f"hello agent_id {agent_id!r} does not match the client certificate CN {client_cn!r}",
                client_cn=client_cn,
                correlation_id=correlation_id,
            )
            return None
        if self._stopping:
            await self._reject(ws, "SERVER_SHUTTING_DOWN", "the backend is shutting down", client_cn=client_cn)
            return None
        existing = self._live(agent_id)
        if existing is not None and not self.faults.get("duplicate_sessions"):
            await self._reject(
                ws,
                "DUPLICATE_SESSION",
                f"agent {agent_id} already has a live session {existing.session_id}",
                client_cn=client_cn,
                correlation_id=correlation_id,
            )
            return None
        now = utc_now()
        session = AgentSession(
            agent_id=agent_id,
            session_id=str(uuid.uuid4()),
            ws=ws,
            client_cn=client_cn,
            remote_addr=remote,
            hello=dict(frame.payload),
            connected_at=now,
            last_seen=now,
        )
        self.sessions[agent_id] = session  # registered before any await: a racing duplicate is refused
        await self._upsert_agent(session)
        welcome = protocol.make_frame(
            protocol.WELCOME, {"agent_id": agent_id, "session_id": session.session_id}, correlation_id=correlation_id
        )
        if not await session.send(welcome):
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
            except asyncio.TimeoutError:
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
        try:
            frame = protocol.Frame.parse(data)
        except protocol.ProtocolError as exc:
            log.info("malformed frame from agent_id=%s: %s", session.agent_id, exc)
            await session.send(protocol.error_frame(exc.code, str(exc)))
            return
        if frame.is_type(protocol.TELEMETRY):
            await self._on_telemetry(session, frame)
        elif frame.is_type(protocol.RESULT):
            await self._on_result(session, frame)
        elif frame.is_type(protocol.ERROR):
            payload = frame.payload if isinstance(frame.payload, Mapping) else {}
            log.warning(
                "agent_id=%s reported error code=%s message=%s correlation_id=%s",
                session.agent_id,
                str(payload.get("code"))[:64],
                str(payload.get("message"))[:300],
                frame.correlation_id,
            )
        elif frame.is_type(protocol.HELLO):
            await session.send(
                protocol.error_frame("UNEXPECTED_FRAME", "hello was already received on this session", frame.correlation_id)
            )
        elif frame.is_type(protocol.WELCOME) or frame.is_type(protocol.COMMAND):
            await session.send(
                protocol.error_frame("UNEXPECTED_FRAME", f"{frame.type} frames are sent by the backend, not to it", frame.correlation_id)
            )
        else:
            log.info("unknown frame type %r from agent_id=%s", frame.type[:64], session.agent_id)
            await session.send(
                protocol.error_frame("UNKNOWN_TYPE", f"unknown frame type {frame.type[:64]!r}", frame.correlation_id)
            )

    async def _on_telemetry(self, session: AgentSession, frame: protocol.Frame) -> None:
        payload = frame.payload
        if not isinstance(payload, Mapping):
            await session.send(protocol.error_frame("INVALID_PAYLOAD", "telemetry payload must be a JSON object"))
            return
        if "agent_id" in payload and payload["agent_id"] != session.agent_id:
            await session.send(
                protocol.error_frame(
                    "AGENT_ID_MISMATCH", f"telemetry agent_id {payload['agent_id']!r} is not this session's {session.agent_id!r}"
                )
            )
            return
        problems = protocol.telemetry_problems(payload)
        if problems:
            log.warning("telemetry from agent_id=%s breaks the contract: %s", session.agent_id, "; ".join(problems)[:500])
            await session.send(protocol.error_frame("INVALID_TELEMETRY", "; ".join(problems)[:1000]))
        try:
            await self.cache.store(session.agent_id, payload, protocol.rfc3339(session.last_seen))
        except CacheUnavailable as exc:
            log.warning("telemetry from agent_id=%s not stored: redis unavailable (%s)", session.agent_id, exc)
            return
        log.debug("telemetry stored agent_id=%s", session.agent_id)

    async def _on_result(self, session: AgentSession, frame: protocol.Frame) -> None:
        payload = frame.payload
        problems = protocol.result_problems(payload)
        if not problems and not isinstance(payload["corr_id"], str):
            problems = ["corr_id is not a string"]
        if problems:
            log.info("invalid RESULT from agent_id=%s: %s", session.agent_id, "; ".join(problems))
            await session.send(protocol.error_frame("INVALID_RESULT", "; ".join(problems)[:1000], frame.correlation_id))
            return
        corr_id = payload["corr_id"]
        if frame.correlation_id is not None and frame.correlation_id != corr_id:
            await session.send(
                protocol.error_frame("INVALID_RESULT", "frame correlation_id differs from the payload's corr_id", corr_id)
            )
            return
        if payload["agent_id"] != session.agent_id:
            await session.send(
                protocol.error_frame(
                    "AGENT_ID_MISMATCH", f"RESULT agent_id {payload['agent_id']!r} is not this session's {session.agent_id!r}", corr_id
                )
            )
            return
        try:
            outcome = await self.record_result(session.agent_id, payload)
        except DatabaseError as exc:
            log.warning("RESULT %s from agent_id=%s not stored: %s", corr_id, session.agent_id, exc)
            await session.send(protocol.error_frame("BACKEND_UNAVAILABLE", "result not stored: database unavailable", corr_id))
            return
        if outcome == "unknown":
            log.info("RESULT for unknown corr_id=%s from agent_id=%s", corr_id, session.agent_id)
            await session.send(protocol.error_frame("UNKNOWN_CORRELATION_ID", f"no command {corr_id}", corr_id))
        elif outcome == "not_targeted":
            await session.send(
                protocol.error_frame("NOT_TARGETED", f"command {corr_id} does not target {session.agent_id}", corr_id)
            )
