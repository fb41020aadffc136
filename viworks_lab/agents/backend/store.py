"""Where the backend agent keeps things: agents and commands in Postgres, the latest telemetry in Redis.

Both survive their server going away and coming back: every operation has a timeout, and a lost
connection is retried in the background while /health reports the service unhealthy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

try:  # Runtime-only dependencies: the lab image has them; the suite's venv (pure unit tests) need not.
    import asyncpg
    import redis.asyncio as aioredis
    import redis.exceptions as redis_errors
except ImportError:  # pragma: no cover - only the pure helpers are usable without them
    asyncpg = aioredis = redis_errors = None  # type: ignore[assignment]

from viworks_lab.agents.backend.config import brief_error, redact_url

log = logging.getLogger("viworks.backend")

TELEMETRY_KEY = "viworks:telemetry:{agent_id}"
TELEMETRY_RECEIVED_KEY = "viworks:telemetry_received_at:{agent_id}"
DB_CONNECT_TIMEOUT_S = 2.0
DB_OP_TIMEOUT_S = 5.0
REDIS_SOCKET_TIMEOUT_S = 1.5
REDIS_OP_TIMEOUT_S = 3.0
RECONNECT_BACKOFF_S = (0.5, 5.0)  # first retry, cap
HEALTH_CHECK_TIMEOUT_S = 1.5  # each /health dependency check; they run concurrently
RECHECK_HEALTHY_S = 10.0
SHUTDOWN_STEP_TIMEOUT_S = 2.0


# --------------------------------------------------------------------------- Postgres


SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS agents (
    agent_id        TEXT PRIMARY KEY,
    site            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'Offline',
    version         TEXT NOT NULL DEFAULT '',
    capabilities    JSONB NOT NULL DEFAULT '[]'::jsonb,
    feature_flags   JSONB NOT NULL DEFAULT '{}'::jsonb,
    connection_info JSONB,
    hello           JSONB,
    last_seen       TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS commands (
    correlation_id  TEXT PRIMARY KEY,
    verb            TEXT NOT NULL,
    args            JSONB NOT NULL DEFAULT '{}'::jsonb,
    agent_targets   JSONB NOT NULL DEFAULT '[]'::jsonb,
    status          TEXT NOT NULL DEFAULT 'Pending',
    timeout_s       INTEGER NOT NULL,
    actor           JSONB NOT NULL DEFAULT '{}'::jsonb,
    results         JSONB NOT NULL DEFAULT '{}'::jsonb,
    dispatched_to   JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS commands_active_idx ON commands (status) WHERE status IN ('Pending', 'Executing');
"""


class DatabaseError(Exception):
    """A database operation failed (answered 503 by the API)."""


class DatabaseUnavailable(DatabaseError):
    """Postgres cannot be reached (not connected yet, down, restarting, timed out)."""


class CacheUnavailable(Exception):
    """Redis cannot be reached."""


