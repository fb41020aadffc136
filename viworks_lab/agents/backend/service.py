"""The backend agent itself: the HTTP API, the agent WebSocket server, the registry and the command pipeline."""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
import uuid
from typing import Any, Mapping


from viworks_verify import commands, protocol

try:  # Runtime-only dependencies: the lab image has them; the suite's venv (pure unit tests) need not.
    from aiohttp import WSMsgType, web
except ImportError:  # pragma: no cover - only the pure helpers are usable without them
    web = WSMsgType = None  # type: ignore[assignment]

from viworks_lab.agents.backend.api_model import (
    ACTIVE_STATUSES, TERMINAL_STATUSES, ApiError, CommandRequest, agent_view, aggregate_status, as_text, command_view,
    decode_bearer, parse_command_request, require_role,
)
from viworks_lab.agents.backend.config import brief_error, url_password
from viworks_lab.agents.backend.sessions import AgentSession
from viworks_lab.agents.backend.store import (
    SHUTDOWN_STEP_TIMEOUT_S, CacheUnavailable, Database, DatabaseError, DatabaseUnavailable, TelemetryCache,
)

log = logging.getLogger("viworks.backend")

LAST_SEEN_WRITE_INTERVAL_S = 5.0


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def client_address(request: Any) -> str:
    """The agent's address: nginx's X-Real-IP / X-Forwarded-For, else the peer."""
    real = request.headers.get("X-Real-IP", "").strip()
    if real:
        return real
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    if forwarded:
        return forwarded
    return request.remote or ""


