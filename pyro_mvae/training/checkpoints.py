"""Checkpoints of a run: ``best.pt`` (the best validation epoch) and ``last.pt`` (where training
stands, for resuming). Both hold only tensors, numbers, strings, lists and dicts, are written
atomically, and are read back by :func:`load` (``torch.load(weights_only=True)`` with checks).

``last.pt`` adds to the model and optimiser what a bit-identical resume needs: the progress
counters and early-stopping state (:class:`Progress`), the random number generators of every
rank (torch, its CUDA devices, numpy, Python) and the running averages that Pyro's
decaying-average baseline keeps in its global parameter store.
"""

import pickle
import random
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyro
import torch

from pyro_mvae import __version__
from pyro_mvae.errors import RunError
from pyro_mvae.storage import save_torch_atomic

CHECKPOINT_FORMAT = 3
"""The format this release writes. Format 1 is best.pt only (0.1.0 before resume existed), 2
best.pt and last.pt, 3 the guide's encoder split into ``body`` and ``head`` (read from 1 and
2 by :func:`upgrade_model`)."""

CHECKPOINT_KEYS = {"format", "version", "epoch", "val_elbo", "beta", "tau", "config", "model", "optimizer"}
RESUME_KEYS = {"progress", "rng", "baselines"}
"""What ``last.pt`` adds to every checkpoint's keys (format 2)."""

BASELINE_PREFIX = "__baseline"
"""Names under which Pyro's TraceGraph_ELBO keeps decaying-average baselines in its param store."""


