"""Commands run on a node from the control machine, over SSH as pyinfra reaches it, for the
CLI's commands that act on the nodes (`pgha backup`, `pgha restore`, `pgha reinit`, the
archiving line of `pgha status`). OpenSSH is given every ssh_* host key pyinfra honours that
it can honour too (SSH_OPTIONS); the settings check refuses the others (REFUSED) before
anything connects. A user other than root runs them through `sudo -n`, as pyinfra's _sudo
does."""

from __future__ import annotations

import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

from pgha.cluster import Node
from pgha.errors import RemoteError

# ssh_* host data -> the OpenSSH arguments saying the same (value -> list of arguments)
SSH_OPTIONS = {
    "ssh_port": lambda v: ["-p", str(v)],
    "ssh_key": lambda v: ["-i", str(v)],
    "ssh_config_file": lambda v: ["-F", str(v)],
    "ssh_known_hosts_file": lambda v: ["-o", f"UserKnownHostsFile={v}"],
    "ssh_strict_host_key_checking": lambda v: ["-o", f"StrictHostKeyChecking={v}"],
    "ssh_allow_agent": lambda v: [] if v else ["-o", "IdentityAgent=none"],
    "ssh_look_for_keys": lambda v: [] if v else ["-o", "IdentitiesOnly=yes"],
    "ssh_forward_agent": lambda v: ["-A" if v else "-a"],
    "ssh_connect_retries": lambda v: ["-o", f"ConnectionAttempts={int(v) + 1}"],
}
# read elsewhere (the destination, the login) or about transfers and retry pauses only
USED_OTHERWISE = {"ssh_hostname", "ssh_user", "ssh_file_transfer_protocol", "ssh_connect_retry_min_delay",
                  "ssh_connect_retry_max_delay"}
# what OpenSSH run by a tool cannot be given: refused by the settings check, with the way out
REFUSED = {
    "ssh_password": "a password (expected a key, as ssh_key: pgha's own SSH commands cannot type one)",
    "ssh_key_password": "a key's passphrase (expected the key loaded in an ssh-agent)",
    "ssh_paramiko_connect_kwargs": "paramiko's own arguments (expected ssh_* keys or an ssh_config_file)",
}


def ssh_command(node: Node, command: str) -> list[str]:
    ssh = node.ssh
    user = ssh.get("ssh_user") or "root"
    args = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    for key, value in ssh.items():
        if key in SSH_OPTIONS and value is not None:
            args += SSH_OPTIONS[key](value)
    if user != "root":
        command = f"sudo -n sh -c {shlex.quote(command)}"
    return [*args, f"{user}@{ssh.get('ssh_hostname') or node.address}", command]


def run(node: Node, command: str, timeout: float = 600, check: bool = True, stdin: str | None = None) -> str:
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
