"""Rebuild a trained model from its run directory: saved config plus best checkpoint, nothing else."""

import pickle
import zipfile
from pathlib import Path

import torch

from pyro_mvae import __version__
from pyro_mvae.checkpoints import CHECKPOINT_FORMAT
from pyro_mvae.registry import build_dataset, build_vae

CHECKPOINT_KEYS = {"format", "version", "epoch", "val_elbo", "beta", "tau", "config", "model", "optimizer"}
RESUME_KEYS = {"progress", "rng", "baselines"}
"""What ``last.pt`` adds to every checkpoint's keys (format 2)."""


class RunError(ValueError):
    """A run directory that cannot be used: missing, corrupted or from an incompatible version."""


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
        raise ValueError("device=cuda, but torch sees no CUDA device: use device=cpu, or "
                         "install a CUDA build of torch")
    return torch.device(name)


def read_checkpoint(path: Path, device=None, require_resume_state: bool = False) -> dict:
    """``torch.load(path, weights_only=True)`` with checks of its keys and version: a file that
    would run code when unpickled is refused without running it.

    ``require_resume_state``: also require what a resume needs (a ``last.pt``).

    Raises:
        RunError: for a missing, truncated or tampered file, missing keys, or another major
            version of pyro_mvae; the message names the file and what differs.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}: the run did not finish an epoch, or the file "
                       "was moved; train again or point at the right run directory")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise RunError(f"checkpoint {path} is corrupted or not a pyro_mvae checkpoint ({err}); "
                       "restore it or train again") from err
    expected = CHECKPOINT_KEYS | (RESUME_KEYS if require_resume_state else set())
    missing = expected - set(ckpt) if isinstance(ckpt, dict) else expected
    if missing:
        raise RunError(f"checkpoint {path} lacks {sorted(missing)}: not a pyro_mvae checkpoint of "
                       f"format {CHECKPOINT_FORMAT} (runs of 0.1.0 before resuming existed have no "
                       "last.pt and cannot be resumed)")
    if str(ckpt["version"]).split(".")[0] != __version__.split(".")[0]:
        raise RunError(f"checkpoint {path} was written by pyro_mvae {ckpt['version']}, this is "
                       f"{__version__}: install a {ckpt['version'].split('.')[0]}.x release to read it")
    return ckpt


def load_run(run_dir: Path, device="cpu"):
    """The model of a run at its best checkpoint, with its config, checkpoint and dataset.

    Returns ``(vae, config, checkpoint, data)``: ``vae`` on ``device`` with β = 1 and the
    checkpoint's τ; ``data`` loaded from the config's data group, on ``device``.

    Raises:
        RunError: see :func:`read_checkpoint`; also for a checkpoint that does not fit the model
            its own config describes.
        pyro_mvae.likelihoods.DataError: when the run's dataset cannot be loaded.
    """
    run_dir = Path(run_dir)
    ckpt = read_checkpoint(run_dir / "best.pt", device)
    config = ckpt["config"]
    data = build_dataset(config["data"], device)
    vae = build_vae(data.data_dim, config["prior"], config["guide"], config["likelihood"],
                    config["net"]).to(device)
    try:
        vae.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise RunError(f"checkpoint {run_dir / 'best.pt'} does not match the model of its "
                       f"config: {err}") from err
    vae.beta, vae.tau = 1.0, ckpt["tau"]
    return vae, config, ckpt, data
