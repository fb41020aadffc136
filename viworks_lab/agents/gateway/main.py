"""Entry points: logging, the configuration read once, the agent run until a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

from viworks_lab.agents import host_readings
from viworks_lab.agents.gateway.config import DEFAULT_VERSION, ConfigError, load_config
from viworks_lab.agents.gateway.files import (
    certificate_cn,
    file_problems,
    key_mode_warning,
    load_signing_key,
    required_paths,
)
from viworks_lab.agents.gateway.session import GatewayAgent
from viworks_verify.gateway import config as gateway_config

log = logging.getLogger("viworks-gateway-agent")


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.exc_info = None  # tracebacks would span lines (and may hold values)
        record.exc_text = None
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # websockets' debug log prints frame contents (a COMMAND's JWS carries its arguments): never below WARNING
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))


def process_start_time() -> float:
    try:
        return host_readings.read_process_start_time()
    except (OSError, ValueError, IndexError):
        return time.time()


def toml_settings(path: Path) -> dict[str, str]:
    """``agent.toml``'s [outbound] keys as the VIW_AGENT_* variables they stand for (absent file: none).

    As the production agent reads it: every section is required when the file exists, and the
    environment (the unit's EnvironmentFile) overrides [outbound] one key at a time.
    """
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"cannot be read as TOML: {exc}") from None
    missing = gateway_config.missing_sections(data)
    if missing:
        raise ConfigError(str(path), f"sections {', '.join(missing)} missing")
    outbound = data["outbound"]
    return {
        variable: str(outbound[key]).lower() if isinstance(outbound[key], bool) else str(outbound[key])
        for variable, key in gateway_config.OUTBOUND_KEYS.items()
        if key in outbound
    }


def run(environ: Mapping[str, str] | None = None) -> int:
    """Run the agent until SIGTERM; the process exit code."""
    environ = os.environ if environ is None else environ
    start_time = process_start_time()
    setup_logging()
    try:
        environ = {**toml_settings(Path.cwd() / "agent.toml"), **environ}
        config = load_config(environ)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    setup_logging(config.log_level)
    problems = file_problems(required_paths(config))
    if problems:
        log.error("refusing to start: %s", "; ".join(problems))
        return 1
    warning = key_mode_warning(config.key_path)
    if warning:
        log.warning("%s", warning)
    cn = certificate_cn(config.cert_path)
    if cn is not None and cn != config.agent_id:
        log.warning(
            "client certificate CN %r differs from VIW_AGENT_ID %r: the backend will reject the hello",
            cn,
            config.agent_id,
        )
    signing_key = None
    if config.signing_pubkey_path is not None:
        try:
            signing_key = load_signing_key(config.signing_pubkey_path)
        except ConfigError as exc:
            log.error("%s", exc)
            return 2
    else:
        log.warning("VIW_AGENT_SIGNING_PUBKEY not set: command signatures are not verified")
    log.info(
        "starting viworks gateway agent %s agent_id=%s site=%s backend=%s pins=%s (%s) exec_enable=%s inbound_http=%s "
        "max_concurrency=%d cmd_timeout=%gs ping=%gs/%gs telemetry=%gs engine=%s scripts=%s",
        config.agent_version,
        config.agent_id,
        config.site,
        config.backend_url,
        config.pin_text,
        ", ".join(p.form for p in config.pins),
        config.exec_enabled,
        config.inbound_http,
        config.max_concurrency,
        config.cmd_timeout_s,
        config.ping_interval_s,
        config.ping_timeout_s,
        config.telemetry_interval_s,
        config.container_engine,
        config.scripts_root,
    )

    async def main_async() -> int:
        return await GatewayAgent(config, signing_key, start_time).run()

    return asyncio.run(main_async())


def main() -> None:
    """The zipapp's entry point: runs the agent and exits the process with its code (``--version``: prints it)."""
    if sys.argv[1:] == ["--version"]:
        print(f"viworks-gateway-agent {DEFAULT_VERSION}")
        sys.exit(0)
    sys.exit(run())


if __name__ == "__main__":
    main()
