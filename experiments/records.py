"""Measurement records the docs cite (docs/records/*.json, checked by docs/_ext/check_records.py).

A benchmark or study script writes its numbers with :func:`write_record`; the record carries the
command that measured them, the release and git commit, the date and the machine, so a number
quoted in the docs can be traced to how it was made and measured again.
"""

import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pyro_mvae


def cpu() -> str:
    """The processor's model name (Linux), else the platform's word for it."""
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.exists() else []
    return names[0] if names else platform.processor() or platform.machine()


def commit() -> str:
    """The short git commit of the checkout the scripts run from, or ``unknown``."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent)
    return done.stdout.strip() or "unknown"


def minus(value: float, spec: str) -> str:
    """``value`` formatted by ``spec`` with a typographic minus, as the docs write numbers."""
    return format(value, spec).replace("-", "−")


def region(lines: list[str]) -> str:
    """Table lines as a records region of a page (``<!-- records: every number -->`` ... ``<!-- records:
    end -->``): the check then fails on any number in them without its record marker."""
    return "\n".join(["<!-- records: every number -->", *lines, "<!-- records: end -->"])


def write_record(out: str, values: dict, how: str, command: str | None = None) -> dict:
    """Write ``{"id", "command", "release", "date", "machine", "values"}`` to ``out`` (its stem is
    the id) and return it. ``how``: how the machine was used (threads, what ran beside); ``command``:
    the measuring command (default: this script's command line)."""
    record = {"id": Path(out).stem, "command": command or "python " + shlex.join(sys.argv),
              "release": f"{pyro_mvae.__version__} (commit {commit()})", "date": time.strftime("%Y-%m-%d"),
              "machine": f"{cpu()}, {platform.machine()}, {how}", "values": values}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
    return record
