"""The SVI loop: β and τ schedules, validation ELBO, early stopping, checkpoints, metrics,
resuming, interruption and divergence (DESIGN.md §1).

A run directory holds ``config.yaml`` and ``environment.json`` (written when the run starts),
``metrics.jsonl`` (one line per epoch, the same for the same command and seed),
``timings.jsonl`` (wall time per epoch), ``best.pt`` (the best validation epoch), ``last.pt``
(where training stands; see :mod:`pyro_mvae.checkpoints`) and ``report.json`` (test IWAE
log-likelihood and ELBO). Every file is written atomically: killed at any moment, a run
directory holds the previous or the next complete version of each file.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyro
import torch
from omegaconf import OmegaConf
from pyro import poutine
from tqdm.auto import tqdm

from pyro_mvae import checkpoints
from pyro_mvae.checkpoints import Progress
from pyro_mvae.data import Dataset, dequantized_bits_per_dim
from pyro_mvae.distributed import SINGLE, Group
from pyro_mvae.iwae import density_note, iwae_log_likelihood, mean_and_stderr
from pyro_mvae.objectives import build_objective
from pyro_mvae.provenance import environment
from pyro_mvae.schedules import TAU_SCHEDULES, linear_warmup
from pyro_mvae.signals import Interrupted, catch_stop_signals
from pyro_mvae.steps import ELBOLoss, NonFiniteStep, Stepper, has_differentiable_loss
from pyro_mvae.storage import append_jsonl, rewrite_jsonl, write_bytes_atomic, write_json_atomic


class Diverged(FloatingPointError):
    """Training stopped at a step whose loss or gradient was not finite."""


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
    check_finite: bool = True
    on_nonfinite: str = "stop"

    def __post_init__(self):
        positive = ("epochs", "batch_size", "patience", "eval_samples", "eval_chunk_size",
                    "eval_batch_size", "devices")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "beta_start", "beta_end", "tau_start", "tau_end"):
            if not getattr(self, name) > 0:
                raise ValueError(f"trainer.{name} must be > 0, got {getattr(self, name)}")
        for name, choices in (("tau_schedule", TAU_SCHEDULES), ("tau_update", ("epoch", "step")),
                              ("on_nonfinite", ("stop", "skip"))):
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
        config: dict, seed: int = 0, group: Group = SINGLE, resume: dict | None = None) -> dict:
    """Train ``vae`` on ``data`` with SVI and Adam, then evaluate the best epoch on test.

    ``objective``: ``{"name": <objective name>, "num_particles": int}`` (see
    :mod:`pyro_mvae.objectives`). ``config`` is written to ``config.yaml`` and stored in every
    checkpoint. A new run's ``run_dir`` must not exist yet; it is created only after the data,
    the pairing and the settings are checked. ``resume``: the ``last.pt`` checkpoint of
    ``run_dir`` (:func:`pyro_mvae.runs.read_checkpoint`) to continue from, bit-identically on
    CPU. ``group``: this process's rank among several training one model
    (:mod:`pyro_mvae.distributed`); only rank 0 writes files. Returns the report also written
    to ``report.json``.

    Raises:
        pyro_mvae.likelihoods.DataError: data the model cannot score (nothing is written).
        pyro_mvae.guides.PairingError: an objective that makes no valid bound with the model.
        FileExistsError: a new run's ``run_dir`` already exists.
        ValueError: a multi-process run with an objective that has no differentiable loss.
        pyro_mvae.signals.Interrupted: SIGINT or SIGTERM; ``last.pt`` holds the step reached.
        Diverged: a non-finite step with ``trainer.on_nonfinite="stop"``.
    """
    pyro.set_rng_seed(seed + group.rank)  # each rank draws its own noise
    elbo = build_objective(**objective, vae=vae)
    check_dataset(vae, data)
    step = _stepper(vae, elbo, trainer, group, objective["name"])
    run_dir = Path(run_dir)
    progress = _start(vae, step, run_dir, config, group, resume)
    with catch_stop_signals() as stop:
        best = _train_epochs(vae, data, trainer, step, run_dir, config, seed, group, progress, stop)
    _restore_best(vae, best, run_dir, group)
    report = final_report(vae, data, trainer, progress, group)
    report.update(train_seconds=progress.train_seconds, epochs_run=progress.epoch, seed=seed,
                  processes=group.world, skipped_steps=progress.skipped_steps,
                  environment=environment(next(vae.parameters()).device, group.world))
    if group.is_main:
        write_json_atomic(run_dir / "report.json", report)
    return report


def _start(vae, step, run_dir, config, group, resume) -> Progress:
    """A new run's directory and progress, or a resumed run's restored state."""
    device = next(vae.parameters()).device
    if resume is None:
        checkpoints.set_baseline_state({})
        if group.is_main:
            run_dir.mkdir(parents=True, exist_ok=False)
            _write_config(run_dir, config)
            write_json_atomic(run_dir / "environment.json", environment(device, group.world))
        return Progress()
    vae.load_state_dict(resume["model"])
    step.optimizer.load_state_dict(resume["optimizer"])
    progress = Progress(**resume["progress"])
    checkpoints.set_rng_state(resume["rng"][group.rank])
    checkpoints.set_baseline_state(resume["baselines"])
    if group.is_main:  # drop lines of epochs the checkpoint has not finished (killed in between)
        for stale in run_dir.glob(".*.tmp"):  # temporary files of writes a kill interrupted
            stale.unlink()
        for name in ("metrics.jsonl", "timings.jsonl"):
            rewrite_jsonl(run_dir / name, lambda r: r["epoch"] < progress.epoch)
        _write_config(run_dir, config)
        record = json.loads((run_dir / "environment.json").read_text())
        record.setdefault("resumed", []).append(
            {"at_epoch": progress.epoch, "at_batch": progress.batch} | environment(device, group.world))
        write_json_atomic(run_dir / "environment.json", record)
    return progress


def _write_config(run_dir: Path, config: dict) -> None:
    write_bytes_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)).encode())


def _restore_best(vae, best: dict | None, run_dir: Path, group: Group) -> None:
    """Back to the best epoch's parameters and τ: kept in memory when this session found it,
    else read from ``best.pt`` (a resumed run whose best epoch came before the resume)."""
    if best is None:
        group.barrier()
        if not (run_dir / "best.pt").exists():
            return
        ckpt = torch.load(run_dir / "best.pt", map_location=next(vae.parameters()).device, weights_only=True)
        best = {"state": ckpt["model"], "tau": ckpt["tau"]}
    vae.load_state_dict(best["state"])
    vae.tau = best["tau"]


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
                   fast=trainer.fast_step, validate=trainer.validate, check_finite=trainer.check_finite,
                   agree=group.sum if group.world > 1 else None)


def make_optimizer(vae, lr: float) -> torch.optim.Optimizer:
    """One Adam over all of ``vae``'s parameters, fused (one kernel for all of them: ~10% of an
    MLP VAE's step on CPU, see experiments/bench_svi.py)."""
    return torch.optim.Adam(vae.parameters(), lr=lr, fused=True)


