"""The SVI loop: β and τ schedules, validation ELBO, early stopping, checkpoints, metrics.

A run directory holds ``config.yaml`` (written by the caller), ``metrics.jsonl`` (one line per
epoch), ``best.pt`` (model state, optimiser state, config, schedules at the best validation
ELBO) and ``report.json`` (test IWAE log-likelihood and ELBO). Every file is written atomically.
"""

import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyro
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from pyro_mvae import __version__
from pyro_mvae.data import Dataset
from pyro_mvae.iwae import density_note, iwae_log_likelihood, mean_and_stderr
from pyro_mvae.objectives import build_objective
from pyro_mvae.schedules import TAU_SCHEDULES, linear_warmup
from pyro_mvae.distributed import SINGLE, Group
from pyro_mvae.steps import ELBOLoss, Stepper, has_differentiable_loss
from pyro_mvae.storage import append_jsonl, save_torch_atomic, write_bytes_atomic, write_json_atomic

CHECKPOINT_FORMAT = 1


@dataclass
class TrainerConfig:
    """Training and final-evaluation settings (Hydra group ``trainer/``).

    epochs: maximum number of epochs. batch_size: B (set from the data group by the CLI).
    lr: Adam learning rate.
    patience: stop after this many epochs without a better validation ELBO.
    beta_start, beta_end, warmup_epochs: β rises linearly from beta_start to beta_end.
    tau_start, tau_end, tau_anneal_epochs: τ decays from tau_start to tau_end (relaxed guides),
    tau_schedule ``exponential`` or ``linear``, updated every ``epoch`` or every ``step``.
    eval_samples: K of the final IWAE evaluation; eval_chunk_size: particles per chunk;
    eval_batch_size: test images per IWAE batch; eval_limit: score only the first test images
    (None: all). progress: show tqdm bars.
    fast_step: take the fast route of :class:`~pyro_mvae.steps.Stepper` where the objective
    allows it. validate: Pyro's distribution argument checks inside training steps (off: the
    data are checked once before training).
    """

    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    patience: int = 20
    beta_start: float = 0.01
    beta_end: float = 1.0
    warmup_epochs: int = 10
    tau_start: float = 1.0
    tau_end: float = 0.5
    tau_anneal_epochs: int = 50
    tau_schedule: str = "exponential"
    tau_update: str = "epoch"
    eval_samples: int = 5000
    eval_chunk_size: int = 500
    eval_batch_size: int = 100
    eval_limit: int | None = None
    progress: bool = True
    fast_step: bool = True
    validate: bool = False
    devices: int = 1

    def __post_init__(self):
        positive = ("epochs", "batch_size", "patience", "eval_samples", "eval_chunk_size",
                    "eval_batch_size", "devices")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "beta_start", "beta_end", "tau_start", "tau_end"):
            if not getattr(self, name) > 0:
                raise ValueError(f"trainer.{name} must be > 0, got {getattr(self, name)}")
        for name, choices in (("tau_schedule", TAU_SCHEDULES), ("tau_update", ("epoch", "step"))):
            if getattr(self, name) not in choices:
                raise ValueError(f"trainer.{name} must be one of {', '.join(choices)}, "
                                 f"got '{getattr(self, name)}'")

    def beta(self, epoch: int) -> float:
        return linear_warmup(epoch, self.beta_start, self.warmup_epochs, self.beta_end)

    def tau(self, epoch: float) -> float:
        """τ at a (fractional, for per-step updates) epoch."""
        anneal = TAU_SCHEDULES[self.tau_schedule]
        return anneal(epoch, self.tau_start, self.tau_end, self.tau_anneal_epochs)


@torch.no_grad()
def evaluate_elbo(vae, split, batch_size: int, group: Group = SINGLE) -> dict:
    """One-sample ELBO, log-likelihood and KL per datapoint over a split: means (nats) and the
    ELBO's s.e. With several ranks each scores its shard and the values are gathered."""
    log_lik, kl = zip(*(vae.elbo_terms(xb) for xb in split.shard(group).batches(batch_size)))
    log_lik, kl = group.gather(torch.cat(log_lik)), group.gather(torch.cat(kl))  # (N,), (N,)
    elbo, elbo_se = mean_and_stderr(log_lik - kl)
    return {"elbo": elbo, "elbo_se": elbo_se, "log_lik": log_lik.mean().item(), "kl": kl.mean().item()}


