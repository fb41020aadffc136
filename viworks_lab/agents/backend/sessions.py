"""An agent's live, welcomed WebSocket session on the backend: who it is, where from, and sending to it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import logging
from typing import Any

from viworks_lab.agents.backend.config import brief_error
from viworks_verify.wire import protocol, session_protocol

log = logging.getLogger("viworks.backend")


@dataclasses.dataclass(eq=False)
class AgentSession:
    """One live, welcomed agent WebSocket."""

    agent_id: str
    session_id: str
    ws: Any
    wire: session_protocol.BackendProtocol  # the session's state on the wire, and what it has to send
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
        """Send a frame (and anything the protocol queued before it); False when the socket is gone."""
        self.wire.send(frame)
        return await self.flush()

    async def flush(self) -> bool:
        """Send what the session protocol has queued, in order; False when the socket is gone."""
        if self.ws.closed:
            return False
        try:
            async with self.send_lock:
                for data in self.wire.data_to_send():
                    await self.ws.send_str(data)
            return True
        except (ConnectionError, RuntimeError, OSError) as exc:
            log.debug("send to agent_id=%s failed: %s", self.agent_id, brief_error(exc))
            return False
