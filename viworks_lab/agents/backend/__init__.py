"""The lab's reference ViWorkS backend agent: HTTP API on 8080, agent WebSocket server on 8081.

It runs inside the lab's backend container as the zipapp ``/app/viworks-backend-agent`` whose
``__main__`` calls :func:`main`. The runtime there is Debian bookworm's Python 3.11 with aiohttp 3.8,
asyncpg 0.27, redis 4.3 (``redis.asyncio``), PyJWT 2.6 and cryptography 38; nothing else.

The wire format, the hello checks, the RESULT checks, the verb allowlist and the COMMAND signature all
come from ``viworks_verify.wire.protocol`` and ``viworks_verify.wire.commands``: one truth for both sides.

Public entry points:
  * :func:`main` -- command line (``--config PATH``), returns 0 after a clean SIGTERM/SIGINT shutdown.
  * :func:`serve` -- the coroutine ``main`` runs: start both servers, wait for a signal, stop.
  * :class:`BackendAgent` -- the servers, the agent registry and the command pipeline, wired in
    ``service`` from its parts: ``http_api`` (the API's handlers), ``pipeline`` (commands from accepted
    to settled), ``agent_ws`` (agent sessions from upgrade to close), over ``sessions`` (a live
    session), ``store`` (Postgres and Redis), ``api_model`` (pure: tokens, requests, views) and
    ``responses`` (what the handlers share).
  * :func:`load_config` / :func:`merge_config` / :data:`DEFAULT_CONFIG` -- the TOML configuration.
  * Pure helpers (no I/O, unit-tested): :func:`redact_url`, :func:`log_level`, :func:`decode_bearer`,
    :func:`require_role`, :func:`parse_command_request`, :func:`aggregate_status`, :func:`command_view`.

The database and Redis URLs carry passwords and are never logged (only ``host:port/db``); neither the
JWT secret nor any token is ever logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Mapping
from typing import Any

from viworks_lab.agents.backend.api_model import (
    ApiError,
    CommandRequest,
    agent_view,
    aggregate_status,
    command_view,
    decode_bearer,
    parse_command_request,
    require_role,
)
from viworks_lab.agents.backend.config import (
    DEFAULT_CONFIG,
    DEFAULT_CONFIG_PATH,
    ConfigError,
    brief_error,
    load_config,
    log_level,
    merge_config,
    redact_url,
    url_password,
)
from viworks_lab.agents.backend.service import BackendAgent

__all__ = [  # the package's public names (the unit tests and the zipapp's __main__ use them)
    "ApiError",
    "BackendAgent",
    "CommandRequest",
    "ConfigError",
    "DEFAULT_CONFIG",
    "agent_view",
    "aggregate_status",
    "command_view",
    "decode_bearer",
    "load_config",
    "log_level",
    "main",
    "merge_config",
    "parse_command_request",
    "redact_url",
    "require_role",
    "serve",
    "url_password",
]

log = logging.getLogger("viworks.backend")

# --------------------------------------------------------------------------- entry points


async def serve(config: Mapping[str, Mapping[str, Any]]) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 when a port cannot be bound."""
    agent = BackendAgent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    try:
        await agent.start()
    except OSError as exc:
        log.error("cannot listen: %s", brief_error(exc))
        await agent.stop()
        return 1
    await stop.wait()
    log.info("shutdown requested")
    await agent.stop()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="viworks-backend-agent", description="ViWorkS backend agent (lab reference)")
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG_PATH, help=f"TOML configuration (default {DEFAULT_CONFIG_PATH})"
    )
    parser.add_argument(
        "--version", action="version", version=f"viworks-backend-agent {DEFAULT_CONFIG['server']['version']}"
    )
    options = parser.parse_args(argv)
    try:
        config = load_config(options.config)
    except ConfigError as exc:
        print(f"viworks-backend-agent: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    logging.basicConfig(
        stream=sys.stdout,
        level=log_level(config["logging"]["level"]),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    log.info("viworks backend agent %s starting (config %s)", config["server"]["version"], options.config)
    code = asyncio.run(serve(config))
    if code:
        raise SystemExit(code)
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