def check_dataset(vae, data: Dataset) -> None:
    """Refuse data the model cannot score, before any file is written (raises DataError)."""
    for split in data.splits().values():
        first = next(split.batches(len(split)))  # the whole split, binarised if dynamic
        vae.check_data(first)


def fit(vae, data: Dataset, trainer: TrainerConfig, objective: dict, run_dir: Path,
        config: dict, seed: int = 0, group: Group = SINGLE) -> dict:
    """Train ``vae`` on ``data`` with SVI and Adam, then evaluate the best checkpoint on test.

    ``objective``: ``{"name": <objective name>, "num_particles": int}`` (see
    :mod:`pyro_mvae.objectives`). ``config`` is written to ``config.yaml`` and stored in every
    checkpoint. ``run_dir`` must not exist yet; it is created only after the data, the pairing
    and the settings are checked. ``group``: this process's rank among several training one
    model (:mod:`pyro_mvae.distributed`); only rank 0 writes files. Returns the report also
    written to ``report.json``.

    Raises:
        pyro_mvae.likelihoods.DataError: data the model cannot score (nothing is written).
        pyro_mvae.guides.PairingError: an objective that makes no valid bound with the model.
        FileExistsError: ``run_dir`` already exists.
        ValueError: a multi-process run with an objective that has no differentiable loss.
    """
    pyro.set_rng_seed(seed + group.rank)  # each rank draws its own noise
    elbo = build_objective(**objective, vae=vae)
    check_dataset(vae, data)
    step = _stepper(vae, elbo, trainer, group, objective["name"])
    run_dir = Path(run_dir)
    if group.is_main:
        run_dir.mkdir(parents=True, exist_ok=False)
        write_bytes_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)).encode())
    started = time.perf_counter()
    best = _train_epochs(vae, data, trainer, step, run_dir, config, seed, group)
    train_seconds = time.perf_counter() - started
    vae.load_state_dict(best.pop("state"))  # the best epoch's parameters, on every rank
    vae.tau = best["tau"]
    report = final_report(vae, data, trainer, best, group)
    report.update(train_seconds=train_seconds, epochs_run=best["epochs_run"], seed=seed,
                  processes=group.world, environment=environment(vae))
    if group.is_main:
        write_json_atomic(run_dir / "report.json", report)
    return report


def _stepper(vae, elbo, trainer, group, objective_name: str) -> Stepper:
    if trainer.batch_size < group.world:
        raise ValueError(f"the batch size ({trainer.batch_size}) is split between {group.world} "
                         "processes and must be at least that large: raise data.batch_size")
    if group.world > 1 and not (trainer.fast_step and has_differentiable_loss(elbo)):
        raise ValueError(
            f"objective '{objective_name}' has no differentiable loss, so DistributedDataParallel "
            "cannot average its gradients (and trainer.fast_step must be true): train it in one "
            "process, or use objective=trace or enum")
    loss_module = group.wrap(ELBOLoss(vae, elbo, scale=group.world))
    return Stepper(vae, elbo, make_optimizer(vae, trainer.lr), loss_module=loss_module,
                   fast=trainer.fast_step, validate=trainer.validate)


def make_optimizer(vae, lr: float) -> torch.optim.Optimizer:
    """One Adam over all of ``vae``'s parameters, fused (one kernel for all of them: ~10% of an
    MLP VAE's step on CPU, see experiments/bench_svi.py)."""
    return torch.optim.Adam(vae.parameters(), lr=lr, fused=True)


def _train_epochs(vae, data, trainer, step, run_dir, config, seed, group) -> dict:
    best = {"val_elbo": -math.inf, "epoch": -1, "epochs_run": 0, "state": None}
    bar = tqdm(range(trainer.epochs), desc="train", disable=not (trainer.progress and group.is_main))
    for epoch in bar:
        tic = time.perf_counter()
        vae.beta, vae.tau = trainer.beta(epoch), trainer.tau(epoch)
        train_elbo = _train_one_epoch(vae, data.train, trainer, epoch, step, seed, group)
        val = evaluate_elbo(vae, data.val, trainer.batch_size, group)
        record = {"epoch": epoch, "beta": vae.beta, "tau": vae.tau, "train_elbo": train_elbo,
                  "val_elbo": val["elbo"], "val_log_lik": val["log_lik"], "val_kl": val["kl"],
                  "seconds": time.perf_counter() - tic}
        best["epochs_run"] = epoch + 1
        if val["elbo"] > best["val_elbo"]:  # the same decision on every rank: val is gathered
            best.update(val_elbo=val["elbo"], epoch=epoch, state=_copy_state(vae), tau=vae.tau)
            if group.is_main:
                save_checkpoint(run_dir / "best.pt", vae, step.optimizer, config, epoch, val["elbo"])
        record["best_epoch"] = best["epoch"]
        if group.is_main:
            append_jsonl(run_dir / "metrics.jsonl", record)
        bar.set_postfix(val_elbo=f"{val['elbo']:.2f}", best=best["epoch"], beta=f"{vae.beta:.2f}")
        if epoch - best["epoch"] >= trainer.patience:
            break
    return best


