"""The one way pgha writes a file that holds a secret on the control machine (the secrets
file, the CA's and the hosts' keys): created with its mode from the first byte, in a
directory only its owner enters, then renamed over the old one (never half written)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    os.chmod(temporary, mode)  # os.open's mode is masked by the umask
    os.replace(temporary, path)
