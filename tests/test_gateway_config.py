"""The gateway agent's effective configuration: the .env over agent.toml's [outbound], each value with its file."""

from viworks_verify.gateway.config import SECTIONS, effective, missing_sections

ENV_FILE, TOML_FILE = "/opt/viworks/agent/.env", "/opt/viworks/agent/agent.toml"
TOML = {
    **{section: {} for section in SECTIONS},
    "outbound": {
        "backend_spki_pin": "sha256/" + "A" * 43 + "=",
        "site": "lab",
        "feature_exec_enable": True,
        "max_concurrency": 4,
    },
}


def test_the_env_overrides_outbound_one_key_at_a_time_and_each_value_names_its_file():
    config = effective({"VIW_AGENT_BACKEND_SPKI_PIN": "sha256/real="}, ENV_FILE, TOML, TOML_FILE)
    assert config.values["VIW_AGENT_BACKEND_SPKI_PIN"] == "sha256/real="
    assert config.source("VIW_AGENT_BACKEND_SPKI_PIN", "?") == ENV_FILE
    assert config.values["VIW_AGENT_SITE"] == "lab"
    assert config.source("VIW_AGENT_SITE", "?") == f"{TOML_FILE} [outbound] site"
    assert (
        config.values["VIW_AGENT_FEATURE_EXEC_ENABLE"] == "true" and config.values["VIW_AGENT_MAX_CONCURRENCY"] == "4"
    )


def test_without_agent_toml_the_env_is_the_whole_configuration():
    config = effective({"VIW_AGENT_SITE": "lab"}, ENV_FILE, None, None)
    assert config.values == {"VIW_AGENT_SITE": "lab"} and config.source("VIW_AGENT_ID", ENV_FILE) == ENV_FILE


def test_every_section_is_required():
    assert missing_sections(TOML) == []
    assert missing_sections({"outbound": {}, "agent": {}}) == ["security", "scripts", "monitoring", "containers"]
