"""The lab's reference ViWorkS gateway agent: an outbound-only wss client that speaks the contract.

Shipped as the zipapp ``/opt/viworks/viworks-gateway-agent`` whose ``__main__`` calls :func:`main`
(which exits the process with :func:`run`'s code). Its modules, along its seams: ``config`` (the
.env and agent.toml read and validated), ``files`` (the certificate, key, CA, scripts and the TLS
context), ``readings`` (the host, for hello, telemetry and built-in verbs), ``redaction`` (backoff,
the RESULT cache, secret arguments), ``executor`` (commands), ``session`` (the wss session loop),
``main`` (entry points). Runs on Debian bookworm's Python 3.11 with
websockets 10.4 (legacy asyncio client), PyJWT 2.6 and cryptography 38; also works with newer ones.

Configuration (environment, from ``/opt/viworks/agent/.env``)::

    required  VIW_AGENT_BACKEND_URL          wss://<agent domain>/ws/agent (ws:// is refused)
              VIW_AGENT_ID                   must equal the client certificate's CN
              VIW_AGENT_CERT_PATH / VIW_AGENT_KEY_PATH / VIW_AGENT_TRUST_BUNDLE
              VIW_AGENT_BACKEND_SPKI_PIN     bare or sha256/ base64 SPKI pin, comma-separated backups
              VIW_AGENT_SITE, VIW_AGENT_SCRIPTS_ROOT
    optional  VIW_AGENT_CONTAINER_ENGINE (docker; "none" for no engine), VIW_AGENT_MAX_CONCURRENCY (4),
              VIW_AGENT_CMD_TIMEOUT_SECS (45), VIW_AGENT_FEATURE_EXEC_ENABLE (true),
              VIW_AGENT_FEATURE_INBOUND_HTTP (false), RUST_LOG (info)
    lab       VIW_AGENT_SIGNING_PUBKEY (Ed25519 public key PEM; when set, command signatures are verified),
              VIW_AGENT_PING_INTERVAL_SECS (15), VIW_AGENT_TELEMETRY_INTERVAL_SECS (30),
              VIW_AGENT_VERSION (1.4.2-lab), VIW_AGENT_INBOUND_HTTP_BIND (0.0.0.0),
              VIW_AGENT_INBOUND_HTTP_PORT (8090)

Exit codes: 2 for a missing or malformed variable (one log line naming it), 1 for a required file
(certificate, key, trust bundle, scripts root, signing key) missing, unreadable or world-writable at
start-up, 0 after SIGTERM/SIGINT. Once running, the agent never exits on its own: every connection
attempt re-reads the certificate, key and CA from disk, and a file that went missing is logged as that
attempt's error and retried with exponential backoff (1 s doubling to 30 s, with jitter; reset after a
session that got ``welcome``). SIGHUP drops the session and reconnects at once.

TLS: the server chain is verified against the trust bundle with hostname checking, the client
certificate is presented, and after the handshake the leaf's SPKI pin must match one configured pin
(``pin mismatch: expected <configured> got <live>`` otherwise, then close and retry).

Commands: every COMMAND goes through one process-wide :class:`~viworks_verify.wire.commands.CommandGate`
(so the nonce memory persists across sessions); a resent ``corr_id`` gets the cached RESULT (kept
10 minutes) without running again. Admitted commands run under a semaphore of MAX_CONCURRENCY with a
timeout of CMD_TIMEOUT_SECS (TIMEOUT / EXEC_TIMEOUT, the process group is killed).
Built-in verbs: ``get_system_health``, ``get_service_status``, ``get_monitoring_data``,
``list_containers``, ``list_users``. Script verbs run ``VIW_AGENT_SCRIPTS_ROOT/<script>``:
``create_panel_user`` -> ``add_user.sh``, ``delete_user`` -> ``delete_user.sh``,
``create_openvpn_user`` -> ``add_vpn_user.sh`` (``delete_vpn_user.sh`` is not mapped: no allowlisted
verb has its arguments). A script is executed directly (never through a shell) with no arguments,
the command's ``args`` object as one JSON document on stdin, its directory as working directory, and an
environment of exactly ``PATH=/usr/sbin:/usr/bin:/sbin:/bin``. It must exist (else ERROR
SCRIPT_NOT_FOUND), be an executable regular file (else ERROR SCRIPT_NOT_EXECUTABLE) and not be group- or
world-writable (else ERROR SCRIPT_INSECURE). rc 0 -> SUCCESS, else ERROR EXEC_FAILED. Its stdout, when
JSON, is passed on (else wrapped as ``{"output": text}``), with the values of the arguments named
password, userpass, key, hmac_key and bootstrap_token redacted; stderr is only hashed. Other
allowlisted verbs answer ERROR UNSUPPORTED_VERB.

With VIW_AGENT_FEATURE_INBOUND_HTTP false the agent listens on no port. When true it serves a read-only
``GET /health`` JSON on VIW_AGENT_INBOUND_HTTP_BIND:PORT (no commands over HTTP).

Logs go to stdout (journald), one line per event, never key material, secrets or command arguments.
"""

from __future__ import annotations

from viworks_lab.agents.gateway.config import ConfigError, load_config, parse_log_level
from viworks_lab.agents.gateway.executor import CommandExecutor
from viworks_lab.agents.gateway.files import key_mode_warning, path_problem
from viworks_lab.agents.gateway.main import log, main, process_start_time, run, setup_logging
from viworks_lab.agents.gateway.readings import HostInfo
from viworks_lab.agents.gateway.redaction import Backoff, ResultCache, result_stdout
from viworks_lab.agents.gateway.session import GatewayAgent

__all__ = [
    "Backoff",
    "CommandExecutor",
    "ConfigError",
    "GatewayAgent",
    "HostInfo",
    "ResultCache",
    "key_mode_warning",
    "load_config",
    "log",
    "main",
    "parse_log_level",
    "path_problem",
    "process_start_time",
    "result_stdout",
    "run",
    "setup_logging",
]