def _connection_errors() -> tuple[type[BaseException], ...]:
    return (
        OSError,
        asyncio.TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.InsufficientResourcesError,
        asyncpg.InterfaceError,
    )


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Database:
    """An asyncpg pool that is (re)connected in the background; every operation is bounded."""

    def __init__(self, url: str, *, on_ready: Callable[[], Awaitable[None]], scrub: Callable[[str], str]) -> None:
        self.url = url
        self.where = redact_url(url)
        self.pool: Any = None
        self.ready = False  # schema ensured and registry resynchronised since the last outage
        self.last_error = "not connected yet"
        self._on_ready = on_ready
        self._scrub = scrub
        self._wake = asyncio.Event()
        self._announced_down = False

    def _error_text(self, exc: BaseException) -> str:
        return self._scrub(brief_error(exc))[:300]

    def mark_down(self, exc: BaseException) -> None:
        self.last_error = self._error_text(exc)
        if self.ready or not self._announced_down:
            log.warning("database unavailable (%s): %s; reconnecting in the background", self.where, self.last_error)
            self._announced_down = True
        self.ready = False
        self._wake.set()

    async def supervise(self) -> None:
        """Connect with backoff, create the schema, resynchronise, then re-check periodically."""
        delay = RECONNECT_BACKOFF_S[0]
        while True:
            try:
                if self.pool is None:
                    self.pool = await asyncpg.create_pool(
                        self.url,
                        min_size=1,
                        max_size=10,
                        timeout=DB_CONNECT_TIMEOUT_S,
                        command_timeout=DB_OP_TIMEOUT_S,
                        max_inactive_connection_lifetime=60.0,
                        init=_init_connection,
                    )
                if self.ready:
                    await asyncio.wait_for(self._execute("SELECT 1"), HEALTH_CHECK_TIMEOUT_S)
                else:
                    await asyncio.wait_for(self._execute(SCHEMA_SQL), DB_OP_TIMEOUT_S)
                    await self._on_ready()
                    was_down = self._announced_down
                    self.ready = True
                    self._announced_down = False
                    self.last_error = ""
                    log.info("database %s %s", "reconnected" if was_down else "connected", self.where)
                delay = RECONNECT_BACKOFF_S[0]
                wait = RECHECK_HEALTHY_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: keep serving, retry later
                if isinstance(exc, DatabaseError):
                    exc = exc.__cause__ or exc
                self.mark_down(exc)
                wait, delay = delay, min(delay * 2, RECONNECT_BACKOFF_S[1])
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
                await asyncio.sleep(min(wait, RECONNECT_BACKOFF_S[0]))  # woken by a failure: brief pause
            except TimeoutError:
                pass

    async def _execute(self, sql: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(sql)

    async def run(self, operation: Callable[[Any], Awaitable[Any]], *, timeout: float = DB_OP_TIMEOUT_S) -> Any:
        """``operation(connection)`` on a pooled connection; DatabaseError/DatabaseUnavailable on failure.

        A dropped connection (Postgres restarted) is retried once on a fresh one; missing tables
        (database recreated) are created again and the operation retried once.
        """
        if self.pool is None:
            raise DatabaseUnavailable(f"database not connected ({self.last_error})")
        for attempt in (1, 2):
            try:
                return await asyncio.wait_for(self._with_connection(operation), timeout)
            except asyncpg.UndefinedTableError as exc:
                if attempt == 2:
                    raise DatabaseError(self._error_text(exc)) from exc
                try:
                    await asyncio.wait_for(self._execute(SCHEMA_SQL), timeout)
                except Exception as schema_exc:
                    raise DatabaseError(self._error_text(schema_exc)) from schema_exc
            except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError) as exc:
                if attempt == 2:
                    self.mark_down(exc)
                    raise DatabaseUnavailable(self._error_text(exc)) from exc
                log.debug("database connection lost (%s); retrying once", brief_error(exc))
            except _connection_errors() as exc:
                self.mark_down(exc)
                raise DatabaseUnavailable(self._error_text(exc)) from exc
            except asyncpg.PostgresError as exc:
                log.error("database error: %s", self._error_text(exc))
                raise DatabaseError(self._error_text(exc)) from exc
        raise DatabaseError("unreachable")  # pragma: no cover

    async def _with_connection(self, operation: Callable[[Any], Awaitable[Any]]) -> Any:
        async with self.pool.acquire() as conn:
            return await operation(conn)

    async def probe(self) -> tuple[dict[str, Any], tuple[int, int] | None]:
        """Health: (status document, (total agents, online agents in the table) or None); ≤1.5 s."""
        if self.pool is None:
            return {"status": "unhealthy", "error": self.last_error or "not connected"}, None
        started = time.perf_counter()

        async def count(conn: Any) -> Any:
            return await conn.fetchrow(
                "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'Online') AS online FROM agents"
            )

        try:
            row = await asyncio.wait_for(self._with_connection(count), HEALTH_CHECK_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.mark_down(exc)
            return {"status": "unhealthy", "error": self._error_text(exc)}, None
        if not self.ready:
            self._wake.set()  # reachable again: let the supervisor resynchronise now, not at its next backoff
        latency = (time.perf_counter() - started) * 1000
        return {"status": "healthy", "latency_ms": round(latency, 2)}, (int(row["total"]), int(row["online"]))

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), SHUTDOWN_STEP_TIMEOUT_S)
        except Exception:
            pool.terminate()


# --------------------------------------------------------------------------- Redis


