"""The Prometheus daemons pgha runs, each Debian's own unit given pgha's arguments by a drop-in
(/etc/systemd/system/<unit>.service.d/pgha.conf): Debian's /etc/default file stays as
shipped, and the drop-in clears it so that only pgha's arguments count. Free of pyinfra."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from pgha.monitor.values import DIRECTORY, TLS_SERVICE, USER, WEB_CONFIG


@dataclass(frozen=True)
class Daemon:
    unit: str  # Debian's unit (and program) name
    package: str
    why: str
    arguments: tuple[str, ...]
    port_setting: str | None = None
    user: str = USER  # who it runs as: owns its copy of the certificate and reads its web config
    tls_service: str = TLS_SERVICE
    web_config: str = WEB_CONFIG
    environment: dict[str, str] = field(default_factory=dict)
    reloads: bool = True  # SIGHUP reads its configuration again (else a change restarts it)

    @property
    def program(self) -> str:
        return f"/usr/bin/{self.unit}"

    @property
    def dropin_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}.service.d/pgha.conf"


def web_arguments(daemon_port: int, web_config: str = WEB_CONFIG) -> tuple[str, ...]:
    return (f"--web.listen-address=:{daemon_port}", f"--web.config.file={web_config}")


def dropin(daemon: Daemon) -> dict:
    """The drop-in's values: its user, its environment, its command line."""
    return {
        "why": daemon.why,
        "user": daemon.user,
        "environment": [f"{key}={value}" for key, value in daemon.environment.items()],
        "exec_start": " ".join(shlex.quote(part) for part in (daemon.program, *daemon.arguments)),
    }


def config_path(name: str) -> str:
    return f"{DIRECTORY}/{name}"