def _json_error(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> Any:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


# --------------------------------------------------------------------------- the backend agent


class BackendAgent:
    """Both servers, the in-memory session registry, and the command pipeline."""

    def __init__(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        self.config = config
        server, security = config["server"], config["security"]
        management, command = config["agent_management"], config["command"]
        self.version = server["version"]
        self.jwt_secret: str = security["jwt_secret"]
        self.cn_header: str = security["client_cn_header"]
        self.verify_header: str = security["client_verify_header"]
        self.heartbeat = float(management["heartbeat_interval"]) or None
        self.connection_timeout = float(management["connection_timeout"]) or None
        self.hello_timeout = float(management["hello_timeout"]) or 10.0
        self.ws_path: str = management["path"]
        self.faults: Mapping[str, Any] = config.get("lab_faults", {})
        self.default_timeout: int = command["default_timeout"]
        self.max_timeout: int = command["max_timeout"]
        self.dispatch_enabled: bool = command["dispatch_enabled"]
        self.signing_key_path: str = command["signing_key_path"]
        secrets = [
            url_password(config["database"]["url"]),
            url_password(config["redis"]["url"]),
            self.jwt_secret,
        ]
        self._secrets = [s for s in secrets if s and len(s) >= 3]
        self.db = Database(config["database"]["url"], on_ready=self._on_db_ready, scrub=self.scrub)
        self.cache = TelemetryCache(config["redis"]["url"], config["telemetry"]["ttl_seconds"], scrub=self.scrub)
        self.sessions: dict[str, AgentSession] = {}
        self.started_monotonic = time.monotonic()
        self._signing_key: Any = None
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._runners: list[Any] = []
        self._stopping = False
        self._total_agents: int | None = None
        self._first_db_sync = True

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start background (re)connection to Postgres and Redis, then bind both servers (OSError if not)."""
        if not self.jwt_secret:
            log.error("[security] jwt_secret is empty: every /api/v1 request will be refused with 401")
        self._load_signing_key()
        if not self.dispatch_enabled:
            log.warning("command dispatch is disabled by config ([command] dispatch_enabled = false)")
        self._background.append(asyncio.create_task(self.db.supervise(), name="db-supervisor"))
        self._background.append(asyncio.create_task(self.cache.supervise(), name="redis-supervisor"))
        log.info("database %s, redis %s (connecting in the background)", self.db.where, self.cache.where)

        server = self.config["server"]
        access_log = log if log.isEnabledFor(logging.DEBUG) else None
        api_runner = web.AppRunner(self.build_api_app(), handle_signals=False, access_log=access_log)
        await api_runner.setup()
        self._runners.append(api_runner)
        await web.TCPSite(
            api_runner, server["bind_address"], server["port"], shutdown_timeout=SHUTDOWN_STEP_TIMEOUT_S, reuse_address=True
        ).start()
        log.info("api listening on %s:%s", server["bind_address"], server["port"])

        management = self.config["agent_management"]
        if not management["enabled"]:
            log.warning("agent websocket server disabled by config ([agent_management] enabled = false)")
            return
        ws_runner = web.AppRunner(self.build_ws_app(), handle_signals=False, access_log=access_log)
        await ws_runner.setup()
        self._runners.append(ws_runner)
        await web.TCPSite(
            ws_runner,
            management["bind_address"],
            management["port"],
            shutdown_timeout=SHUTDOWN_STEP_TIMEOUT_S,
            reuse_address=True,
        ).start()
        log.info(
            "agent websocket listening on %s:%s%s (heartbeat %ss, connection timeout %ss)",
            management["bind_address"],
            management["port"],
            self.ws_path,
            management["heartbeat_interval"],
            management["connection_timeout"],
        )

    async def stop(self) -> None:
        """Close every agent session (1001 going away), stop the servers, release the pools."""
        self._stopping = True
        live = list(self.sessions.values())
        if live:
            log.info("closing %d agent session(s)", len(live))
        for session in live:
            session.close_reason = session.close_reason or "server shutdown"

        async def close(session: AgentSession) -> None:
            try:
                await asyncio.wait_for(
                    session.ws.close(code=1001, message=b"server shutdown"), SHUTDOWN_STEP_TIMEOUT_S
                )
            except Exception:
                pass

        await asyncio.gather(*(close(s) for s in live))
        for task in list(self._timers.values()):
            task.cancel()
        for runner in reversed(self._runners):
            try:
                await asyncio.wait_for(runner.cleanup(), SHUTDOWN_STEP_TIMEOUT_S * 2)
            except Exception as exc:
                log.debug("runner cleanup: %s", brief_error(exc))
        self._runners.clear()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, *self._timers.values(), return_exceptions=True)
        self._background.clear()
        await self.db.close()
        await self.cache.close()

    def _load_signing_key(self) -> Any:
        if self._signing_key is not None:
            return self._signing_key
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            with open(self.signing_key_path, "rb") as handle:
                key = serialization.load_pem_private_key(handle.read(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            log.error("command signing key %s unusable (%s): commands cannot be dispatched", self.signing_key_path, brief_error(exc))
            return None
        if not isinstance(key, Ed25519PrivateKey):
            log.error("command signing key %s is not an Ed25519 key: commands cannot be dispatched", self.signing_key_path)
            return None
        self._signing_key = key
        log.info("command signing key loaded from %s (Ed25519)", self.signing_key_path)
        return key

    async def _on_db_ready(self) -> None:
        """After (re)connecting: agents without a live session are Offline, live ones are Online,
        overdue commands are Timeout and the rest get their timers back."""
        live = [s for s in self.sessions.values() if not s.closed]
        live_ids = [s.agent_id for s in live]

        async def reconcile(conn: Any) -> Any:
            marked = await conn.fetch(
                "UPDATE agents SET status = 'Offline', connection_info = NULL, updated_at = now() "
                "WHERE status <> 'Offline' AND NOT (agent_id = ANY($1::text[])) RETURNING agent_id",
                live_ids,
            )
            expired = await conn.fetch(
                "UPDATE commands SET status = 'Timeout', updated_at = now() "
                "WHERE status IN ('Pending', 'Executing') "
                "AND created_at + make_interval(secs => timeout_s) <= now() RETURNING correlation_id"
            )
            active = await conn.fetch(
                "SELECT correlation_id, EXTRACT(EPOCH FROM (created_at + make_interval(secs => timeout_s) - now()))"
                " AS remaining FROM commands WHERE status IN ('Pending', 'Executing')"
            )
            return marked, expired, active

        marked, expired, active = await self.db.run(reconcile)
        if self._first_db_sync:
            log.info("startup: marked %d agent(s) Offline", len(marked))
            self._first_db_sync = False
        elif marked:
            log.info("database resync: marked %d agent(s) without a session Offline", len(marked))
        for row in expired:
            log.info("command timed out correlation_id=%s (found overdue)", row["correlation_id"])
        for row in active:
            self._schedule_timeout(row["correlation_id"], float(row["remaining"] or 0))
        for session in live:
            await self._upsert_agent(session)

    # ----------------------------------------------------------------- apps

    def build_api_app(self) -> Any:
        @web.middleware
        async def api_middleware(request: Any, handler: Any) -> Any:
            try:
                if request.path.startswith("/api/") and self.faults.get("api_open"):
                    request["claims"] = {"sub": "anonymous", "role": "admin"}
                elif (request.path.startswith("/api/") and self.faults.get("api_trusts_identity_headers")
                      and request.headers.get(self.verify_header) == "SUCCESS" and request.headers.get(self.cn_header)):
                    request["claims"] = {"sub": request.headers[self.cn_header], "role": "operator"}
                elif request.path.startswith("/api/"):
                    try:
                        request["claims"] = decode_bearer(request.headers.get("Authorization"), self.jwt_secret)
                    except ApiError as exc:
                        log.info("api request refused status=401 method=%s path=%s: %s", request.method, request.path, exc.message)
                        raise
                return await handler(request)
            except ApiError as exc:
                headers = {"WWW-Authenticate": 'Bearer realm="viworks"'} if exc.status == 401 else None
                return _json_error(exc.status, exc.error, exc.message, headers)
            except DatabaseUnavailable as exc:
                return _json_error(503, "database_unavailable", f"database unavailable: {exc}")
            except DatabaseError as exc:
                return _json_error(503, "database_error", f"database error: {exc}")
            except CacheUnavailable as exc:
                return _json_error(503, "redis_unavailable", f"redis unavailable: {exc}")
            except web.HTTPException as exc:
                if exc.status >= 400 and request.path.startswith("/api/"):
                    return _json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
                raise
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.path)
                return _json_error(500, "internal_error", "internal server error")

        app = web.Application(middlewares=[api_middleware])
        app.router.add_get("/health", self.handle_health)
        app.router.add_get("/api/v1/agents", self.handle_list_agents)
        app.router.add_get("/api/v1/agents/{agent_id}", self.handle_get_agent)
        app.router.add_delete("/api/v1/agents/{agent_id}", self.handle_delete_agent)
        app.router.add_get("/api/v1/agents/{agent_id}/telemetry", self.handle_get_telemetry)
        app.router.add_post("/api/v1/commands", self.handle_post_command)
        app.router.add_get("/api/v1/commands/{correlation_id}", self.handle_get_command)
        app.router.add_get("/{tail:.*}", self.handle_service_info)
        return app

    def build_ws_app(self) -> Any:
        app = web.Application()
        app.router.add_get(self.ws_path, self.handle_agent_ws)
        return app

    # ----------------------------------------------------------------- HTTP API

    async def handle_service_info(self, request: Any) -> Any:
        """Any other GET outside /api/: a plain JSON page (what a misrouted /ws/ request sees on 8080)."""
        if request.path.startswith("/api/"):
            raise ApiError(404, "not_found", f"no such endpoint: {request.path}")
        return web.json_response(
            {
                "service": "viworks-backend-agent",
                "version": self.version,
                "endpoints": ["/health", "/api/v1/agents", "/api/v1/commands"],
            }
        )

    async def handle_health(self, request: Any) -> Any:
        if self.faults.get("health_delay_ms"):
            await asyncio.sleep(self.faults["health_delay_ms"] / 1000)  # the lab's slow-health fault, not a wait
        (db_doc, counts), redis_doc = await asyncio.gather(self.db.probe(), self.cache.probe())
        online = sum(1 for s in self.sessions.values() if not s.closed)
        if counts is not None:
            self._total_agents = counts[0]
        total = self._total_agents if self._total_agents is not None else online
        healthy = db_doc["status"] == "healthy" and redis_doc["status"] == "healthy"
        body = {
            "status": "healthy" if healthy else "degraded",
            "timestamp": protocol.rfc3339(),
            "version": self.version,
            "uptime": int(time.monotonic() - self.started_monotonic),
            "services": {
                "database": db_doc,
                "redis": redis_doc,
                "agent_registry": {"status": "healthy", "total_agents": max(total, online), "online_agents": online},
            },
        }
        return web.json_response(body, status=200 if healthy else 503)

    def _live(self, agent_id: str) -> AgentSession | None:
        session = self.sessions.get(agent_id)
        return session if session is not None and not session.closed else None

    async def handle_list_agents(self, request: Any) -> Any:
        require_role(request["claims"], "viewer")
        if self.faults.get("registry_hidden"):
            return web.json_response({"agents": [], "total": 0})
        rows = await self.db.run(lambda c: c.fetch("SELECT * FROM agents ORDER BY agent_id"))
        agents = [agent_view(row, self._live(row["agent_id"])) for row in rows]
        known = {row["agent_id"] for row in rows}
        agents += [agent_view(None, s) for s in self.sessions.values() if not s.closed and s.agent_id not in known]
        agents.sort(key=lambda a: a["agent_id"])
        return web.json_response({"agents": agents, "total": len(agents)})

    async def handle_get_agent(self, request: Any) -> Any:
        require_role(request["claims"], "viewer")
        agent_id = request.match_info["agent_id"]
        if self.faults.get("registry_hidden"):
            raise ApiError(404, "not_found", f"agent {agent_id} not found")
        session = self._live(agent_id)
        try:
            row = await self.db.run(lambda c: c.fetchrow("SELECT * FROM agents WHERE agent_id = $1", agent_id))
        except DatabaseError:
            if session is None:
                raise
            row = None  # the live session alone answers
        if row is None and session is None:
            raise ApiError(404, "not_found", f"agent {agent_id} not found")
        return web.json_response(agent_view(row, session))

    async def handle_get_telemetry(self, request: Any) -> Any:
        require_role(request["claims"], "viewer")
        agent_id = request.match_info["agent_id"]
        latest = await self.cache.latest(agent_id)
        if latest is None:
            raise ApiError(404, "not_found", f"no telemetry stored for agent {agent_id}")
        return web.json_response(latest)

    async def handle_delete_agent(self, request: Any) -> Any:
        require_role(request["claims"], "admin")
        agent_id = request.match_info["agent_id"]
        if self._live(agent_id) is not None:
            raise ApiError(409, "agent_online", f"agent {agent_id} has a live session; it must be Offline to delete")
        deleted = await self.db.run(
            lambda c: c.fetchval("DELETE FROM agents WHERE agent_id = $1 RETURNING agent_id", agent_id)
        )
        if deleted is None:
            raise ApiError(404, "not_found", f"agent {agent_id} not found")
        try:
            await self.cache.forget(agent_id)
        except CacheUnavailable as exc:
            log.warning("agent %s deleted but its telemetry could not be removed: %s", agent_id, exc)
        log.info("agent deleted agent_id=%s by=%s", agent_id, request["claims"].get("sub"))
        return web.Response(status=204)

    async def handle_post_command(self, request: Any) -> Any:
        claims = request["claims"]
        require_role(claims, "operator")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"body is not JSON: {exc}") from exc
        req = parse_command_request(body, default_timeout=self.default_timeout, max_timeout=self.max_timeout)
        correlation_id = str(uuid.uuid4())
        actor = {"id": claims["sub"], "role": claims["role"]}

        async def insert(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO commands (correlation_id, verb, args, agent_targets, status, timeout_s, actor) "
                "VALUES ($1, $2, $3, $4, 'Pending', $5, $6) ON CONFLICT (correlation_id) DO NOTHING",
                correlation_id,
                req.verb,
                req.args,
                req.agent_targets,
                req.timeout,
                actor,
            )

        await self.db.run(insert)
        log.info(
            "command submitted correlation_id=%s verb=%s targets=%s timeout=%ss actor=%s",
            correlation_id,
            req.verb,
            ",".join(req.agent_targets),
            req.timeout,
            actor["id"],
        )
        self._schedule_timeout(correlation_id, req.timeout)
        if self.dispatch_enabled:
            sent = await self._dispatch(correlation_id, req, actor)
            if sent:
                try:
                    await self.db.run(
                        lambda c: c.execute(
                            "UPDATE commands SET status = 'Executing', dispatched_to = $2, updated_at = now() "
                            "WHERE correlation_id = $1 AND status = 'Pending'",
                            correlation_id,
                            sent,
                        )
                    )
                except DatabaseError as exc:
                    log.warning("command %s dispatched but its status was not updated: %s", correlation_id, exc)
        else:
            log.warning("command %s accepted but not dispatched: dispatch_enabled = false", correlation_id)
        return web.json_response({"correlation_id": correlation_id, "status": "submitted"}, status=201)

    async def _dispatch(self, correlation_id: str, req: CommandRequest, actor: Mapping[str, str]) -> list[str]:
        """Sign the command once and send it to every target with a live session; the ids it reached."""
        live = {t: self._live(t) for t in req.agent_targets}
        absent = [t for t, s in live.items() if s is None]
        if absent:
            log.info("command %s: target(s) not connected, not sent: %s", correlation_id, ",".join(absent))
        if not any(live.values()):
            return []
        key = self._load_signing_key()
        if key is None:
            log.error("command %s not dispatched: no usable signing key", correlation_id)
            return []
        claims = commands.command_claims(
            req.verb,
            req.args,
            req.agent_targets,
            actor_id=actor["id"],
            actor_role=actor["role"],
            ttl_s=req.timeout,
            corr_id=correlation_id,
        )
        frame = protocol.make_frame(protocol.COMMAND, commands.sign_command(claims, key), correlation_id=correlation_id)
        sent = []
        for target, session in live.items():
            if session is not None and await session.send(frame):
                sent.append(target)
                log.info(
                    "command dispatched correlation_id=%s agent_id=%s session_id=%s verb=%s",
                    correlation_id,
                    target,
                    session.session_id,
                    req.verb,
                )
            elif session is not None:
                log.warning("command %s could not be sent to agent_id=%s (session closing)", correlation_id, target)
        return sent

    async def handle_get_command(self, request: Any) -> Any:
        require_role(request["claims"], "viewer")
        correlation_id = request.match_info["correlation_id"]

        async def fetch(conn: Any) -> Any:
            expired = await conn.fetchval(
                "UPDATE commands SET status = 'Timeout', updated_at = now() WHERE correlation_id = $1 "
                "AND status IN ('Pending', 'Executing') AND created_at + make_interval(secs => timeout_s) <= now() "
                "RETURNING correlation_id",
                correlation_id,
            )
            return expired, await conn.fetchrow("SELECT * FROM commands WHERE correlation_id = $1", correlation_id)

        expired, row = await self.db.run(fetch)
        if expired:
            log.info("command timed out correlation_id=%s", correlation_id)
        if row is None:
            raise ApiError(404, "not_found", f"command {correlation_id} not found")
        return web.json_response(command_view(row))

    # ----------------------------------------------------------------- command timeouts & results

    def _schedule_timeout(self, correlation_id: str, delay: float) -> None:
        if correlation_id in self._timers or self._stopping:
            return
        task = asyncio.create_task(self._expire_later(correlation_id, delay), name=f"timeout-{correlation_id}")
        self._timers[correlation_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._timers.get(correlation_id) is done:
                del self._timers[correlation_id]

        task.add_done_callback(forget)

    def _cancel_timeout(self, correlation_id: str) -> None:
        task = self._timers.pop(correlation_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _expire_later(self, correlation_id: str, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))
        while True:
            try:
                status = await self.db.run(
                    lambda c: c.execute(
                        "UPDATE commands SET status = 'Timeout', updated_at = now() "
                        "WHERE correlation_id = $1 AND status IN ('Pending', 'Executing')",
                        correlation_id,
                    )
                )
            except DatabaseError:
                await asyncio.sleep(2.0)  # until Postgres is back; GET also expires lazily
                continue
            if status.endswith(" 1"):
                log.info("command timed out correlation_id=%s", correlation_id)
            return

    async def record_result(self, agent_id: str, payload: Mapping[str, Any]) -> str:
        """Store an agent's RESULT; returns "ok", "unknown" or "not_targeted"."""
        correlation_id = payload["corr_id"]

        async def op(conn: Any) -> Any:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "SELECT agent_targets, results, status FROM commands WHERE correlation_id = $1 FOR UPDATE",
                    correlation_id,
                )
                if row is None:
                    return "unknown", None, None
                targets = list(row["agent_targets"] or [])
                if agent_id not in targets:
                    return "not_targeted", None, None
                results = dict(row["results"] or {})
                results.setdefault(agent_id, dict(payload))  # a resent RESULT keeps the first one
                old = row["status"]
                new = (aggregate_status(targets, results) or old) if old in ACTIVE_STATUSES else old
                await conn.execute(
                    "UPDATE commands SET results = $2, status = $3, updated_at = now() WHERE correlation_id = $1",
                    correlation_id,
                    results,
                    new,
                )
                return "ok", old, new

        outcome, old, new = await self.db.run(op)
        if outcome == "ok":
            log.info(
                "command result correlation_id=%s agent_id=%s status=%s command_status=%s",
                correlation_id,
                agent_id,
                payload.get("status"),
                new,
            )
            if new in TERMINAL_STATUSES and old != new:
                self._cancel_timeout(correlation_id)
        return outcome

    # ----------------------------------------------------------------- agent WebSocket

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
            return _json_error(403, "forbidden", "a verified client certificate is required")
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, autoping=True)
        if not ws.can_prepare(request).ok:
            return _json_error(426, "upgrade_required", f"{self.ws_path} needs a WebSocket upgrade", {"Upgrade": "websocket"})
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
        now = _now()
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
        now = _now()
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
                session.last_seen = _now()
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