class TelemetryCache:
    """Latest telemetry per agent in Redis. Bounded by socket timeouts (commands are never cancelled
    mid-flight except by a last-resort guard, after which the pool is dropped: redis-py 4.3.4)."""

    def __init__(self, url: str, ttl_s: int, *, scrub: Callable[[str], str]) -> None:
        self.where = redact_url(url)
        self.ttl_s = ttl_s
        self.healthy = False
        self.last_error = "not connected yet"
        self._scrub = scrub
        self._announced_down = False
        self._wake = asyncio.Event()
        try:
            self.client: Any = aioredis.from_url(
                url,
                socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
                socket_timeout=REDIS_SOCKET_TIMEOUT_S,
                decode_responses=True,
            )
        except Exception as exc:  # a malformed URL: stay unhealthy, say why
            self.client = None
            self.last_error = self._scrub(brief_error(exc))[:300]
            log.error("redis url for %s is unusable: %s", self.where, self.last_error)

    def _down(self, exc: BaseException) -> None:
        self.last_error = self._scrub(brief_error(exc))[:300]
        if self.healthy or not self._announced_down:
            log.warning("redis unavailable (%s): %s; retrying in the background", self.where, self.last_error)
            self._announced_down = True
        self.healthy = False
        self._wake.set()

    def _up(self) -> None:
        if not self.healthy:
            log.info("redis %s %s", "reconnected" if self._announced_down else "connected", self.where)
            self._announced_down = False
            self.last_error = ""
        self.healthy = True

    async def call(self, operation: Callable[[Any], Awaitable[Any]], *, timeout: float = REDIS_OP_TIMEOUT_S) -> Any:
        if self.client is None:
            raise CacheUnavailable(self.last_error)
        try:
            result = await asyncio.wait_for(operation(self.client), timeout)
        except TimeoutError as exc:
            await self._drop_connections()
            self._down(exc)
            raise CacheUnavailable(self.last_error) from exc
        except (redis_errors.RedisError, OSError) as exc:
            self._down(exc)
            raise CacheUnavailable(self.last_error) from exc
        self._up()
        return result

    async def _drop_connections(self) -> None:
        try:
            await self.client.connection_pool.disconnect()
        except Exception:
            pass

    async def supervise(self) -> None:
        delay = RECONNECT_BACKOFF_S[0]
        while True:
            try:
                await self.call(lambda c: c.ping())
                delay, wait = RECONNECT_BACKOFF_S[0], RECHECK_HEALTHY_S
            except CacheUnavailable:
                wait, delay = delay, min(delay * 2, RECONNECT_BACKOFF_S[1])
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
                await asyncio.sleep(min(wait, RECONNECT_BACKOFF_S[0]))
            except TimeoutError:
                pass

    async def probe(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            await self.call(lambda c: c.ping(), timeout=HEALTH_CHECK_TIMEOUT_S + 0.5)
        except CacheUnavailable as exc:
            return {"status": "unhealthy", "error": str(exc) or "unavailable"}
        return {"status": "healthy", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    async def store(self, agent_id: str, payload: Any, received_at: str) -> None:
        data = json.dumps(payload, separators=(",", ":"))
        ex = self.ttl_s or None

        async def op(client: Any) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(TELEMETRY_KEY.format(agent_id=agent_id), data, ex=ex)
                pipe.set(TELEMETRY_RECEIVED_KEY.format(agent_id=agent_id), received_at, ex=ex)
                return await pipe.execute()

        await self.call(op)

    async def latest(self, agent_id: str) -> dict[str, Any] | None:
        keys = (TELEMETRY_KEY.format(agent_id=agent_id), TELEMETRY_RECEIVED_KEY.format(agent_id=agent_id))
        raw, received_at = await self.call(lambda c: c.mget(*keys))
        if raw is None:
            return None
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw
        if isinstance(payload, dict):
            return {**payload, "received_at": received_at}
        return {"payload": payload, "received_at": received_at}

    async def forget(self, agent_id: str) -> None:
        keys = (TELEMETRY_KEY.format(agent_id=agent_id), TELEMETRY_RECEIVED_KEY.format(agent_id=agent_id))
        await self.call(lambda c: c.delete(*keys))

    async def close(self) -> None:
        if self.client is None:
            return
        try:
            await asyncio.wait_for(self.client.close(), SHUTDOWN_STEP_TIMEOUT_S)
            await asyncio.wait_for(self.client.connection_pool.disconnect(), SHUTDOWN_STEP_TIMEOUT_S)
        except Exception:
            pass
