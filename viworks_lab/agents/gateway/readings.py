"""Readings of the host for hello, telemetry and the built-in verbs."""

from __future__ import annotations

import logging
import time
from typing import Any

from viworks_lab.agents import host_readings
from viworks_lab.agents.gateway.config import WATCHED_SERVICES, Config
from viworks_verify.wire import commands, protocol

log = logging.getLogger("viworks-gateway-agent")


class HostInfo:
    """Host facts and readings the agent reports."""

    def __init__(self, config: Config, start_time: float) -> None:
        self.config = config
        self.start_time = start_time
        self.cpu = host_readings.CpuMeter()

    def watched_services(self) -> list[str]:
        names = list(WATCHED_SERVICES)
        engine = self.config.container_engine.lower()
        if engine in host_readings.ENGINE_PS:
            names.append(engine)
        return names

    def hello_payload(self) -> dict[str, Any]:
        return {
            "agent_id": self.config.agent_id,
            "site": self.config.site,
            "agent_version": self.config.agent_version,
            "os": host_readings.read_os_pretty_name(),
            "kernel": host_readings.kernel_release(),
            "container_engine": self.config.container_engine,
            "supported_verbs": list(commands.VERB_ARGS),
            "start_time": protocol.rfc3339(self.start_time),
            "feature_flags": {"exec_enable": self.config.exec_enabled, "inbound_http": self.config.inbound_http},
        }

    async def telemetry_payload(self) -> dict[str, Any]:
        if self.config.placeholder_telemetry:
            return {
                "agent_id": self.config.agent_id,
                "site": self.config.site,
                "ts": protocol.rfc3339(),
                "uptime_s": 0,
                "cpu_pct": 0,
                "mem": {"total_mb": 0, "used_mb": 0},
                "loadavg": [0, 0, 0],
                "disk": [],
                "services": {},
                "containers": [],
                "version": self.config.agent_version,
            }
        cpu = await self.cpu.read()
        total_mb, used_mb = host_readings.memory_mb(host_readings.read_meminfo())
        services = await host_readings.service_states(self.watched_services())
        _, containers = await host_readings.list_engine_containers(self.config.container_engine)
        return {
            "agent_id": self.config.agent_id,
            "site": self.config.site,
            "ts": protocol.rfc3339(),
            "uptime_s": host_readings.read_uptime(),
            "cpu_pct": cpu,
            "mem": {"total_mb": total_mb, "used_mb": used_mb},
            "loadavg": host_readings.read_loadavg(),
            "disk": host_readings.read_disk_usage(),
            "services": services,
            "containers": containers,
            "version": self.config.agent_version,
        }

    async def system_health(self) -> dict[str, Any]:
        cpu = await host_readings.sample_cpu_percent(0.3)
        return {
            "cpu_usage_percent": cpu,
            "memory_usage_percent": host_readings.memory_percent(host_readings.read_meminfo()),
            "disk_usage_percent": host_readings.root_disk_used_pct(),
            "load_average": host_readings.read_loadavg(),
            "uptime_seconds": host_readings.read_uptime(),
        }

    async def service_status(self) -> dict[str, Any]:
        return {"services": await host_readings.service_states(self.watched_services())}

    async def containers(self) -> dict[str, Any]:
        available, containers = await host_readings.list_engine_containers(self.config.container_engine)
        return {"engine": self.config.container_engine, "available": available, "containers": containers}

    async def monitoring_data(self) -> dict[str, Any]:
        data = await self.system_health()
        total_mb, used_mb = host_readings.memory_mb(host_readings.read_meminfo())
        data.update(
            {
                "agent_id": self.config.agent_id,
                "site": self.config.site,
                "memory_mb": {"total": total_mb, "used": used_mb},
                "disks": host_readings.read_disk_usage(),
                "network": host_readings.read_net_dev(),
                "services": await host_readings.service_states(self.watched_services()),
                "containers": (await self.containers())["containers"],
                "agent_version": self.config.agent_version,
                "agent_uptime_seconds": round(time.time() - self.start_time, 1),
            }
        )
        return data

    def users(self) -> dict[str, Any]:
        return {"users": host_readings.read_passwd_users()}
