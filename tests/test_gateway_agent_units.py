"""The lab gateway agent's pieces, without a network: configuration, files, backoff, the result cache,
redaction, command execution through the shared CommandGate, and hello/telemetry against the protocol."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from viworks_lab.agents import gateway
from viworks_verify.core.polling import NotReady, poll_until
from viworks_verify.wire import commands, protocol

PIN = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
AGENT = "gw-lab-01"


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    for name in ("client.crt", "client.key", "ca.crt"):
        (certs / name).write_text("placeholder\n")
    (certs / "client.key").chmod(0o600)
    env = {
        "VIW_AGENT_BACKEND_URL": "wss://agent.lab.test/ws/agent",
        "VIW_AGENT_ID": AGENT,
        "VIW_AGENT_CERT_PATH": str(certs / "client.crt"),
        "VIW_AGENT_KEY_PATH": str(certs / "client.key"),
        "VIW_AGENT_TRUST_BUNDLE": str(certs / "ca.crt"),
        "VIW_AGENT_BACKEND_SPKI_PIN": PIN,
        "VIW_AGENT_SITE": "lab",
        "VIW_AGENT_SCRIPTS_ROOT": str(scripts),
        "VIW_AGENT_CONTAINER_ENGINE": "none",
    }
    env.update(extra)
    return env


# -- configuration -----------------------------------------------------------------------------


def test_config_defaults(tmp_path):
    config = gateway.load_config(base_env(tmp_path))
    assert config.max_concurrency == 4
    assert config.cmd_timeout_s == 45
    assert config.exec_enabled is True and config.inbound_http is False
    assert config.ping_interval_s == 15 and config.ping_timeout_s == 30
    assert config.telemetry_interval_s == 30
    assert config.agent_version == "1.4.2-lab"
    assert config.log_level == logging.INFO
    assert [p.value for p in config.pins] == [PIN]


def test_config_accepts_prefixed_pin_with_backup(tmp_path):
    backup = "YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg="
    config = gateway.load_config(base_env(tmp_path, VIW_AGENT_BACKEND_SPKI_PIN=f"sha256/{PIN}, {backup}"))
    assert [(p.value, p.prefixed) for p in config.pins] == [(PIN, True), (backup, False)]


@pytest.mark.parametrize(
    "name, value",
    [
        ("VIW_AGENT_BACKEND_URL", "ws://10.0.0.5:8081/ws/agent"),
        ("VIW_AGENT_BACKEND_URL", "https://agent.lab.test/ws/agent"),
        ("VIW_AGENT_BACKEND_SPKI_PIN", "dummy"),
        ("VIW_AGENT_MAX_CONCURRENCY", "0"),
        ("VIW_AGENT_MAX_CONCURRENCY", "four"),
        ("VIW_AGENT_CMD_TIMEOUT_SECS", "-1"),
        ("VIW_AGENT_FEATURE_EXEC_ENABLE", "maybe"),
        ("RUST_LOG", "loud"),
        ("VIW_AGENT_PING_INTERVAL_SECS", "60"),
        ("VIW_AGENT_ID", ""),
        ("VIW_AGENT_SITE", ""),
    ],
)
def test_malformed_or_missing_variable_is_named(tmp_path, name, value):
    with pytest.raises(gateway.ConfigError) as caught:
        gateway.load_config(base_env(tmp_path, **{name: value}))
    assert caught.value.name == name


def test_rust_log_directives():
    assert gateway.parse_log_level("debug") == logging.DEBUG
    assert gateway.parse_log_level("warn,viworks=debug") == logging.WARNING
    assert gateway.parse_log_level("viworks_gateway_agent=trace") == logging.DEBUG
    assert gateway.parse_log_level("ERROR") == logging.ERROR


def test_log_lines_are_single_lines_and_websockets_never_logs_frames(capsys):
    gateway.setup_logging(logging.DEBUG)
    try:
        assert logging.getLogger("websockets").getEffectiveLevel() >= logging.WARNING
        gateway.log.info("two\nlines")
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and "two\\nlines" in out
    finally:
        gateway.setup_logging(logging.INFO)


def test_run_exits_2_on_config_error_naming_the_variable(tmp_path, capsys):
    env = base_env(tmp_path)
    del env["VIW_AGENT_SITE"]
    assert gateway.run(env) == 2
    out = capsys.readouterr().out
    assert "VIW_AGENT_SITE" in out and len(out.strip().splitlines()) == 1


def test_run_exits_2_on_plain_ws_url(tmp_path, capsys):
    assert gateway.run(base_env(tmp_path, VIW_AGENT_BACKEND_URL="ws://10.0.0.5:8081/ws/agent")) == 2
    assert "wss://" in capsys.readouterr().out


def test_run_exits_1_on_missing_certificate(tmp_path, capsys):
    env = base_env(tmp_path)
    os.unlink(env["VIW_AGENT_CERT_PATH"])
    assert gateway.run(env) == 1
    out = capsys.readouterr().out
    assert f"{env['VIW_AGENT_CERT_PATH']}: missing" in out


def test_run_exits_1_on_world_writable_scripts_root(tmp_path, capsys):
    env = base_env(tmp_path)
    os.chmod(env["VIW_AGENT_SCRIPTS_ROOT"], 0o777)
    assert gateway.run(env) == 1
    assert "scripts root" in capsys.readouterr().out


# -- files -------------------------------------------------------------------------------------


def test_path_problems(tmp_path):
    good = tmp_path / "f"
    good.write_text("x")
    good.chmod(0o644)
    assert gateway.path_problem(good) is None
    assert gateway.path_problem(tmp_path / "nope") == "missing"
    assert gateway.path_problem(tmp_path) == "not a regular file"
    assert gateway.path_problem(good, directory=True) == "not a directory"
    good.chmod(0o646)
    assert gateway.path_problem(good).startswith("world-writable")


def test_key_mode_warning(tmp_path):
    key = tmp_path / "client.key"
    key.write_text("k")
    key.chmod(0o600)
    assert gateway.key_mode_warning(key) is None
    key.chmod(0o400)
    assert gateway.key_mode_warning(key) is None
    key.chmod(0o640)
    assert "0640" in gateway.key_mode_warning(key)


# -- backoff, cache, redaction -----------------------------------------------------------------


def test_backoff_doubles_to_30s_with_jitter_and_resets():
    top = gateway.Backoff(rng=lambda: 1.0)
    assert [round(top.next_delay(), 3) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    low = gateway.Backoff(rng=lambda: 0.0)
    assert [round(low.next_delay(), 3) for _ in range(3)] == [0.8, 1.6, 3.2]
    top.reset()
    assert top.next_delay() == 1.0


def test_result_cache_expires_and_is_bounded():
    now = [0.0]
    cache = gateway.ResultCache(ttl_s=10, max_entries=2, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert cache.get("a") is None and cache.get("c") == 3
    now[0] = 11
    assert cache.get("b") is None and len(cache) == 0


def test_result_stdout_redacts_secret_argument_values():
    args = {"username": "alice", "password": "s3cret!", "key": "K" * 20}
    out = gateway.result_stdout('{"user":"alice","echo":"pw=s3cret! key=' + "K" * 20 + '","password":"x"}\n', args)
    data = json.loads(out)
    assert data == {"user": "alice", "echo": "pw=[REDACTED] key=[REDACTED]", "password": "[REDACTED]"}
    assert json.loads(gateway.result_stdout("created s3cret!\n", args)) == {"output": "created [REDACTED]\n"}
    assert json.loads(gateway.result_stdout("", {})) == {"output": ""}


# -- commands through the shared gate ----------------------------------------------------------


@pytest.fixture
def signer():
    return Ed25519PrivateKey.generate()


def make_executor(tmp_path: Path, signer, **extra: str) -> gateway.CommandExecutor:
    config = gateway.load_config(base_env(tmp_path, **extra))
    gate = commands.CommandGate(config.agent_id, exec_enabled=config.exec_enabled, signing_key=signer.public_key())
    return gateway.CommandExecutor(config, gate, gateway.HostInfo(config, time.time()))


def token(signer, verb: str, args: dict | None = None, **kw) -> str:
    claims = commands.command_claims(
        verb, args or {}, kw.pop("targets", [AGENT]), actor_id="ops", actor_role="operator", **kw
    )
    return commands.sign_command(claims, signer)


def run_async(coro):
    return asyncio.run(coro)


def test_get_system_health_returns_real_readings(tmp_path, signer):
    async def go():
        executor = make_executor(tmp_path, signer)
        return await executor.process(token(signer, "get_system_health"), None)

    result = run_async(go())
    assert protocol.result_problems(result) == []
    assert (result["status"], result["error_code"], result["rc"]) == ("SUCCESS", "NONE", 0)
    health = json.loads(result["stdout"])
    assert set(health) == {
        "cpu_usage_percent",
        "memory_usage_percent",
        "disk_usage_percent",
        "load_average",
        "uptime_seconds",
    }
    assert health["memory_usage_percent"] > 0 and health["disk_usage_percent"] > 0 and health["uptime_seconds"] > 0
    assert len(health["load_average"]) == 3


def test_resent_corr_id_is_answered_from_cache_and_reused_nonce_is_denied(tmp_path, signer):
    async def go():
        executor = make_executor(tmp_path, signer)
        claims = commands.command_claims("list_users", {}, [AGENT], actor_id="ops", actor_role="operator")
        first_token = commands.sign_command(claims, signer)
        first = await executor.process(first_token, claims["corr_id"])
        again = await executor.process(first_token, claims["corr_id"])
        replay = dict(claims, corr_id="another-corr-id")
        denied = await executor.process(commands.sign_command(replay, signer), "another-corr-id")
        return first, again, denied

    first, again, denied = run_async(go())
    assert first["status"] == "SUCCESS"
    assert again == first
    assert (denied["status"], denied["error_code"], denied["rc"], denied["corr_id"]) == (
        "DENIED",
        "REPLAY_DETECTED",
        -1,
        "another-corr-id",
    )


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda s, o: token(s, "get_system_health", targets=["gw-other"]), "NOT_TARGETED"),
        (lambda s, o: token(s, "rm_rf", {}), "UNKNOWN_VERB"),
        (lambda s, o: token(s, "get_system_health", now=time.time() - 600), "EXPIRED"),
        (lambda s, o: token(o, "get_system_health"), "SIGNATURE_INVALID"),
        (lambda s, o: token(s, "delete_user", {"username": "a", "extra": 1}), "VALIDATION_FAILED"),
        (lambda s, o: "not-a-jws", "VALIDATION_FAILED"),
    ],
)
def test_rejected_commands_are_denied_with_the_gate_code(tmp_path, signer, make, code):
    other = Ed25519PrivateKey.generate()

    async def go():
        return await make_executor(tmp_path, signer).process(make(signer, other), "c-1")

    result = run_async(go())
    assert (result["status"], result["error_code"], result["rc"]) == ("DENIED", code, -1)
    assert protocol.result_problems(result) == []


def test_exec_disabled_is_denied(tmp_path, signer):
    async def go():
        executor = make_executor(tmp_path, signer, VIW_AGENT_FEATURE_EXEC_ENABLE="false")
        return await executor.process(token(signer, "get_system_health"), None)

    assert run_async(go())["error_code"] == "EXEC_DISABLED"


def write_script(root: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = root / name
    path.write_text(body)
    path.chmod(mode)
    return path


def test_script_gets_args_on_stdin_and_a_scrubbed_environment(tmp_path, signer, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "leak-me")
    executor_holder = {}

    async def go():
        executor = make_executor(tmp_path, signer)
        executor_holder["e"] = executor
        write_script(
            executor.config.scripts_root,
            "add_user.sh",
            (
                "#!/bin/sh\nargs=$(cat)\n"
                'printf \'{"args":%s,"env":"%s","argc":%s}\\n\' "$args" "$(env | sort | tr \'\\n\' \' \')" "$#"\n'
                "echo oops >&2\n"
            ),
        )
        return await executor.process(
            token(signer, "create_panel_user", {"username": "alice", "password": "pw-123456"}), None
        )

    result = run_async(go())
    assert (result["status"], result["rc"], result["error_code"]) == ("SUCCESS", 0, "NONE")
    out = json.loads(result["stdout"])
    assert out["args"] == {"username": "alice", "password": "[REDACTED]"}
    assert "pw-123456" not in result["stdout"]
    assert "leak-me" not in out["env"] and "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in out["env"]
    assert out["argc"] == 0
    assert result["stderr_hash"] == protocol.stderr_hash(b"oops\n")


@pytest.mark.parametrize(
    "setup, status, code",
    [
        (None, "ERROR", "SCRIPT_NOT_FOUND"),
        (("#!/bin/sh\necho hi\n", 0o644), "ERROR", "SCRIPT_NOT_EXECUTABLE"),
        (("#!/bin/sh\necho hi\n", 0o775), "ERROR", "SCRIPT_INSECURE"),
        (("#!/bin/sh\necho failing\nexit 3\n", 0o755), "ERROR", "EXEC_FAILED"),
    ],
)
def test_script_problems(tmp_path, signer, setup, status, code):
    async def go():
        executor = make_executor(tmp_path, signer)
        if setup is not None:
            write_script(executor.config.scripts_root, "delete_user.sh", *setup)
        return await executor.process(token(signer, "delete_user", {"username": "bob"}), None)

    result = run_async(go())
    assert (result["status"], result["error_code"]) == (status, code)
    if code == "EXEC_FAILED":
        assert result["rc"] == 3 and json.loads(result["stdout"]) == {"output": "failing\n"}


def _process_gone(pid_file: Path, within_s: float) -> bool:
    """Whether the process whose pid the script wrote is gone before the deadline (polled)."""
    pid = int(pid_file.read_text())
    try:
        poll_until(
            lambda: os.path.exists(f"/proc/{pid}") and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2],
            lambda alive: not alive,
            what=f"pid {pid} gone",
            timeout_s=within_s,
            interval_s=0.02,
        )
    except NotReady:
        return False
    return True


def test_timeout_kills_the_script(tmp_path, signer):
    pid_file = tmp_path / "script.pid"

    async def go():
        executor = make_executor(tmp_path, signer, VIW_AGENT_CMD_TIMEOUT_SECS="0.5")
        write_script(
            executor.config.scripts_root, "delete_user.sh", f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n"
        )
        started = time.monotonic()
        result = await executor.process(token(signer, "delete_user", {"username": "bob"}), None)
        return result, time.monotonic() - started

    result, elapsed = run_async(go())
    assert (result["status"], result["error_code"], result["rc"]) == ("TIMEOUT", "EXEC_TIMEOUT", -1)
    assert elapsed < 2.5
    assert _process_gone(pid_file, within_s=2), "the timed-out script was not killed"


def test_timeout_kills_children_that_outlive_the_script(tmp_path, signer):
    pid_file = tmp_path / "child.pid"

    async def go():
        executor = make_executor(tmp_path, signer, VIW_AGENT_CMD_TIMEOUT_SECS="0.5")
        write_script(
            executor.config.scripts_root,
            "delete_user.sh",
            f"#!/bin/sh\n(echo $$ > /dev/null; sh -c 'echo $$ > {pid_file}; exec sleep 30') &\nexit 0\n",
        )
        return await executor.process(token(signer, "delete_user", {"username": "bob"}), None)

    result = run_async(go())
    # the child keeps stdout open, so the command does not finish before the timeout
    assert result["status"] == "TIMEOUT"
    assert _process_gone(pid_file, within_s=2), "a child of the timed-out script was not killed"


def test_unimplemented_allowlisted_verb_is_an_error(tmp_path, signer):
    async def go():
        return await make_executor(tmp_path, signer).process(
            token(signer, "stop_container", {"container_id": "x"}), None
        )

    result = run_async(go())
    assert (result["status"], result["error_code"]) == ("ERROR", "UNSUPPORTED_VERB")


def test_concurrency_is_bounded(tmp_path, signer):
    async def go():
        executor = make_executor(tmp_path, signer, VIW_AGENT_MAX_CONCURRENCY="2")
        write_script(executor.config.scripts_root, "delete_user.sh", "#!/bin/sh\nsleep 0.4\necho '{}'\n")
        started = time.monotonic()
        tokens = [token(signer, "delete_user", {"username": f"u{i}"}) for i in range(4)]
        results = await asyncio.gather(*(executor.process(t, None) for t in tokens))
        return results, time.monotonic() - started

    results, elapsed = run_async(go())
    assert all(r["status"] == "SUCCESS" for r in results)
    assert elapsed >= 0.75  # 4 commands of 0.4 s, 2 at a time


# -- hello and telemetry -----------------------------------------------------------------------


def test_hello_and_telemetry_follow_the_contract(tmp_path):
    config = gateway.load_config(base_env(tmp_path))
    host = gateway.HostInfo(config, gateway.process_start_time())
    hello = host.hello_payload()
    assert protocol.validate_hello(hello) == AGENT
    assert hello["supported_verbs"] == list(commands.VERB_ARGS)
    assert hello["feature_flags"] == {"exec_enable": True, "inbound_http": False}
    protocol.parse_rfc3339(hello["start_time"])
    assert hello["os"] and hello["kernel"] == os.uname().release

    telemetry = asyncio.run(host.telemetry_payload())
    assert protocol.telemetry_problems(telemetry) == []
    assert telemetry["containers"] == []
    assert set(telemetry["services"]) == {"sshd", "viworks-gateway-agent"}
    json.dumps(telemetry)


def test_frames_are_contract_json():
    frame = protocol.make_frame(protocol.RESULT, {"corr_id": "c"}, correlation_id="c")
    assert protocol.Frame.parse(frame.to_json()) == frame
