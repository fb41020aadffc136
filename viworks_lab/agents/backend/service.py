"""The backend agent itself: its state, start and stop, and the two servers wired from its parts
(``http_api``, ``pipeline``, ``agent_ws``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

try:  # Runtime-only dependencies: the lab image has them; the suite's venv (pure unit tests) need not.
    from aiohttp import web
except ImportError:  # pragma: no cover - only the pure helpers are usable without them
    web = None  # type: ignore[assignment]

from viworks_lab.agents.backend.agent_ws import AgentWebSocket
from viworks_lab.agents.backend.api_model import ApiError, decode_bearer
from viworks_lab.agents.backend.config import brief_error, url_password
from viworks_lab.agents.backend.http_api import HttpApi
from viworks_lab.agents.backend.pipeline import CommandPipeline
from viworks_lab.agents.backend.responses import json_error
from viworks_lab.agents.backend.sessions import AgentSession
from viworks_lab.agents.backend.store import (
    SHUTDOWN_STEP_TIMEOUT_S,
    CacheUnavailable,
    Database,
    DatabaseError,
    DatabaseUnavailable,
    TelemetryCache,
)

log = logging.getLogger("viworks.backend")


class BackendAgent(HttpApi, CommandPipeline, AgentWebSocket):
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
            api_runner,
            server["bind_address"],
            server["port"],
            shutdown_timeout=SHUTDOWN_STEP_TIMEOUT_S,
            reuse_address=True,
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
                await asyncio.wait_for(session.ws.close(code=1001, message=b"server shutdown"), SHUTDOWN_STEP_TIMEOUT_S)
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
            log.error(
                "command signing key %s unusable (%s): commands cannot be dispatched",
                self.signing_key_path,
                brief_error(exc),
            )
            return None
        if not isinstance(key, Ed25519PrivateKey):
            log.error(
                "command signing key %s is not an Ed25519 key: commands cannot be dispatched", self.signing_key_path
            )
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
                elif (
                    request.path.startswith("/api/")
                    and self.faults.get("api_trusts_identity_headers")
                    and request.headers.get(self.verify_header) == "SUCCESS"
                    and request.headers.get(self.cn_header)
                ):
                    request["claims"] = {"sub": request.headers[self.cn_header], "role": "operator"}
                elif request.path.startswith("/api/"):
                    try:
                        request["claims"] = decode_bearer(request.headers.get("Authorization"), self.jwt_secret)
                    except ApiError as exc:
                        log.info(
                            "api request refused status=401 method=%s path=%s: %s",
                            request.method,
                            request.path,
                            exc.message,
                        )
                        raise
                return await handler(request)
            except ApiError as exc:
                headers = {"WWW-Authenticate": 'Bearer realm="viworks"'} if exc.status == 401 else None
                return json_error(exc.status, exc.error, exc.message, headers)
            except DatabaseUnavailable as exc:
                return json_error(503, "database_unavailable", f"database unavailable: {exc}")
            except DatabaseError as exc:
                return json_error(503, "database_error", f"database error: {exc}")
            except CacheUnavailable as exc:
                return json_error(503, "redis_unavailable", f"redis unavailable: {exc}")
            except web.HTTPException as exc:
                if exc.status >= 400 and request.path.startswith("/api/"):
                    return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
                raise
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.path)
                return json_error(500, "internal_error", "internal server error")

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
