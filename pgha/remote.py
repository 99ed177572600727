"""Commands run on a node from the control machine, over SSH as pyinfra reaches it (the
host's ssh_* data: the lab's key and known_hosts, or yours), for the CLI's commands that act
on the nodes (`pgha backup`, `pgha restore`, `pgha reinit`). A user other than root runs
them through `sudo -n`, as pyinfra's _sudo does."""

from __future__ import annotations

import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

from pgha.errors import RemoteError


def ssh_command(node, command: str) -> list[str]:
    ssh = node.ssh
    user = ssh.get("ssh_user") or "root"
    args = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    if ssh.get("ssh_key"):
        args += ["-i", str(ssh["ssh_key"])]
    if ssh.get("ssh_known_hosts_file"):
        args += ["-o", f"UserKnownHostsFile={ssh['ssh_known_hosts_file']}"]
    if ssh.get("ssh_strict_host_key_checking"):
        args += ["-o", f"StrictHostKeyChecking={ssh['ssh_strict_host_key_checking']}"]
    if ssh.get("ssh_port"):
        args += ["-p", str(ssh["ssh_port"])]
    if user != "root":
        command = f"sudo -n sh -c {shlex.quote(command)}"
    return [*args, f"{user}@{ssh.get('ssh_hostname') or node.address}", command]


def run(node, command: str, timeout: float = 600, check: bool = True, stdin: str | None = None) -> str:
    """``command`` (a shell line) on ``node``; its standard output. A failure (when
    ``check``) is a RemoteError naming the node and carrying the command's own message."""
    try:
        proc = subprocess.run(ssh_command(node, command), input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{node.name}: no answer within {timeout:.0f}s to: {command}") from None
    if check and proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RemoteError(f"{node.name}: {command.split(' -- ')[-1][:120]} failed ({proc.returncode}): "
                          f"{' / '.join(message[-3:]) or 'no message'}")
    return proc.stdout


def run_on_each(nodes, command_of, timeout: float = 600) -> dict[str, str]:
    """``command_of(node)`` on every node at once; their outputs by node name (the first
    failure is raised once all have finished)."""
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        futures = {node.name: pool.submit(run, node, command_of(node), timeout) for node in nodes}
        return {name: future.result() for name, future in futures.items()}
