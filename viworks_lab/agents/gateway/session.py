"""The agent: one outbound wss session at a time (hello, welcome, heartbeat, telemetry, commands),
reconnecting with backoff."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import time
from typing import Any

import websockets
import websockets.exceptions

from viworks_lab.agents.gateway.config import CLOSE_TIMEOUT_S, OPEN_TIMEOUT_S, WELCOME_TIMEOUT_S, Config
from viworks_lab.agents.gateway.executor import CommandExecutor
from viworks_lab.agents.gateway.files import build_tls_context, file_problems, required_paths
from viworks_lab.agents.gateway.readings import HostInfo
from viworks_lab.agents.gateway.redaction import Backoff
from viworks_verify.pki import pins
from viworks_verify.wire import commands, protocol, session_protocol

log = logging.getLogger("viworks-gateway-agent")


def peer_certificate_der(ws: Any) -> bytes | None:
    transport = getattr(ws, "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def describe_error(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SessionGone(Exception):
    """The session a frame was meant for has ended."""


class GatewayAgent:
    def __init__(self, config: Config, signing_key: Any, start_time: float) -> None:
        self.config = config
        self.host = HostInfo(config, start_time)
        gate = commands.CommandGate(config.agent_id, exec_enabled=config.exec_enabled, signing_key=signing_key)
        self.executor = CommandExecutor(config, gate, self.host)
        self.backoff = Backoff()
        self.attempts = 0
        self.session_id: str | None = None
        self._ws: Any = None
        self._stop = asyncio.Event()
        self._hup = asyncio.Event()
        self._command_tasks: set[asyncio.Task] = set()
        self._send_lock = asyncio.Lock()
        self._protocol = session_protocol.AgentProtocol()
        self._session_ws: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        http_server = await self._start_inbound_http() if self.config.inbound_http else None
        try:
            while not self._stop.is_set():
                attempt = asyncio.create_task(self._attempt())
                interrupted = await self._wait_or_signal(attempt)
                if self._stop.is_set():
                    await self._abort(attempt, 1001, "agent stopping")
                    break
                if interrupted:  # SIGHUP
                    self._hup.clear()
                    await self._abort(attempt, 1001, "agent reconnecting (SIGHUP)")
                    self.backoff.reset()
                    log.info("SIGHUP: session dropped, reconnecting now with files re-read from disk")
                    continue
                welcomed = attempt.result()
                if welcomed:
                    self.backoff.reset()
                delay = self.backoff.next_delay()
                log.info("reconnecting in %.1fs (failures in a row: %d)", delay, self.backoff.failures)
                if await self._sleep_or_signal(delay):
                    if self._hup.is_set() and not self._stop.is_set():
                        self._hup.clear()
                        self.backoff.reset()
                        log.info("SIGHUP: reconnecting now with files re-read from disk")
        finally:
            for task in list(self._command_tasks):
                task.cancel()
            if self._command_tasks:
                await asyncio.gather(*self._command_tasks, return_exceptions=True)
            if http_server is not None:
                http_server.close()
                await http_server.wait_closed()
        log.info("agent stopped")
        return 0

    def _on_stop(self, name: str) -> None:
        log.info("%s received: closing the session and exiting", name)
        self._stop.set()

    def _on_hup(self) -> None:
        log.info("SIGHUP received")
        self._hup.set()

    async def _wait_or_signal(self, task: asyncio.Task) -> bool:
        """Wait for the task, a stop or a HUP; True when a signal came first."""
        stop = asyncio.create_task(self._stop.wait())
        hup = asyncio.create_task(self._hup.wait())
        try:
            await asyncio.wait({task, stop, hup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            hup.cancel()
        return not task.done() or self._stop.is_set() or self._hup.is_set()

    async def _sleep_or_signal(self, delay: float) -> bool:
        sleeper = asyncio.create_task(asyncio.sleep(delay))
        try:
            return await self._wait_or_signal(sleeper)
        finally:
            sleeper.cancel()

    async def _abort(self, attempt: asyncio.Task, code: int, reason: str) -> None:
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(code=code, reason=reason), CLOSE_TIMEOUT_S + 1)
            except Exception:
                pass
        if not attempt.done():
            attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)

    # -- one connection attempt ------------------------------------------------------------

    async def _attempt(self) -> bool:
        """Connect, check the pin, hello/welcome, then serve the session; True when welcomed."""
        self.attempts += 1
        problems = file_problems(required_paths(self.config)[:4])  # cert, key, trust bundle, scripts root
        if problems:
            log.error("connection attempt %d not made: %s", self.attempts, "; ".join(problems))
            return False
        try:
            context = build_tls_context(self.config)
        except (OSError, ssl.SSLError) as exc:
            log.error("connection attempt %d not made: TLS material unusable: %s", self.attempts, describe_error(exc))
            return False
        log.info("connecting to %s (attempt %d)", self.config.backend_url, self.attempts)
        try:
            ws = await websockets.connect(
                self.config.backend_url,
                ssl=context,
                ping_interval=self.config.ping_interval_s,
                ping_timeout=self.config.ping_timeout_s,
                open_timeout=OPEN_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                max_size=4 * 1024 * 1024,
            )
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.error(
                "connect to %s failed: no WebSocket upgrade within %.0fs", self.config.backend_url, OPEN_TIMEOUT_S
            )
            return False
        except Exception as exc:  # OSError, ssl errors, InvalidStatusCode/InvalidHandshake ...
            log.error("connect to %s failed: %s", self.config.backend_url, describe_error(exc))
            return False
        self._ws = ws
        try:
            der = peer_certificate_der(ws)
            matched = pins.matching_pin(list(self.config.pins), der) if der else None
            if matched is None:
                live = pins.spki_pin(der) if der else "no certificate"
                log.error("pin mismatch: expected %s got %s", self.config.pin_text, live)
                await ws.close(code=1008, reason="pin mismatch")
                return False
            log.info(
                "TLS established to %s; backend SPKI pin matched (%s, %s)",
                self.config.backend_url,
                matched.value,
                matched.form,
            )
            return await self._session(ws)
        except websockets.exceptions.ConnectionClosed as exc:
            if self.session_id is None:
                log.error("connection closed before welcome: %s", describe_close(exc, ws))
                return False
            log.error("session closed: %s", describe_close(exc, ws))
            return True
        finally:
            self._ws = None
            self.session_id = None
            try:
                await ws.close()
            except Exception:
                pass

    async def _flush(self, ws: Any) -> None:
        """Send what the session protocol has queued, in order (one writer at a time)."""
        async with self._send_lock:
            for data in self._protocol.data_to_send():
                await ws.send(data)

    async def _send(self, ws: Any, frame: protocol.Frame) -> None:
        """Send in the session of ``ws``; SessionGone when that session has ended (a later one may be open)."""
        if ws is not self._session_ws or self._protocol.state is not session_protocol.State.OPEN:
            raise SessionGone()
        self._protocol.send(frame)
        await self._flush(ws)

    async def _await_welcome(self, ws: Any) -> str | None:
        """The session_id of the welcome, or None after an error frame / timeout."""
        deadline = time.monotonic() + WELCOME_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.error("no welcome from %s within %.0fs of hello", self.config.backend_url, WELCOME_TIMEOUT_S)
                return None
            try:
                message = await asyncio.wait_for(ws.recv(), remaining)
            except TimeoutError:
                continue
            self._protocol.receive(message)
            for event in self._protocol.events_received():
                if isinstance(event, session_protocol.Welcomed):
                    return event.session_id
                if isinstance(event, session_protocol.Rejected):
                    log.error("backend rejected hello: %s %s", event.code, event.message)
                    return None
                if isinstance(event, session_protocol.Malformed):
                    log.warning("malformed frame ignored while waiting for welcome: %s", event.problem)
                elif isinstance(event, session_protocol.Unexpected):
                    log.warning("ignoring %s", event.reason)

    async def _session(self, ws: Any) -> bool:
        self._protocol = session_protocol.AgentProtocol()
        self._session_ws = ws
        self._protocol.send_hello(self.host.hello_payload())
        await self._flush(ws)
        log.info(
            "hello sent agent_id=%s site=%s version=%s",
            self.config.agent_id,
            self.config.site,
            self.config.agent_version,
        )
        session_id = await self._await_welcome(ws)
        if session_id is None:
            return False
        self.session_id = session_id
        self.backoff.reset()
        log.info(
            "session established agent_id=%s session_id=%s backend=%s",
            self.config.agent_id,
            session_id,
            self.config.backend_url,
        )
        telemetry = asyncio.create_task(self._telemetry_loop(ws))
        try:
            async for message in ws:
                self._on_message(ws, message)
        except websockets.exceptions.ConnectionClosed as exc:
            log.error("session closed: %s", describe_close(exc, ws))
            return True
        finally:
            telemetry.cancel()
            await asyncio.gather(telemetry, return_exceptions=True)
        log.info("session closed: %s", describe_close(None, ws))
        return True

    def _on_message(self, ws: Any, message: Any) -> None:
        self._protocol.receive(message)
        for event in self._protocol.events_received():
            if isinstance(event, session_protocol.CommandReceived):
                task = asyncio.create_task(self._handle_command(ws, event.frame))
                self._command_tasks.add(task)
                task.add_done_callback(self._command_tasks.discard)
            elif isinstance(event, session_protocol.ErrorReceived):
                log.warning(
                    "backend error frame: %s %s (correlation_id=%s); session kept",
                    event.code,
                    event.message,
                    event.correlation_id or "-",
                )
            elif isinstance(event, session_protocol.Malformed):
                log.warning("malformed frame ignored: %s", event.problem)
            elif isinstance(event, session_protocol.Unexpected):
                log.debug("ignored: %s", event.reason)

    async def _handle_command(self, ws: Any, frame: protocol.Frame) -> None:
        result = await self.executor.process(frame.payload, frame.correlation_id)
        try:
            await self._send(
                ws,
                protocol.make_frame(protocol.RESULT, result, correlation_id=result["corr_id"] or frame.correlation_id),
            )
        except (websockets.exceptions.ConnectionClosed, SessionGone):
            log.warning("RESULT corr_id=%s not delivered: the session closed (cached for a resend)", result["corr_id"])

    async def _telemetry_loop(self, ws: Any) -> None:
        while True:
            try:
                payload = await self.host.telemetry_payload()
            except Exception as exc:
                log.error("telemetry reading failed: %s", describe_error(exc))
            else:
                try:
                    await self._send(ws, protocol.make_frame(protocol.TELEMETRY, payload))
                except (websockets.exceptions.ConnectionClosed, SessionGone):
                    return
                log.debug("telemetry sent cpu_pct=%s mem_used_mb=%s", payload["cpu_pct"], payload["mem"]["used_mb"])
            await asyncio.sleep(self.config.telemetry_interval_s)

    # -- optional inbound HTTP ---------------------------------------------------------------

    async def _start_inbound_http(self) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readline(), 5)
                while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                    pass
                parts = request.decode("latin-1").split()
                if len(parts) >= 2 and parts[0] == "GET" and parts[1] == "/health":
                    status = "200 OK"
                    body = {
                        "status": "ok",
                        "agent_id": self.config.agent_id,
                        "connected": self.session_id is not None,
                        "session_id": self.session_id,
                        "version": self.config.agent_version,
                    }
                else:
                    status, body = "404 Not Found", {"error": "not found"}
                data = json.dumps(body).encode()
                writer.write(
                    (
                        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                    ).encode()
                    + data
                )
                await writer.drain()
            except (TimeoutError, OSError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, self.config.inbound_http_bind, self.config.inbound_http_port)
        log.warning(
            "inbound HTTP enabled: serving GET /health on %s:%d",
            self.config.inbound_http_bind,
            self.config.inbound_http_port,
        )
        return server


def describe_close(exc: BaseException | None, ws: Any) -> str:
    """What ended a session: websockets' own words (``sent 1011 (internal error) keepalive ping
    timeout; no close frame received``) when it raised, else the close code and reason."""
    if exc is not None:
        return str(exc).replace("\n", " ") or type(exc).__name__
    return f"code={getattr(ws, 'close_code', None)} reason={getattr(ws, 'close_reason', None) or '-'}"
