"""The command pipeline: dispatch to live sessions, timeouts, results recorded, as a part of ``BackendAgent``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from viworks_lab.agents.backend.api_model import ACTIVE_STATUSES, TERMINAL_STATUSES, CommandRequest, aggregate_status
from viworks_lab.agents.backend.store import DatabaseError
from viworks_verify.wire import commands, protocol

log = logging.getLogger("viworks.backend")


class CommandPipeline:
    """Commands from accepted to settled; ``BackendAgent`` holds the state they use."""

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
