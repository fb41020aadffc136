"""An agent's live, welcomed WebSocket session on the backend: who it is, where from, and sending to it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import logging
from typing import Any

from viworks_lab.agents.backend.config import brief_error
from viworks_verify import protocol

log = logging.getLogger("viworks.backend")


@dataclasses.dataclass(eq=False)
class AgentSession:
    """One live, welcomed agent WebSocket."""

    agent_id: str
    session_id: str
    ws: Any
    client_cn: str
    remote_addr: str
    hello: dict[str, Any]
    connected_at: _dt.datetime
    last_seen: _dt.datetime
    last_db_touch: float = 0.0
    db_synced: bool = False
    close_reason: str | None = None
    send_lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def closed(self) -> bool:
        return bool(self.ws.closed) or self.close_reason is not None

    def connection_info(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "client_cn": self.client_cn,
            "remote_addr": self.remote_addr,
            "connected_at": protocol.rfc3339(self.connected_at),
        }

    async def send(self, frame: protocol.Frame) -> bool:
        if self.ws.closed:
            return False
        try:
            async with self.send_lock:
                await self.ws.send_str(frame.to_json())
            return True
        except (ConnectionError, RuntimeError, OSError) as exc:
            log.debug("send to agent_id=%s failed: %s", self.agent_id, brief_error(exc))
            return False
