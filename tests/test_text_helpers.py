"""Environment files, redaction of secrets, and reading the Debian mirror from apt sources."""

from viworks_lab.apt_sources import debian_source_lines
from viworks_verify.core.envfile import is_secret_name, parse_env
from viworks_verify.core.redaction import Redactor


def test_env_files_parse_like_systemd_reads_them():
    text = '# comment\nA=1\nB="two words"\nexport C=3\n\n; other comment\nD=\nE=x=y\n'
    assert parse_env(text) == {"A": "1", "B": "two words", "C": "3", "D": "", "E": "x=y"}


def test_secret_names_but_not_paths_to_keys():
    assert is_secret_name("VIWORKS_JWT_SECRET") and is_secret_name("API_TOKEN") and is_secret_name("DB_PASSWORD")
    assert not is_secret_name("VIW_AGENT_KEY_PATH") and not is_secret_name("VIW_AGENT_ID")


def test_redaction_masks_registered_values_url_passwords_keys_and_bearers():
    redactor = Redactor()
    redactor.register("s3cr3t-value", "abc")  # too short to register: would mask ordinary text
    text = (
        "jwt s3cr3t-value; db postgresql://viworks:hunter2x@db:5432/x; abc\n"
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\nAuthorization: Bearer eyJ.a.b"
    )
    redacted = redactor.redact(text)
    for secret in ("s3cr3t-value", "hunter2x", "MIIB", "eyJ.a.b"):
        assert secret not in redacted
    assert "postgresql://viworks:***@db:5432/x" in redacted and "abc" in redacted


def test_debian_sources_are_read_from_both_formats(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://mirror.test/debian bookworm main\n# deb http://x.test/debian sid main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://vendor.test/apt\nSuites: bookworm\nComponents: main\n"
    )
    assert debian_source_lines("bookworm", tmp_path) == [
        "deb http://mirror.test/debian bookworm main",
        "deb http://mirror.test/debian-security bookworm-security main",
    ]


def test_a_verdict_is_one_line_host_first_expected_then_found():
    from viworks_verify.core.verdict import CheckFailed, fail, verdict_line

    assert verdict_line(
        "ssh://gw-1",
        "viworks-gateway-agent.service",
        expected="Restart=always",
        found="Restart=no",
        evidence="systemctl cat viworks-gateway-agent",
    ) == (
        "ssh://gw-1: viworks-gateway-agent.service: expected Restart=always; found Restart=no "
        "(systemctl cat viworks-gateway-agent)"
    )
    assert (
        verdict_line("agent://gw-1", expected="Online", found="Offline\nsince 10:00")
        == "agent://gw-1: expected Online; found Offline since 10:00"
    )
    try:
        fail("local://backend", expected="a", found="b")
    except CheckFailed as exc:
        assert isinstance(exc, AssertionError) and str(exc) == "local://backend: expected a; found b"
    else:
        raise AssertionError("fail() returned")
