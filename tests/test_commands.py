"""The signed command and an agent's admission checks, in the contract's order, without sockets."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from viworks_verify.wire import commands
from viworks_verify.wire.commands import CommandGate, CommandRejected

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()


def _token(verb="get_system_health", args=None, targets=("gw-1",), now=NOW, ttl=60, key=KEY):
    claims = commands.command_claims(
        verb, args or {}, list(targets), actor_id="ops", actor_role="operator", ttl_s=ttl, now=now
    )
    return commands.sign_command(claims, key)


def _gate(exec_enabled=True, clock=NOW):
    return CommandGate("gw-1", exec_enabled=exec_enabled, signing_key=KEY.public_key(), clock=lambda: clock)


def _rejection(gate, token):
    with pytest.raises(CommandRejected) as caught:
        gate.admit(token)
    return caught.value.error_code


def test_a_valid_command_is_admitted_with_its_claims():
    claims = _gate().admit(_token())
    assert claims["verb"] == "get_system_health" and claims["agent_targets"] == ["gw-1"]
    assert set(commands.CLAIMS) <= set(claims)


def test_exec_disabled_is_checked_first():
    # Also not targeted and unknown verb: exec_enable comes first in the contract's order.
    assert _rejection(_gate(exec_enabled=False), _token(verb="rm_rf", targets=("other",))) == "EXEC_DISABLED"


def test_not_targeted_comes_before_the_verb_check():
    assert _rejection(_gate(), _token(verb="rm_rf", targets=("other",))) == "NOT_TARGETED"


def test_unknown_verb():
    assert _rejection(_gate(), _token(verb="rm_rf")) == "UNKNOWN_VERB"


def test_expired_and_skewed_commands():
    assert _rejection(_gate(clock=NOW + 61), _token(ttl=60)) == "EXPIRED"
    assert _rejection(_gate(clock=NOW - 61), _token(ttl=300)) == "EXPIRED"  # iat 61 s in the future


def test_a_replayed_nonce_is_detected_within_the_window():
    gate, token = _gate(), _token()
    gate.admit(token)
    assert _rejection(gate, token) == "REPLAY_DETECTED"


def test_the_nonce_memory_forgets_after_the_window():
    memory = commands.NonceMemory(window_s=120)
    assert not memory.seen_recently("n", now=0)
    assert memory.seen_recently("n", now=119)
    assert not memory.seen_recently("n", now=240)


def test_a_signature_by_another_key_is_refused():
    assert _rejection(_gate(), _token(key=Ed25519PrivateKey.generate())) == "SIGNATURE_INVALID"


def test_args_must_match_the_schema_exactly():
    assert _rejection(_gate(), _token(verb="delete_user", args={})) == "VALIDATION_FAILED"
    assert _rejection(_gate(), _token(verb="get_system_health", args={"extra": 1})) == "VALIDATION_FAILED"
    assert _gate().admit(_token(verb="delete_user", args={"username": "u"}))["args"] == {"username": "u"}


def test_garbage_is_a_validation_failure_not_a_crash():
    assert _rejection(_gate(), "not.a.jws") == "VALIDATION_FAILED"
    assert _rejection(_gate(), 42) == "VALIDATION_FAILED"


def test_read_only_verbs_are_allowlisted_and_take_no_secrets():
    assert commands.READ_ONLY_VERBS <= set(commands.VERB_ARGS)
    assert "create_panel_user" not in commands.READ_ONLY_VERBS