@dataclass
class Progress:
    """Where a run stands; saved in ``last.pt``.

    epoch: the epoch in progress (or the next one, when ``batch`` is 0). batch: batches of that
    epoch already stepped. step: optimiser steps taken in all. epoch_loss: −ELBO summed over the
    epoch's batches so far (nats). best_val_elbo / best_epoch: early-stopping state.
    skipped_steps: steps skipped for a non-finite loss or gradient. train_seconds: wall time
    spent training, over every session of the run. labelled_loss / labelled_images: the labelled
    steps' loss summed over the epoch so far (nats) and the labelled images it covers
    (semi-supervised runs).
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    epoch_loss: float = 0.0
    best_val_elbo: float = -float("inf")
    best_epoch: int = -1
    skipped_steps: int = 0
    train_seconds: float = 0.0
    labelled_loss: float = 0.0
    labelled_images: int = 0


def _checkpoint(vae, optimizer, config: dict) -> dict:
    return {"format": CHECKPOINT_FORMAT, "version": __version__, "beta": vae.beta, "tau": vae.tau,
            "config": config, "model": vae.state_dict(), "optimizer": optimizer.state_dict()}


def save_best(path: Path, vae, optimizer, config: dict, epoch: int, val_elbo: float) -> None:
    """Atomically write the model, optimiser, config and schedules of the best epoch."""
    save_torch_atomic(_checkpoint(vae, optimizer, config) | {"epoch": epoch, "val_elbo": val_elbo}, path)


def save_last(path: Path, vae, optimizer, config: dict, progress: Progress, rng: list) -> None:
    """Atomically write everything a resume needs; ``rng``: one :func:`rng_state` per rank."""
    save_torch_atomic(_checkpoint(vae, optimizer, config) | {
        "epoch": progress.epoch, "val_elbo": progress.best_val_elbo, "progress": asdict(progress),
        "rng": rng, "baselines": baseline_state()}, path)


def rng_state() -> dict:
    """This process's generators as tensors and numbers (``weights_only``-loadable)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),  # device: host RNG
                        "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured, from whichever device the checkpoint was loaded to."""
    torch.set_rng_state(state["torch"].cpu())
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].cpu().numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].cpu().tolist()), python["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def baseline_state() -> dict:
    """Pyro's decaying-average baselines (global param store): name -> tensor."""
    store = pyro.get_param_store()
    return {name: store[name].detach().clone() for name in store.keys() if name.startswith(BASELINE_PREFIX)}


def set_baseline_state(state: dict) -> None:
    """Replace the decaying-average baselines by ``state`` (empty: a fresh run starts from none)."""
    store = pyro.get_param_store()
    for name in [n for n in store.keys() if n.startswith(BASELINE_PREFIX)]:
        del store[name]
    for name, value in state.items():
        store[name] = value


def load(path: Path, device=None, resume: bool = False, into=None) -> dict:
    """Read a checkpoint: ``torch.load(path, weights_only=True)`` with checks of its keys and
    version, so a file that would run code when unpickled is refused without running it. The one
    reader of checkpoints (training, resuming, evaluating, the experiments).

    ``resume``: also require what a resume needs (a ``last.pt``). ``into``: a VAE to load the
    parameters into, with the checkpoint's τ and β = 1.

    Raises:
        RunError: for a missing, truncated or tampered file, missing keys, another major
            version of pyro_mvae, or parameters that do not fit ``into``; the message names the
            file and what differs.
    """
    path = Path(path)
    ckpt = _read(path, device)
    expected = CHECKPOINT_KEYS | (RESUME_KEYS if resume else set())
    missing = expected - set(ckpt) if isinstance(ckpt, dict) else expected
    if missing:
        raise RunError(f"checkpoint {path} lacks {sorted(missing)}: not a pyro_mvae checkpoint of "
                       f"format {CHECKPOINT_FORMAT} (runs of 0.1.0 before resuming existed have no "
                       "last.pt and cannot be resumed)")
    if str(ckpt["version"]).split(".")[0] != __version__.split(".")[0]:
        raise RunError(f"checkpoint {path} was written by pyro_mvae {ckpt['version']}, this is "
                       f"{__version__}: install a {ckpt['version'].split('.')[0]}.x release to read it")
    ckpt["config"] = as_trained(ckpt["config"])
    if ckpt["format"] < 3:
        ckpt["model"] = upgrade_model(ckpt["model"])
    if into is not None:
        try:
            into.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise RunError(f"checkpoint {path} does not match the model of its config: {err}") from err
        into.beta, into.tau = 1.0, ckpt["tau"]
    return ckpt


def as_trained(config: dict) -> dict:
    """``config`` with the settings added after it was written set to what its run trained with:
    a marginal-mixture guide without ``estimator`` (0.1.0) used the implicit gradient."""
    guide = config.get("guide", {})
    if guide.get("name") == "marginal_mixture" and "estimator" not in guide:
        return config | {"guide": guide | {"estimator": "implicit"}}
    return config


def upgrade_model(state: dict) -> dict:
    """A model state of checkpoint formats 1 and 2 with the keys of format 3 (same tensors, same
    order, so a saved optimiser state still fits). The guide's ``encoder.net`` was one network
    x -> its parameters; it is now ``encoder.body`` (x -> features) and ``encoder.head`` (the last
    Linear). mlp: ``net.<i>`` -> ``body.mlp.<i>``, the last layer -> ``head``; conv:
    ``net.body.<i>`` -> ``body.convs.<i>``, ``net.head.<i>`` as mlp's."""
    mlp = "encoder.net.head." if any(k.startswith("encoder.net.body.") for k in state) else "encoder.net."
    last = max((int(k[len(mlp):].split(".")[0]) for k in state if k.startswith(mlp)), default=None)
    out = {}
    for key, value in state.items():
        if key.startswith("encoder.net.body."):
            key = "encoder.body.convs." + key[len("encoder.net.body."):]
        elif key.startswith(mlp):
            index, rest = key[len(mlp):].split(".", 1)
            key = f"encoder.head.{rest}" if int(index) == last else f"encoder.body.mlp.{index}.{rest}"
        out[key] = value
    return out


def _read(path: Path, device):
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}: the run did not finish an epoch, or the file "
                       "was moved; train again or point at the right run directory")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise RunError(f"checkpoint {path} is corrupted or not a pyro_mvae checkpoint ({err}); "
                       "restore it or train again") from err


RUN_FILES = ("config.yaml", "best.pt", "last.pt")
"""A directory holding any of these holds a run."""


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run (any of :data:`RUN_FILES`): a new run may start in a
    directory that does not exist or holds none (a sweep's launcher creates each job's)."""
    return any((Path(run_dir) / name).exists() for name in RUN_FILES)
