"""The backend agent's TOML configuration: ports, service hosts, and secrets that never show."""

import pytest

from viworks_verify.backend.config import BackendConfigError, RecordedConfig, ServiceUrl, parse_backend_config
from viworks_verify.core.secret_hash import SecretHasher

CONFIG = """
[server]
bind_address = "0.0.0.0"
port = 8080

[database]
url = "postgresql://viworks:pg-Secret-9@viworks-postgres:5432/viworks_agent"

[redis]
url = "redis://:rd-Secret-7@viworks-redis:6379/0"

[security]
jwt_secret = "jwt-Secret-123456"
client_cn_header = "X-Client-CN"

[agent_management]
bind_address = "0.0.0.0"
port = 8081

[command]
signing_key_path = "/app/config/command-signing.key"
"""


def test_ports_and_service_hosts_are_read():
    config = parse_backend_config(CONFIG)
    assert (config.server_port, config.ws_port) == (8080, 8081)
    assert (config.database.host, config.database.port) == ("viworks-postgres", 5432)
    assert (config.redis.host, config.redis.port) == ("viworks-redis", 6379)
    assert "agent_management" in config.sections


def test_urls_show_only_masked_passwords_and_every_secret_is_listed():
    config = parse_backend_config(CONFIG)
    assert config.database.redacted == "postgresql://viworks:***@viworks-postgres:5432/viworks_agent"
    assert str(config.redis) == "redis://:***@viworks-redis:6379/0"
    assert set(config.secrets) == {"pg-Secret-9", "rd-Secret-7", "jwt-Secret-123456"}
    shown = repr(config) + str(config.database) + repr(config.database) + str(config.redis)
    for secret in config.secrets:
        assert secret not in shown
    assert "/app/config/command-signing.key" not in config.secrets  # a path to a key is not a secret


def test_a_snapshot_keeps_the_secrets_as_keyed_hashes_and_compares_urls_by_their_parts():
    hasher = SecretHasher(b"k" * 32)
    recorded = RecordedConfig.of(parse_backend_config(CONFIG), hasher)
    assert RecordedConfig.from_json(recorded.to_json()) == recorded
    assert recorded.database.password == hasher("pg-Secret-9")
    assert sorted(recorded.secrets) == sorted(hasher(s) for s in ("pg-Secret-9", "rd-Secret-7", "jwt-Secret-123456"))
    canonical = dict(recorded.canonical("config"))
    assert canonical["config.database.host"].value == "viworks-postgres"
    assert not any(path.endswith(".redacted") for path in canonical)  # the masked text says nothing more
    assert "Secret" not in repr(recorded.to_json())


def test_a_url_without_password_or_user_stays_as_it_is():
    assert ServiceUrl.parse("redis://viworks-redis:6379/0").redacted == "redis://viworks-redis:6379/0"
    assert ServiceUrl.parse("postgresql://viworks@db/x").redacted == "postgresql://viworks@db/x"


def test_missing_sections_read_as_none_and_wrong_types_as_found():
    config = parse_backend_config('[server]\nport = "8080"\n')
    assert config.server_port == "8080" and config.ws_port is None
    assert config.database is None and config.redis is None


def test_broken_files_raise_without_quoting_their_content():
    with pytest.raises(BackendConfigError) as broken:
        parse_backend_config('[database]\nurl = "postgresql://u:pw-Leak-1@db/x\n')
    assert "pw-Leak-1" not in str(broken.value)
    with pytest.raises(BackendConfigError, match=r"\[database\]\.url"):
        parse_backend_config("[database]\nurl = 5\n")
    with pytest.raises(BackendConfigError, match=r"\[redis\]\.url"):
        parse_backend_config('[redis]\nurl = "not a url"\n')
