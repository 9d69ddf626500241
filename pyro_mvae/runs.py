"""Rebuild a trained model from its run directory: saved config plus best checkpoint, nothing else."""

import json
import os
from pathlib import Path

import torch

from pyro_mvae.compose import build_from_config
from pyro_mvae.errors import RunError, UnknownNameError
from pyro_mvae.training import checkpoints
from pyro_mvae.training.checkpoints import holds_run


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when available).

    Raises:
        ValueError: for another name, or ``cuda`` without a CUDA device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto, got '{name}'")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device=cuda, but {cuda_problem()}")
    return torch.device(name)


CPU_KERNELS = "avx2"
"""The widest vector kernels ATen's element-wise ops use when ``pyro-mvae`` runs (the environment
variable ``ATEN_CPU_CAPABILITY``; a value the user set wins). On an AVX512 CPU ATen picks its
512-bit kernels, whose ``log1p``, log-sigmoid and softplus (the Bernoulli log-density, the guide's
scale) were measured 3-6x slower than the AVX2 ones on the 2-core AMD EPYC VM (a log-sigmoid of
100x784 values on one thread: 0.75 ms against 0.21 ms, in a one-off timing), the cause of
inductor's vector width too (:data:`pyro_mvae.infer.compiled.AVX512_SIMDLEN`); whole MNIST
epochs gained a few percent (``experiments/bench_epoch.py`` with and without it,
docs/benchmarks.md). The matrix products (MKL, oneDNN) choose their own instructions and are not
affected. On a CPU without AVX512 it changes nothing."""


def prefer_cpu_kernels() -> str:
    """Set ``ATEN_CPU_CAPABILITY`` to :data:`CPU_KERNELS` unless it is set, before torch runs its
    first operation, and return the kernels in force (``"AVX2"``, ``"AVX512"``, ...). ATen fixes
    its choice once per process: where an operation already ran (``pyro_mvae.cli.main`` called from
    a Python program), the variable is taken back, so that the processes this one starts (a sweep's
    jobs) use the same kernels as it and their runs stay equal to the same runs made in it. The
    command line calls it first thing; a Python program that wants AVX2 sets the variable itself
    (``ATEN_CPU_CAPABILITY=avx2 python train.py``)."""
    if "ATEN_CPU_CAPABILITY" in os.environ:
        return torch.backends.cpu.get_cpu_capability()
    os.environ["ATEN_CPU_CAPABILITY"] = CPU_KERNELS
    in_force = torch.backends.cpu.get_cpu_capability()  # fixes the choice if no operation has yet
    if in_force.startswith("AVX512"):  # chosen before the variable was set: children keep the same
        del os.environ["ATEN_CPU_CAPABILITY"]
    return in_force


def cuda_problem() -> str:
    """Why torch sees no CUDA device, in words with the fix: a CPU-only build of torch, or a CUDA
    build that finds no GPU (none in the machine, no driver, or ``CUDA_VISIBLE_DEVICES`` hiding it)."""
    if torch.version.cuda is None:
        return (f"this torch ({torch.__version__}) is a CPU-only build: use device=cpu, or install a CUDA build "
                "of torch (https://pytorch.org/get-started/locally/)")
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={hidden!r} hides the others)" if hidden is not None else ""
    return (f"this torch (CUDA {torch.version.cuda}) sees no GPU{where}: this machine has none or its driver "
            "is not loaded (nvidia-smi tells); use device=cpu or device=auto")


def check_run_dir(run_dir: Path) -> None:
    """Raises RunError unless ``run_dir`` is a directory that ``pyro-mvae train`` wrote."""
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a directory: give the run directory that pyro-mvae train "
                       "wrote (printed at its end, or its run_dir=...)")
    if not holds_run(run_dir):
        raise RunError(f"{run_dir} is not a pyro_mvae run directory (no config.yaml, best.pt or "
                       "last.pt): give the directory that pyro-mvae train wrote")


def _missing_plugin(run_dir: Path, err: UnknownNameError) -> Exception:
    """The error for a run whose component is not registered here: with the package that
    provided it, when the run's ``environment.json`` recorded one."""
    record = run_dir / "environment.json"
    plugins = json.loads(record.read_text()).get("plugins", {}) if record.is_file() else {}
    for key, package in plugins.items():
        kind, name = key.split(":", 1)
        if f"{kind} '{name}'" in str(err):
            return RunError(f"{run_dir} was trained with {kind} '{name}' from the package {package}, which is "
                            f"not installed here: pip install {package.split()[0]}")
    return err


def load_run(run_dir: Path, device="cpu", encoder=None, decoder=None):
    """The model of a run at its best checkpoint, with its config, checkpoint and dataset.

    Returns ``(vae, config, checkpoint, data)``: ``vae`` on ``device`` in eval mode (call
    ``vae.train()`` to train it further) with β = 1 and the checkpoint's τ; ``data`` loaded from
    the config's data group, on ``device``. A run trained on the user's own networks
    (``net: own``) needs the same ``encoder`` body and ``decoder`` modules (their weights are the
    checkpoint's once loaded).

    Raises:
        pyro_mvae.errors.RunError: for a directory that is not a run, and see
            :func:`pyro_mvae.training.checkpoints.load`.
        pyro_mvae.errors.DataError: when the run's dataset cannot be loaded.
        pyro_mvae.errors.RunError: a component that is not registered here, naming the package
            that provided it when the run recorded one (else ``UnknownNameError``).
        pyro_mvae.errors.ConfigError: a ``net: own`` run without ``encoder`` and ``decoder``.
    """
    check_run_dir(Path(run_dir))
    path = Path(run_dir) / "best.pt"
    config = checkpoints.load(path, device)["config"]
    try:
        data, vae = build_from_config(config, device, encoder, decoder)
    except UnknownNameError as err:
        raise _missing_plugin(Path(run_dir), err) from err
    ckpt = checkpoints.load(path, device, into=vae)
    return vae.eval(), config, ckpt, data
