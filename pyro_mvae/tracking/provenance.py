"""What a run directory records about how it was made (``environment.json``)."""

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from pyro_mvae import __version__

LIBRARIES = ("torch", "pyro-ppl", "numpy", "scipy", "arviz", "hydra-core", "omegaconf", "scikit-learn")


def library_versions() -> dict:
    """Installed versions of the libraries a run's numbers depend on (``None``: not installed)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> dict | None:
    """The commit of the checkout this package runs from, and whether it has local changes;
    ``None`` outside a git checkout (an installed wheel) or without git."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain"], capture_output=True,
                                text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def environment(device: torch.device, processes: int = 1) -> dict:
    """Package and library versions, device, threads, ATen's CPU kernels (``AVX2``, ``AVX512``, ...),
    machine, command line and git commit."""
    return {"pyro_mvae": __version__, "python": platform.python_version(), "libraries": library_versions(),
            "device": str(device), "processes": processes, "torch_threads": torch.get_num_threads(),
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "machine": f"{platform.system()} {platform.machine()} {platform.processor() or ''}".strip(),
            "command": sys.argv, "git": git_commit()}
