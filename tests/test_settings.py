"""Target settings: contract defaults, relative paths, includes, manifests, and errors naming the key."""

import json
from pathlib import Path

import pytest

from viworks_verify.target.settings import SettingsError, load_settings

PIN = "sha256/" + "A" * 43 + "="


EDGE = '[edge]\ndomain = "agent.example.com"\n'


def _target(tmp_path: Path, text: str, name: str = "prod") -> Path:
    if "[edge]" not in text:
        text += "\n" + EDGE
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


def test_defaults_come_from_the_contract(tmp_path):
    settings = load_settings("prod", _target(tmp_path, 'inventory = "hosts.ini"\n'))
    assert settings.name == "prod"
    assert settings.backend.agent_container == "viworks-backend-agent-new"
    assert settings.backend.networks == ("viworks-internal", "viworks-public")
    assert (settings.backend.api_port, settings.backend.ws_port) == (8080, 8081)
    assert settings.gateway.unit == "viworks-gateway-agent.service"
    assert settings.inventory == tmp_path / "hosts.ini"  # relative to the settings file


def test_include_and_release_manifest(tmp_path):
    (tmp_path / "gen.toml").write_text(f'[edge]\nspki_pins = "{PIN}"\n')
    (tmp_path / "release.json").write_text(json.dumps({"backend": {"version": "2.0", "sha256": "ab" * 32, "size": 5}}))
    settings = load_settings(
        "prod",
        _target(
            tmp_path,
            'include = ["gen.toml"]\nrelease_manifest = "release.json"\n[edge]\ndomain = "agent.example.com"\n',
        ),
    )
    assert settings.edge.spki_pins == PIN and settings.edge.domain == "agent.example.com"
    assert settings.release.version == "2.0" and settings.release.sha256 == "ab" * 32


def test_a_missing_include_or_manifest_is_an_error_never_an_empty_file(tmp_path):
    """A target that silently lost its pins, inventory or expected release would pass by omission."""
    target = _target(
        tmp_path,
        'include = ["gen.toml"]\nmissing_file_hint = "run the generator"\n[edge]\ndomain = "agent.example.com"\n',
    )
    with pytest.raises(SettingsError, match=r"include gen.toml \(.*gen.toml\) does not exist; run the generator"):
        load_settings("prod", target)
    target = _target(tmp_path, 'release_manifest = "release.json"\n[edge]\ndomain = "agent.example.com"\n')
    with pytest.raises(SettingsError, match=r"release_manifest .*release.json does not exist"):
        load_settings("prod", target)


def test_the_file_wins_over_the_manifest(tmp_path):
    (tmp_path / "release.json").write_text(json.dumps({"backend": {"version": "2.0", "sha256": "ab" * 32}}))
    settings = load_settings(
        "prod", _target(tmp_path, 'release_manifest = "release.json"\n[release]\nversion = "2.1"\n')
    )
    assert settings.release.version == "2.1"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[backend]\napi_prot = 8080\n", "backend.api_prot: Extra inputs are not permitted"),
        ('[backend]\napi_port = "eighty"\n', "backend.api_port"),
        (
            '[edge]\ndomain = "a.example.com"\nspki_pins = "dummy"\n',
            "edge.spki_pins: Value error, pin 'dummy' is not base64",
        ),
        ('inventory = "hosts.ini"\n[edge\n', "not valid TOML"),
        ("[edge\n", "not valid TOML"),
    ],
)
def test_a_bad_settings_file_is_one_error_naming_the_key(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings("prod", _target(tmp_path, text))


def test_a_target_must_name_its_agent_domain(tmp_path):
    (tmp_path / "prod.toml").write_text('inventory = "hosts.ini"\n')
    with pytest.raises(SettingsError, match="edge: Field required"):
        load_settings("prod", tmp_path)


def test_an_unknown_target_lists_the_known_ones(tmp_path):
    _target(tmp_path, "", name="staging")
    with pytest.raises(SettingsError, match=r"unknown target 'prod'.*known: staging"):
        load_settings("prod", tmp_path)


def test_the_committed_lab_target_is_valid():
    root = Path(__file__).resolve().parents[1]
    settings = load_settings("lab", root / "targets")
    assert settings.edge.domain == "agent.lab.test"
    assert settings.gateway.engine_listen_addresses == ("127.0.0.11",)  # the lab's own, from its file