def _train_epochs(vae, data, trainer, step, run_dir, config, seed, group, progress, stop) -> dict | None:
    """Epochs until ``trainer.epochs`` or early stopping; returns the best epoch's state and τ
    when this session found a new best (else None)."""
    best = None
    bar = tqdm(total=trainer.epochs, initial=progress.epoch, desc="train",
               disable=not (trainer.progress and group.is_main))
    while progress.epoch < trainer.epochs and not _patience_exhausted(progress, trainer):
        tic = time.perf_counter()
        epoch = progress.epoch
        vae.beta, vae.tau = trainer.beta(epoch), trainer.tau(epoch)
        _train_one_epoch(vae, data.train, trainer, step, seed, group, progress, stop, run_dir, config)
        val = evaluate_elbo(vae, data.val, trainer.batch_size, group)
        record = {"epoch": epoch, "beta": vae.beta, "tau": vae.tau,
                  "train_elbo": -progress.epoch_loss / len(data.train), "val_elbo": val["elbo"],
                  "val_log_lik": val["log_lik"], "val_kl": val["kl"], "skipped_steps": progress.skipped_steps}
        if val["elbo"] > progress.best_val_elbo:  # the same decision on every rank: val is gathered
            progress.best_val_elbo, progress.best_epoch = val["elbo"], epoch
            best = {"state": {k: v.detach().clone() for k, v in vae.state_dict().items()}, "tau": vae.tau}
            if group.is_main:
                checkpoints.save_best(run_dir / "best.pt", vae, step.optimizer, config, epoch, val["elbo"])
        record["best_epoch"] = progress.best_epoch
        progress.epoch, progress.batch, progress.epoch_loss = epoch + 1, 0, 0.0
        progress.train_seconds += time.perf_counter() - tic
        _end_of_epoch(vae, step, run_dir, config, group, progress, record, time.perf_counter() - tic)
        bar.update(1)
        bar.set_postfix(val_elbo=f"{val['elbo']:.2f}", best=progress.best_epoch, beta=f"{vae.beta:.2f}")
    bar.close()
    return best