def _copy_state(vae) -> dict:
    return {k: v.detach().clone() for k, v in vae.state_dict().items()}


def _train_one_epoch(vae, split, trainer, epoch, step, seed, group) -> float:
    """One pass of SVI steps; returns the β-weighted training ELBO per datapoint (nats).

    The batch order is seeded by (seed, epoch), the same on every rank; the losses are summed
    on the device and read once, at the end of the epoch."""
    total, steps = torch.zeros((), device=split.x.device), math.ceil(len(split) / trainer.batch_size)
    batches = split.batches(trainer.batch_size, shuffle=True, seed=seed * 1_000_003 + epoch, group=group)
    for i, xb in enumerate(batches):  # (B / W, D), re-binarised
        if trainer.tau_update == "step":
            vae.tau = trainer.tau(epoch + i / steps)
        total = total + step(xb) / group.world  # −ELBO summed over the shard (the loss is W×)
    return -float(group.sum(total)) / len(split)


def save_checkpoint(path: Path, vae, optimizer, config: dict, epoch: int, val_elbo: float) -> None:
    """Atomically write model state, optimiser state, config and schedules."""
    save_torch_atomic({
        "format": CHECKPOINT_FORMAT, "version": __version__, "epoch": epoch,
        "val_elbo": val_elbo, "beta": vae.beta, "tau": vae.tau, "config": config,
        "model": vae.state_dict(), "optimizer": optimizer.state_dict()}, path)


def load_checkpoint(path: Path, vae, device=None) -> dict:
    """Load ``path`` into ``vae`` (``weights_only=True``: no code is unpickled); returns the checkpoint."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    vae.load_state_dict(ckpt["model"])
    vae.beta, vae.tau = ckpt["beta"], ckpt["tau"]
    return ckpt


def final_report(vae, data: Dataset, trainer: TrainerConfig, best: dict, group: Group = SINGLE) -> dict:
    """Test ELBO and IWAE log p(x) (mean ± s.e., nats) of ``vae`` (the best state), sharded."""
    vae.beta = 1.0
    test = data.test if trainer.eval_limit is None else _head(data.test, trainer.eval_limit)
    tic = time.perf_counter()
    iwae = iwae_log_likelihood(vae, test.shard(group).x, trainer.eval_samples, trainer.eval_chunk_size,
                               trainer.eval_batch_size, progress=trainer.progress and group.is_main)
    ll_mean, ll_se = mean_and_stderr(group.gather(iwae))
    elbo = evaluate_elbo(vae, test, trainer.eval_batch_size, group)
    return {
        "dataset": data.name, "n_test": len(test), "K": trainer.eval_samples,
        "test_iwae_ll": ll_mean, "test_iwae_ll_se": ll_se,
        "test_elbo": elbo["elbo"], "test_elbo_se": elbo["elbo_se"],
        "test_kl": elbo["kl"], "best_epoch": best["epoch"], "best_val_elbo": best["val_elbo"],
        "tau_at_best": vae.tau, "density": density_note(vae), "units": "nats per image",
        "eval_seconds": time.perf_counter() - tic, "trainer": asdict(trainer)}


def _head(split, n: int):
    return type(split)(split.x[:n], split.y[:n], split.dynamic)


def environment(vae) -> dict:
    """Versions and machine, for the report."""
    device = next(vae.parameters()).device
    return {"pyro_mvae": __version__, "torch": torch.__version__, "pyro": pyro.__version__,
            "python": platform.python_version(), "device": str(device),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "torch_threads": torch.get_num_threads()}
