"""The inventory's hosts and how they are reached: the SSH options every read of a host shares."""

from __future__ import annotations

from pathlib import Path

from viworks_verify.target.inventory import Inventory


def test_a_backend_hosts_engine_socket_is_forwarded_over_its_own_shared_ssh_connection(tmp_path):
    (tmp_path / "hosts.ini").write_text(
        "[backend]\nbackend-1 ansible_host=203.0.113.10 ansible_user=deploy ansible_port=2200 ansible_become=true\n"
        "[gateway]\ngw-site1-01\n"
    )
    (tmp_path / "ssh_config").write_text("Host *\n    ServerAliveInterval 10\n")
    inventory = Inventory(tmp_path / "hosts.ini", tmp_path / "ssh_config", tmp_path / "ssh", 5)
    backend = inventory.group("backend")[0]
    assert backend.id == "ssh://backend-1" and backend.become
    command = inventory.ssh_forward_command(backend, Path("/run/x/docker.sock"), "/var/run/docker.sock")
    # The connection testinfra opened for this host (same config, user, port and control path) carries the forwarding.
    assert command[:3] == ["ssh", "-F", str(tmp_path / "ssh_config")]
    assert ["-o", "User=deploy"] == command[3:5] and ["-o", "Port=2200"] == command[5:7]
    assert f"ControlPath={tmp_path / 'ssh' / '%C'}" in command
    assert command[-5:-3] == ["-O", "forward"]  # added to the running master, not a second connection
    assert command[-3:] == ["-L", "/run/x/docker.sock:/var/run/docker.sock", "203.0.113.10"]


def test_hosts_behind_a_bastion_keep_their_jump_host_in_every_ssh_command(tmp_path):
    (tmp_path / "hosts.ini").write_text(
        "[backend]\nbackend-1 ansible_host=backend-1.example.com ansible_ssh_common_args='-J ops@jump.example.com'\n"
        "[gateway]\ngw-site1-01 ansible_host=gw-site1-01.example.com\n"
        "gw-site2-01 ansible_ssh_common_args='-o ProxyJump=none'\n"
        "gw-site3-01 ansible_ssh_extra_args='-o ProxyJump=ops@other-jump.example.com:2222'\n"
    )
    inventory = Inventory(tmp_path / "hosts.ini", None, tmp_path / "ssh", 5, proxy_jump="ops@bastion.example.com")
    jumps = {host.name: host.jump_host for host in inventory.hosts}
    assert jumps == {
        "backend-1": "ops@jump.example.com",  # the inventory's own wins over the target's
        "gw-site1-01": "ops@bastion.example.com",  # the target's ssh_proxy_jump
        "gw-site2-01": None,  # ProxyJump=none: reached directly
        "gw-site3-01": "ops@other-jump.example.com:2222",
    }
    backend = inventory.group("backend")[0]
    command = inventory.ssh_forward_command(backend, Path("/run/x/docker.sock"), "/var/run/docker.sock")
    assert command[command.index("-J") + 1] == "ops@jump.example.com"  # the engine's forwarding too