def _patience_exhausted(progress: Progress, trainer: TrainerConfig) -> bool:
    """Early stopping: ``patience`` epochs since the best validation ELBO."""
    return progress.epoch > 0 and (progress.epoch - 1) - progress.best_epoch >= trainer.patience


def _end_of_epoch(vae, step, run_dir, config, group, progress, record, seconds) -> None:
    rng = group.gather_objects(checkpoints.rng_state())
    if group.is_main:
        append_jsonl(run_dir / "metrics.jsonl", record)
        append_jsonl(run_dir / "timings.jsonl", {"epoch": record["epoch"], "seconds": seconds})
        checkpoints.save_last(run_dir / "last.pt", vae, step.optimizer, config, progress, rng)


def _train_one_epoch(vae, split, trainer, step, seed, group, progress, stop, run_dir, config) -> None:
    """SVI steps over the epoch's batches from ``progress.batch`` on; −ELBO summed over the
    ranks into ``progress.epoch_loss`` (read from the device once, at the end, or at an
    interruption).

    The batch order is seeded by (seed, epoch), the same on every rank and after a resume."""
    steps_per_epoch = math.ceil(len(split) / trainer.batch_size)
    total = torch.tensor(progress.epoch_loss / group.world, device=split.x.device)  # this rank's share
    batches = split.batches(trainer.batch_size, shuffle=True, seed=seed * 1_000_003 + progress.epoch,
                            group=group, start=progress.batch)
    for xb in batches:  # (B / W, D), re-binarised
        if trainer.tau_update == "step":
            vae.tau = trainer.tau(progress.epoch + progress.batch / steps_per_epoch)
        try:
            total = total + step(xb) / group.world  # the loss is W × the shard's −ELBO
            progress.step += 1
        except NonFiniteStep as bad:
            _non_finite(bad, vae, xb, trainer, progress, run_dir)
        progress.batch += 1
        if _stop_requested(stop, group, xb.device):
            progress.epoch_loss = float(group.sum(total))
            _interrupt(stop, vae, step, run_dir, config, group, progress)
    progress.epoch_loss = float(group.sum(total))  # over all ranks, read once


def _stop_requested(stop, group: Group, device) -> bool:
    if group.world == 1:
        return bool(stop)
    return bool(group.sum(torch.tensor(float(bool(stop)), device=device)) > 0)  # every rank agrees


def _interrupt(stop, vae, step, run_dir, config, group, progress) -> None:
    rng = group.gather_objects(checkpoints.rng_state())
    if group.is_main:
        checkpoints.save_last(run_dir / "last.pt", vae, step.optimizer, config, progress, rng)
    signum = stop.signum or 2
    raise Interrupted(signum, f"stopped by signal {signum} at epoch {progress.epoch}, batch "
                              f"{progress.batch} (step {progress.step}); the checkpoint {run_dir / 'last.pt'} "
                              f"holds it. Resume with: pyro-mvae train resume={run_dir}")


