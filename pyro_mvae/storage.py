"""Atomic writes: a file on disk is always either its previous version or its complete new one."""

import io
import json
import os
import tempfile
from pathlib import Path

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""The mode an ordinary file gets under this process's umask (0644 under the usual 022):
``mkstemp``'s private 0600 would hide a run from colleagues on a shared machine."""


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``
    (mode :data:`FILE_MODE`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def save_torch_atomic(obj, path: Path) -> None:
    """Atomically ``torch.save`` a checkpoint (plain dicts, numbers, strings and tensors)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def append_jsonl(path: Path, record: dict) -> None:
    """Add one JSON line by atomically rewriting the file: old lines plus the new one, or nothing
    new; never a half-written line."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    write_bytes_atomic(path, old + (json.dumps(record) + "\n").encode())


def rewrite_jsonl(path: Path, keep) -> None:
    """Atomically keep only the lines whose record satisfies ``keep(record)`` (no file: no-op)."""
    path = Path(path)
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line and keep(json.loads(line))]
        write_bytes_atomic(path, "".join(line + "\n" for line in lines).encode())
