"""The HTTP API (``/health``, ``/api/v1/...``): the handlers, as a part of ``BackendAgent``."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from viworks_verify.wire import protocol

try:  # Runtime-only dependencies: the lab image has them; the suite's venv (pure unit tests) need not.
    from aiohttp import web
except ImportError:  # pragma: no cover - only the pure helpers are usable without them
    web = None  # type: ignore[assignment]

from viworks_lab.agents.backend.api_model import ApiError, agent_view, command_view, parse_command_request, require_role
from viworks_lab.agents.backend.sessions import AgentSession
from viworks_lab.agents.backend.store import CacheUnavailable, DatabaseError

log = logging.getLogger("viworks.backend")


class HttpApi:
    """The API's handlers; ``BackendAgent`` holds the state they use."""

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
