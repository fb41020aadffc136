"""Reading a unit's properties from ``systemctl show``."""

from viworks_verify.gateway.systemd_unit import UnitProperties

SHOW = """LoadState=loaded
ActiveState=active
NRestarts=2
ExecStart={ path=/opt/viworks/viworks-gateway-agent ; argv[]=/opt/viworks/viworks-gateway-agent ; ignore_errors=no }
EnvironmentFiles=/opt/viworks/agent/.env (ignore_errors=no)
EnvironmentFiles=/etc/viworks/extra.env (ignore_errors=yes)
"""


def test_properties_programs_and_every_environment_file():
    unit = UnitProperties.parse("viworks-gateway-agent.service", SHOW)
    assert unit.get("ActiveState") == "active" and unit.n_restarts == 2
    assert unit.exec_start_path == "/opt/viworks/viworks-gateway-agent"
    assert unit.environment_files == ["/opt/viworks/agent/.env", "/etc/viworks/extra.env"]


def test_missing_or_odd_values_are_not_errors():
    unit = UnitProperties.parse("x.service", "NRestarts=[not set]\nExecStart=\n")
    assert unit.n_restarts == 0 and unit.exec_start_path is None and unit.environment_files == []