def _non_finite(bad: NonFiniteStep, vae, xb, trainer, progress, run_dir) -> None:
    """Skip and count the step, or stop with the step, the non-finite sites and the last checkpoint."""
    if trainer.on_nonfinite == "skip":
        progress.skipped_steps += 1
        return
    last = run_dir / "last.pt"
    where = (f"{last} (end of epoch {progress.epoch - 1})" if progress.epoch > 0 and last.exists()
             else "none yet (the run had not finished an epoch)")
    raise Diverged(
        f"non-finite loss or gradient at step {progress.step} (epoch {progress.epoch}, batch "
        f"{progress.batch}; loss {bad.loss}, gradient sum {bad.grad_sum}); {non_finite_sites(vae, xb)}. "
        f"The parameters were not updated by it. Last good checkpoint: {where}. Lower trainer.lr, "
        "check the data, or set trainer.on_nonfinite=skip to drop such steps")


@torch.no_grad()
def non_finite_sites(vae, x: torch.Tensor) -> str:
    """Which sites have a non-finite value or log-density on batch x, as far as one fresh draw
    of the guide (and the model replayed on it) can tell; and whether x itself is finite."""
    with pyro.validation_enabled(False):
        guide = poutine.trace(vae.guide).get_trace(x)
        model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
        sites = []
        for role, trace in (("guide", guide), ("model", model)):
            trace.compute_log_prob()
            sites += [f"{role} site '{name}'" for name, site in trace.nodes.items()
                      if site["type"] == "sample" and "log_prob" in site
                      and not (torch.isfinite(site["log_prob"]).all() and torch.isfinite(site["value"]).all())]
    bad_data = int((~torch.isfinite(x)).sum())
    found = ("non-finite value or log-density at " + ", ".join(sites)) if sites else \
        "every site is finite on a fresh draw (the gradient overflowed)"
    return found + (f"; the batch itself holds {bad_data} non-finite values" if bad_data else "")


def final_report(vae, data: Dataset, trainer: TrainerConfig, progress: Progress, group: Group = SINGLE) -> dict:
    """Test ELBO and IWAE log p(x) (mean ± s.e., nats) of ``vae`` (the best state), sharded."""
    vae.beta = 1.0
    test = data.test if trainer.eval_limit is None else _head(data.test, trainer.eval_limit)
    tic = time.perf_counter()
    iwae = iwae_log_likelihood(vae, test.shard(group).x, trainer.eval_samples, trainer.eval_chunk_size,
                               trainer.eval_batch_size, progress=trainer.progress and group.is_main)
    ll_mean, ll_se = mean_and_stderr(group.gather(iwae))
    elbo = evaluate_elbo(vae, test, trainer.eval_batch_size, group)
    discrete = {} if not data.levels else {  # dequantised grey levels (DESIGN.md §2)
        "test_bits_per_dim_discrete": dequantized_bits_per_dim(ll_mean, data.data_dim, data.levels)}
    return discrete | {
        "dataset": data.name, "n_test": len(test), "K": trainer.eval_samples,
        "test_iwae_ll": ll_mean, "test_iwae_ll_se": ll_se,
        "test_elbo": elbo["elbo"], "test_elbo_se": elbo["elbo_se"],
        "test_kl": elbo["kl"], "best_epoch": progress.best_epoch, "best_val_elbo": progress.best_val_elbo,
        "tau_at_best": vae.tau, "density": density_note(vae), "units": "nats per image",
        "eval_seconds": time.perf_counter() - tic, "trainer": asdict(trainer)}


def load_checkpoint(path: Path, vae, device=None) -> dict:
    """Load a checkpoint into ``vae`` (``weights_only=True``: no code is unpickled); returns it."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    vae.load_state_dict(ckpt["model"])
    vae.beta, vae.tau = ckpt["beta"], ckpt["tau"]
    return ckpt


def _head(split, n: int):
    return type(split)(split.x[:n], split.y[:n], split.dynamic)
