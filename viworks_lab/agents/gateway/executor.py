"""Commands: admitted through the process-wide gate, run under the concurrency limit, answered with a RESULT."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from viworks_lab.agents.gateway.config import SAFE_PATH, SCRIPT_VERBS, STDOUT_LIMIT, Config
from viworks_lab.agents.gateway.readings import HostInfo
from viworks_lab.agents.gateway.redaction import ResultCache, result_stdout
from viworks_verify.wire import commands, protocol

log = logging.getLogger("viworks-gateway-agent")


@dataclasses.dataclass
class Outcome:
    status: str
    rc: int
    stdout: str = ""
    stderr: bytes = b""
    error_code: str = "NONE"


class CommandExecutor:
    """Admission (one gate per process), the corr_id result cache, and execution under limits."""

    def __init__(self, config: Config, gate: commands.CommandGate, host: HostInfo) -> None:
        self.config = config
        self.gate = gate
        self.host = host
        self.cache = ResultCache()
        self.semaphore = asyncio.Semaphore(config.max_concurrency)

    def _result(self, corr_id: str, verb: str, outcome: Outcome, duration_ms: int) -> dict[str, Any]:
        return protocol.result_payload(
            corr_id=corr_id,
            agent_id=self.config.agent_id,
            verb=verb,
            status=outcome.status,
            rc=outcome.rc,
            duration_ms=duration_ms,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            error_code=outcome.error_code,
        )

    async def process(self, token: Any, frame_corr_id: str | None) -> dict[str, Any]:
        """The RESULT payload for one COMMAND payload (never raises for a bad command)."""
        started = time.monotonic()
        try:
            claims = commands.read_claims(token)
        except commands.CommandRejected as exc:
            log.warning("command denied corr_id=%s code=%s: %s", frame_corr_id or "-", exc.error_code, exc.message)
            return self._result(frame_corr_id or "", "", Outcome("DENIED", -1, error_code=exc.error_code), 0)
        corr_id = str(claims["corr_id"])
        verb = str(claims["verb"])
        cached = self.cache.get(corr_id)
        if cached is not None:
            log.info("command resent corr_id=%s verb=%s: answering with the cached result", corr_id, verb)
            return await asyncio.shield(cached)
        try:
            claims = self.gate.admit(token)
        except commands.CommandRejected as exc:
            log.warning("command denied corr_id=%s verb=%s code=%s: %s", corr_id, verb, exc.error_code, exc.message)
            duration = int((time.monotonic() - started) * 1000)
            return self._result(corr_id, verb, Outcome("DENIED", -1, error_code=exc.error_code), duration)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.cache.put(corr_id, future)
        actor = claims.get("actor") if isinstance(claims.get("actor"), dict) else {}
        log.info(
            "command admitted corr_id=%s verb=%s actor=%s role=%s", corr_id, verb, actor.get("id"), actor.get("role")
        )
        try:
            result = await self._execute(corr_id, verb, claims["args"])
        except BaseException:
            self.cache.discard(corr_id)
            future.cancel()
            raise
        future.set_result(result)
        log.info(
            "command finished corr_id=%s verb=%s status=%s rc=%s error_code=%s duration_ms=%s",
            corr_id,
            verb,
            result["status"],
            result["rc"],
            result["error_code"],
            result["duration_ms"],
        )
        return result

    async def _execute(self, corr_id: str, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        async with self.semaphore:
            started = time.monotonic()
            try:
                outcome = await asyncio.wait_for(self._run_verb(verb, args), self.config.cmd_timeout_s)
            except TimeoutError:
                log.warning(
                    "command timed out corr_id=%s verb=%s after %.0fs", corr_id, verb, self.config.cmd_timeout_s
                )
                outcome = Outcome("TIMEOUT", -1, error_code="EXEC_TIMEOUT")
            except Exception as exc:  # a bug in a built-in must not kill the session
                log.error("command failed corr_id=%s verb=%s: %s: %s", corr_id, verb, type(exc).__name__, exc)
                outcome = Outcome("ERROR", -1, stderr=f"{type(exc).__name__}: {exc}".encode(), error_code="EXEC_FAILED")
            duration = int((time.monotonic() - started) * 1000)
        return self._result(corr_id, verb, outcome, duration)

    async def _run_verb(self, verb: str, args: Mapping[str, Any]) -> Outcome:
        builtin: Callable[[], Any] | None = {
            "get_system_health": self.host.system_health,
            "get_service_status": self.host.service_status,
            "get_monitoring_data": self.host.monitoring_data,
            "list_containers": self.host.containers,
            "list_users": self.host.users,
        }.get(verb)
        if builtin is not None:
            data = builtin()
            if asyncio.iscoroutine(data):
                data = await data
            return Outcome("SUCCESS", 0, stdout=json.dumps(data, separators=(",", ":")))
        script = SCRIPT_VERBS.get(verb)
        if script is None:
            return Outcome(
                "ERROR",
                -1,
                stdout=json.dumps({"error": f"verb {verb} is not implemented by this agent"}),
                error_code="UNSUPPORTED_VERB",
            )
        return await self._run_script(self.config.scripts_root / script, args)

    async def _run_script(self, path: Path, args: Mapping[str, Any]) -> Outcome:
        try:
            st = path.stat()
        except FileNotFoundError:
            log.error("script missing: %s", path)
            return Outcome(
                "ERROR", 127, stdout=json.dumps({"error": f"script {path} not found"}), error_code="SCRIPT_NOT_FOUND"
            )
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
            log.error("script not executable: %s (mode %04o)", path, stat.S_IMODE(st.st_mode))
            return Outcome(
                "ERROR",
                126,
                stdout=json.dumps({"error": f"script {path} is not executable"}),
                error_code="SCRIPT_NOT_EXECUTABLE",
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.error("script refused: %s is group- or world-writable (mode %04o)", path, stat.S_IMODE(st.st_mode))
            return Outcome(
                "ERROR",
                126,
                stdout=json.dumps({"error": f"script {path} is group- or world-writable"}),
                error_code="SCRIPT_INSECURE",
            )
        try:
            proc = await asyncio.create_subprocess_exec(
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(path.parent),
                env={"PATH": SAFE_PATH},
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            log.error("script could not start: %s: %s", path, exc.strerror or exc)
            return Outcome("ERROR", 126, stderr=str(exc).encode(), error_code="EXEC_FAILED")
        try:
            out, err = await proc.communicate(json.dumps(dict(args)).encode())
        except BaseException:  # cancelled by the timeout (or shutdown): kill the script's whole group,
            try:  # including children that outlived it and still hold its pipes
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            # Drain to EOF (the group is dead, so it comes at once) and reap: the transport closes
            # now, not later in a garbage collector that may outlive the event loop.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(proc.stdout.read(), proc.stderr.read()), 2)
            await proc.wait()
            raise
        rc = proc.returncode if proc.returncode is not None else -1
        stdout = result_stdout(out[:STDOUT_LIMIT].decode("utf-8", "replace"), args)
        if rc == 0:
            return Outcome("SUCCESS", 0, stdout=stdout, stderr=err)
        return Outcome("ERROR", rc, stdout=stdout, stderr=err, error_code="EXEC_FAILED")
