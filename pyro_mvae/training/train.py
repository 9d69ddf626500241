"""The SVI loop as a :class:`Run`: β and τ schedules, validation ELBO, early stopping,
checkpoints, metrics, resuming, interruption and divergence (DESIGN.md §1).

A run directory holds ``config.yaml`` and ``environment.json`` (written when the run starts),
``metrics.jsonl`` (one line per epoch, the same for the same command and seed),
``timings.jsonl`` (wall time per epoch), ``best.pt`` (the best validation epoch), ``last.pt``
(where training stands; see :mod:`pyro_mvae.training.checkpoints`) and ``report.json`` (test IWAE
log-likelihood and ELBO). Every file is written atomically: killed at any moment, a run
directory holds the previous or the next complete version of each file.
"""

import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyro
import torch
from omegaconf import OmegaConf
from pyro import poutine
from tqdm.auto import tqdm

from pyro_mvae.config import Settings, lookup, option
from pyro_mvae.data.labelled import classification_error, labelled_for
from pyro_mvae.data.splits import Dataset
from pyro_mvae.errors import ConfigError, Diverged, Interrupted, NonFiniteStep, TimeLimitReached
from pyro_mvae.infer import compiled
from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.infer.objectives import OBJECTIVES, build_objective, resolve_for
from pyro_mvae.infer.schedules import TAU_SCHEDULES, linear_warmup
from pyro_mvae.infer.steps import ELBOLoss, Stepper, has_differentiable_loss
from pyro_mvae.models.modes import eval_mode
from pyro_mvae.plugins import providers
from pyro_mvae.storage import append_jsonl, rewrite_jsonl, write_bytes_atomic, write_json_atomic
from pyro_mvae.tracking import logger_class
from pyro_mvae.tracking.loggers import NoLogger, flat_hparams
from pyro_mvae.tracking.provenance import environment
from pyro_mvae.training import checkpoints
from pyro_mvae.training.checkpoints import Progress
from pyro_mvae.training.distributed import SINGLE, Group
from pyro_mvae.training.optimizers import OPTIMIZERS
from pyro_mvae.training.report import evaluate_elbo, final_report
from pyro_mvae.training.signals import catch_stop_signals, interrupt_on_stop_signals


@dataclass
class TrainerConfig(Settings):
    """Training and final-evaluation settings (Hydra group ``trainer``).

    β rises linearly from ``beta_start`` to ``beta_end`` over ``warmup_epochs`` (KL warm-up); τ
    decays from ``tau_start`` to ``tau_end`` over ``tau_anneal_epochs`` (relaxed guides).
    """

    GROUP = "trainer"
    epochs: int = option(100, "maximum number of epochs")
    threads: int = option(1, "torch threads of this process (0: torch's default, one per core); "
                             "1 by measurement: docs/benchmarks.md, Threads on a shared machine")
    batch_size: int = option(100, "B is set from data.batch_size (give data.batch_size=N)", derived=True)
    lr: float = option(1e-3, "Adam learning rate")
    optimizer: str = option("adam", "adam | adam_normgrad (Adam on each parameter's gradient scaled to unit L2 norm, "
                                    "the optimiser of Tomczak & Welling 2018's code)")
    patience: int = option(20, "early stopping: epochs without a better validation ELBO, counted from the end of "
                               "the β warm-up")
    max_time: str | None = option(None, "stop cleanly after this much training wall time in this process, e.g. "
                                        "2h50m, 45m, 90s (last.pt written; exit code 3; the same command or "
                                        "resume=RUN_DIR continues); null: no limit")
    beta_start: float = option(0.01, "β at epoch 0 (KL warm-up)")
    beta_end: float = option(1.0, "β after the warm-up")
    warmup_epochs: int = option(10, "epochs of the linear β warm-up")
    tau_start: float = option(1.0, "Concrete temperature τ at epoch 0 (relaxed guides)")
    tau_end: float = option(0.5, "τ after the annealing")
    tau_anneal_epochs: int = option(50, "epochs of the τ annealing")
    tau_schedule: str = option("exponential", "exponential | linear")
    tau_update: str = option("epoch", "epoch | step (every SVI step, by fractional epoch)")
    eval_samples: int = option(5000, "K of the final IWAE log-likelihood")
    val_iwae_samples: int | None = option(None, "K of an IWAE estimate on the validation images every epoch "
                                                "(metrics.jsonl val_iwae, nats per image; null: none)")
    val_iwae_every: int = option(1, "epochs between the validation IWAE estimates (val_iwae_samples): at "
                                    "epochs 0, N, 2N, ... and the last one; a learning curve at a fraction of the cost")
    val_iwae_limit: int | None = option(None, "score only the first N validation images in the validation IWAE "
                                              "(null: all)")
    eval_chunk_size: int | None = option(None, "particles drawn at once in the final evaluation (null: "
                                               "5000 // eval_batch_size on a CPU, 500 on a GPU)")
    eval_batch_size: int = option(100, "test images per IWAE batch")
    eval_limit: int | None = option(None, "score only the first test images (null: all)")
    compile: str = option("auto", "torch.compile: auto (the final evaluation on CPU where it pays, images × K × "
                                  "values ≥ 1.3e10; training eager) | true (training's networks and the "
                                  "evaluation) | false")
    progress: bool = option(True, "show progress bars")
    fast_step: bool = option(True, "differentiable-loss objectives: loss.backward() + torch.optim, no SVI")
    validate: bool = option(False, "Pyro's argument checks inside training steps (data are checked once)")
    devices: int = option(1, "processes training one model (DistributedDataParallel)")
    check_finite: bool = option(True, "check every step's loss and gradients before the optimiser moves")
    on_nonfinite: str = option("stop", "stop | skip (drop the step and count it)")
    figures: bool = option(True, "write the model's figures (RUN_DIR/figures/) at the end of pyro-mvae train")
    alpha: float | None = option(None, "α, weight of log q(c = y | x) on each labelled image (data.labelled; "
                                       "null: 0.1 · N_train / N_labelled, Kingma et al. 2014)")
    gmm_init_epoch: int | None = option(None, "VaDE's start of a mixture prior: at the start of this epoch fit a "
                                              "Gaussian mixture to one draw z ~ q(z | x) per training image and "
                                              "set the prior to it (null: never)")
    logger: str = option("none", "none | tensorboard (RUN_DIR/tensorboard/) | mlflow ($MLFLOW_TRACKING_URI, else "
                                 "./mlflow.db; a sweep is one experiment); metrics.jsonl stays the reference")
    log_images_every: int = option(10, "epochs between the logger's sample and reconstruction grids")

    def __post_init__(self):
        if isinstance(self.compile, bool):  # `trainer.compile=true` composes to a YAML bool
            self.compile = "true" if self.compile else "false"
        super().__post_init__()

    def check(self):
        for name in ("epochs", "batch_size", "patience", "eval_samples", "eval_chunk_size", "val_iwae_samples",
                     "val_iwae_every", "val_iwae_limit", "eval_batch_size", "devices", "eval_limit",
                     "log_images_every"):
            self.at_least(name, 1)
        for name in ("warmup_epochs", "tau_anneal_epochs", "threads", "gmm_init_epoch"):
            self.at_least(name, 0)
        for name in ("lr", "beta_start", "beta_end", "tau_start", "tau_end"):
            self.positive(name)
        if self.alpha is not None:
            self.positive("alpha")
        self.one_of("tau_schedule", tuple(TAU_SCHEDULES))
        self.one_of("tau_update", ("epoch", "step"))
        self.one_of("on_nonfinite", ("stop", "skip"))
        self.one_of("logger", ("none", "tensorboard", "mlflow"))
        self.one_of("compile", compiled.SETTINGS)
        self.one_of("optimizer", tuple(OPTIMIZERS))
        if self.max_time is not None and duration_seconds(self.max_time) is None:
            self._fail("max_time", "a duration such as 2h50m, 45m, 90s or 1h (hours, minutes, seconds)")

    def beta(self, epoch: int) -> float:
        """β at ``epoch``, warmed up linearly from ``beta_start`` to ``beta_end`` over ``warmup_epochs``."""
        return linear_warmup(epoch, self.beta_start, self.warmup_epochs, self.beta_end)

    def tau(self, epoch: float) -> float:
        """τ at a (fractional, for per-step updates) epoch."""
        anneal = TAU_SCHEDULES[self.tau_schedule]
        return anneal(epoch, self.tau_start, self.tau_end, self.tau_anneal_epochs)


def duration_seconds(text: str) -> float | None:
    """Seconds of a duration written ``[Nh][Nm][Ns]`` (``2h50m``, ``45m``, ``90s``, ``1h30m15s``),
    or None when ``text`` is not one (or is zero)."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    return float(total) if total > 0 else None


def patience_exhausted(progress: dict, trainer: dict) -> bool:
    """Early stopping: ``trainer["patience"]`` epochs done without a better validation ELBO,
    counting only the epochs from the end of the β warm-up on (epochs ≥ ``warmup_epochs``), as
    Tomczak & Welling 2018's code counts them. ``progress``: a
    :class:`~pyro_mvae.training.checkpoints.Progress` as a dict (next ``epoch``, ``best_epoch``)."""
    last = progress["epoch"] - 1
    since = max(progress["best_epoch"], trainer["warmup_epochs"] - 1)
    return progress["epoch"] > 0 and last - since >= trainer["patience"]


def check_dataset(vae, data: Dataset) -> None:
    """Refuse data the model cannot score, before any file is written (raises DataError)."""
    for split in data.splits().values():
        first = next(split.batches(len(split)))  # the whole split, binarised if dynamic
        vae.check_data(first)


@torch.no_grad()
def fit_prior_to_posterior(vae, split, seed: int) -> None:
    """Fit the mixture prior to the aggregate posterior: one draw z ~ q(z | x) ``(N, d)`` per image
    of the split as stored (grey levels where training binarises afresh)
    (:meth:`~pyro_mvae.models.priors.LearnedMixturePrior.fit_to`, scikit-learn's EM
    seeded with ``seed``), as ``trainer.gmm_init_epoch`` does. Draws rather than VaDE's means, so
    that the latent dimensions the guide leaves at the prior keep their unit spread in the fit."""
    with eval_mode(vae):
        z = torch.cat([vae.encoder.posterior(xb).sample() for xb in split.x.split(500)])  # (N, d)
    vae.prior.fit_to(z, seed)


def apply_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` for this process; 0 keeps torch's default (one thread
    per core), which is several times slower per step as soon as another process shares the
    cores (experiments/bench_threads.py)."""
    if threads > 0:
        torch.set_num_threads(threads)


def make_optimizer(vae, lr: float, name: str = "adam") -> torch.optim.Optimizer:
    """One optimiser of :data:`~pyro_mvae.training.optimizers.OPTIMIZERS` (``name``) over all of
    ``vae``'s parameters, fused (one kernel for all of them: ~10% of an MLP VAE's step on CPU, see
    experiments/bench_svi.py)."""
    return OPTIMIZERS[name](vae.parameters(), lr=lr, fused=True)


def complete_config(config: dict, vae, data: Dataset, trainer: TrainerConfig, objective: dict,
                    run_dir: Path, seed: int) -> dict:
    """The run's whole configuration: the groups ``config`` gives, and for the others what
    ``vae.spec`` and ``data.spec`` (set by ``build_vae`` and the data loaders), ``trainer`` and
    ``objective`` describe, so that every run :func:`fit` writes can be evaluated, sampled and
    resumed from the command line, from any working directory (data paths made absolute). A
    hand-built VAE (no ``spec``) leaves its groups to ``config``."""
    chosen = lookup(OBJECTIVES, "objective", objective["name"])
    options = {k: v for k, v in objective.items() if k != "name"}
    trainer_options = {k: v for k, v in asdict(trainer).items() if k != "batch_size"}
    derived = {"seed": seed, "device": "auto", "run_dir": str(run_dir), "resume": None,
               "objective": {"name": chosen.name, **asdict(chosen.Config(**options))},
               "trainer": trainer_options, **(vae.spec or {})}
    if data.spec is not None:
        derived["data"] = data.spec | {"batch_size": trainer.batch_size}
    complete = derived | config
    return complete | {"data": absolute_paths(complete["data"])} if "data" in complete else complete


def absolute_paths(data: dict) -> dict:
    """The data group with its file and folder options (``path``, ``root``) made absolute, so
    that ``evaluate``, ``load_run`` and ``resume=`` find the data from any working directory."""
    return data | {key: str(Path(data[key]).expanduser().resolve()) for key in ("path", "root")
                   if isinstance(data.get(key), str)}


def fit(vae, data: Dataset, trainer: TrainerConfig, objective: dict, run_dir: Path,
        config: dict, seed: int = 0, group: Group = SINGLE, resume: dict | None = None,
        evaluate=None) -> dict:
    """Train ``vae`` on ``data`` with SVI and Adam, then evaluate the best epoch on test:
    ``Run(...).fit()`` (see :class:`Run` for the arguments and errors). Returns the report
    also written to ``report.json``."""
    return Run(vae, data, trainer, objective, run_dir, config, seed, group, resume, evaluate).fit()


class Run:
    """One training run: the VAE, its data, the trainer settings, the stepper, the run
    directory, the process group, the progress and the stop signal.

    ``objective``: ``{"name": <objective name>, "num_particles": int}`` (see
    :mod:`pyro_mvae.infer.objectives`). ``config``, completed by :func:`complete_config`, is
    written to ``config.yaml`` and stored in every checkpoint. A new run's ``run_dir`` must not hold
    a run yet (:func:`~pyro_mvae.training.checkpoints.holds_run`); it is created only after the
    data, the pairing and the settings are checked. ``resume``: the ``last.pt`` checkpoint of
    ``run_dir`` (:func:`pyro_mvae.training.checkpoints.load`) to continue from,
    bit-identically on CPU. ``evaluate``: the final evaluation on one process (see
    :func:`~pyro_mvae.training.report.final_report`), e.g.
    :func:`pyro_mvae.evaluation.evaluate.evaluate_final`, which also writes ``eval.json``.
    ``group``: this process's rank among several training one model
    (:mod:`pyro_mvae.training.distributed`); only rank 0 writes files.

    Raises:
        pyro_mvae.errors.DataError: data the model cannot score (nothing is written).
        pyro_mvae.errors.PairingError: an objective that makes no valid bound with the model.
        FileExistsError: a new run's ``run_dir`` already holds a run.
        ValueError: a multi-process run with an objective that has no differentiable loss.
        pyro_mvae.errors.Interrupted: SIGINT or SIGTERM; ``last.pt`` holds the step reached.
        pyro_mvae.errors.Diverged: a non-finite step with ``trainer.on_nonfinite="stop"``.
    """

    def __init__(self, vae, data: Dataset, trainer: TrainerConfig, objective: dict, run_dir: Path,
                 config: dict, seed: int = 0, group: Group = SINGLE, resume: dict | None = None,
                 evaluate=None):
        pyro.set_rng_seed(seed + group.rank)  # each rank draws its own noise
        apply_threads(trainer.threads)
        self.vae, self.data, self.trainer = vae, data, trainer
        self.run_dir, self.seed, self.group, self.evaluate = Path(run_dir), seed, group, evaluate
        objective = objective | {"name": resolve_for(objective["name"], vae)}  # objective=auto named
        config = config | ({"objective": config["objective"] | objective} if "objective" in config else {})
        self.config = complete_config(config, vae, data, trainer, objective, self.run_dir, seed)
        elbo = build_objective(**objective, vae=vae)
        check_dataset(vae, data)
        if trainer.gmm_init_epoch is not None and not hasattr(vae.prior, "fit_to"):
            raise ConfigError(f"trainer.gmm_init_epoch starts a mixture prior from a fit, and prior "
                              f"'{vae.prior.name}' has no components: use prior=mixture or factorized_mixture, "
                              "or leave trainer.gmm_init_epoch=null")
        self.labelled = self._labelled_set()
        self.train_split = data.train if self.labelled is None else self.labelled.unlabelled
        self.step = self._stepper(elbo, objective["name"])
        logger = logger_class(trainer.logger) if group.is_main else NoLogger
        self.progress = self._start(resume)
        self.logger = (NoLogger() if logger is NoLogger
                       else logger(self.run_dir, trainer.log_images_every, self.progress.epoch, self.config))
        self.stop = None
        limit = None if trainer.max_time is None else duration_seconds(trainer.max_time)
        self.deadline = None if limit is None else time.monotonic() + limit
        self.best = None  # the best epoch's state and τ, when this session found one
        self.bar, self.shown, self.last_val = None, 0.0, None

    def fit(self) -> dict:
        """Train, go back to the best epoch, evaluate it on test; returns the report."""
        try:
            report = self._fit()
        except BaseException:
            self.logger.close()
            raise
        self.logger.close(report, flat_hparams(self.config))
        return report

    def _fit(self) -> dict:
        note = (f"stopped after training, in its final evaluation; the checkpoints and metrics of "
                f"{self.run_dir} are kept. Evaluate it with: pyro-mvae train resume={self.run_dir} "
                "(trainer.eval_limit=N and trainer.eval_samples=K may be given), or pyro-mvae evaluate")
        with interrupt_on_stop_signals(note):  # no gap between the two handlers
            with catch_stop_signals() as self.stop:
                self.train()
            if self.stop:  # a signal after the last step: training is complete and saved
                raise Interrupted(self.stop.signum, note)
            self.restore_best()
            report = final_report(self.vae, self.data, self.trainer, self.progress, self.group, self.config,
                                  self.evaluate)
        report.update(train_seconds=self.progress.train_seconds, epochs_run=self.progress.epoch,
                      compiled_training=self.step.compiled,
                      seed=self.seed, processes=self.group.world, skipped_steps=self.progress.skipped_steps,
                      tags=list(self.config.get("tags") or []),
                      environment=environment(self.device, self.group.world))
        if self.group.is_main:
            write_json_atomic(self.run_dir / "report.json", report)
        return report

    @property
    def device(self) -> torch.device:
        """The device of the VAE's parameters."""
        return next(self.vae.parameters()).device

    def _labelled_set(self):
        """The labelled images of ``data.labelled`` (:func:`~pyro_mvae.data.labelled.labelled_for`;
        α set on the VAE), or None."""
        chosen = labelled_for(self.vae, self.data, self.seed, self.trainer.batch_size, self.trainer.alpha,
                              self.group.world)
        if chosen is not None:
            self.vae.alpha = chosen.alpha
        return chosen

    def _start(self, resume) -> Progress:
        """A new run's directory and progress, or a resumed run's restored state."""
        if resume is None:
            checkpoints.set_baseline_state({})
            if self.group.is_main:
                if checkpoints.holds_run(self.run_dir):
                    raise FileExistsError(f"{self.run_dir} already holds a run: give a new run_dir")
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._write_config()
                record = environment(self.device, self.group.world) | {"plugins": providers(self.config)}
                write_json_atomic(self.run_dir / "environment.json", record)
                if self.labelled is not None:
                    write_json_atomic(self.run_dir / "labelled.json", self.labelled.record(self.seed))
            return Progress()
        self.vae.load_state_dict(resume["model"])
        self.step.optimizer.load_state_dict(resume["optimizer"])
        progress = Progress(**resume["progress"])
        checkpoints.set_rng_state(resume["rng"][self.group.rank])
        checkpoints.set_baseline_state(resume["baselines"])
        if self.group.is_main:
            self._tidy_resumed(progress)
        return progress

    def _tidy_resumed(self, progress: Progress) -> None:
        """Drop what the checkpoint has not reached (killed in between) and record the resume."""
        for stale in self.run_dir.glob(".*.tmp"):  # temporary files of writes a kill interrupted
            stale.unlink()
        for name in ("metrics.jsonl", "timings.jsonl"):
            rewrite_jsonl(self.run_dir / name, lambda r: r["epoch"] < progress.epoch)
        self._write_config()
        record = json.loads((self.run_dir / "environment.json").read_text())
        record.setdefault("resumed", []).append(
            {"at_epoch": progress.epoch, "at_batch": progress.batch} | environment(self.device, self.group.world))
        write_json_atomic(self.run_dir / "environment.json", record)

    def _write_config(self) -> None:
        text = OmegaConf.to_yaml(OmegaConf.create(self.config)).encode()
        write_bytes_atomic(self.run_dir / "config.yaml", text)

    def _stepper(self, elbo, objective_name: str) -> Stepper:
        trainer, group = self.trainer, self.group
        if trainer.batch_size < group.world:
            raise ValueError(f"the batch size ({trainer.batch_size}) is split between {group.world} "
                             "processes and must be at least that large: raise data.batch_size")
        if group.world > 1 and not (trainer.fast_step and has_differentiable_loss(elbo)):
            raise ValueError(
                f"objective '{objective_name}' has no differentiable loss, so DistributedDataParallel "
                "cannot average its gradients (and trainer.fast_step must be true): train it in one "
                "process, or use objective=trace or enum")
        loss_module = group.wrap(ELBOLoss(self.vae, elbo, scale=group.world))
        compiling = compiled.resolve_training(trainer.compile, self.device)
        networks = compiled.CompiledNetworks(self.vae) if compiling else None
        return Stepper(self.vae, elbo, make_optimizer(self.vae, trainer.lr, trainer.optimizer), loss_module=loss_module,
                       fast=trainer.fast_step, validate=trainer.validate, check_finite=trainer.check_finite,
                       agree=group.sum if group.world > 1 else None, networks=networks)

    def restore_best(self) -> None:
        """Back to the best epoch's parameters and τ: kept in memory when this session found it,
        else read from ``best.pt`` (a resumed run whose best epoch came before the resume)."""
        if self.best is not None:
            self.vae.load_state_dict(self.best["state"])
            self.vae.tau = self.best["tau"]
            return
        self.group.barrier()
        if (self.run_dir / "best.pt").exists():
            checkpoints.load(self.run_dir / "best.pt", self.device, into=self.vae)

    def train(self) -> None:
        """Epochs until ``trainer.epochs`` or early stopping, with a per-step progress bar (loss,
        epoch, validation ELBO, ETA). The VAE trains in train mode; every evaluation inside
        (validation, the logger's images) runs in eval mode and gives train mode back."""
        self.vae.train()
        steps = math.ceil(len(self.train_split) / self.trainer.batch_size)
        self.bar = tqdm(total=self.trainer.epochs * steps, initial=self.progress.epoch * steps + self.progress.batch,
                        desc="train", unit="step", disable=not (self.trainer.progress and self.group.is_main))
        try:
            while self.progress.epoch < self.trainer.epochs and not self.patience_exhausted():
                tic = time.perf_counter()
                record = self.epoch()
                self.end_of_epoch(record, time.perf_counter() - tic)
                self.last_val = record["val_elbo"]
        finally:  # also when stopped: the bar's line ends, and a message after it starts a line of its own
            self.bar.close()

    def _show(self, loss: torch.Tensor, batch_size: int) -> None:
        """Advance the bar one step; refresh its loss (a host read) at most once a second."""
        self.bar.update(1)
        now = time.monotonic()
        if not self.bar.disable and now - self.shown >= 1.0:
            self.shown = now
            shown = {"epoch": self.progress.epoch, "loss": f"{float(loss) / batch_size:.2f}"}
            if self.last_val is not None:
                shown["val_elbo"] = f"{self.last_val:.2f}"
            self.bar.set_postfix(shown, refresh=False)

    def patience_exhausted(self) -> bool:
        """Early stopping (:func:`patience_exhausted`)."""
        return patience_exhausted(asdict(self.progress), asdict(self.trainer))

    def epoch(self) -> dict:
        """Train one epoch (from ``progress.batch`` on) and score validation; returns the
        epoch's metrics record and keeps a new best state."""
        vae, epoch = self.vae, self.progress.epoch
        vae.beta, vae.tau = self.trainer.beta(epoch), self.trainer.tau(epoch)
        if epoch == self.trainer.gmm_init_epoch and self.progress.batch == 0:
            fit_prior_to_posterior(vae, self.data.train, self.seed)
        self.train_batches()
        val = evaluate_elbo(vae, self.data.val, self.trainer.batch_size, self.group)
        record = {"epoch": epoch, "beta": vae.beta, "tau": vae.tau,
                  "train_elbo": -self.progress.epoch_loss / len(self.train_split), "val_elbo": val["elbo"],
                  "val_log_lik": val["log_lik"], "val_kl": val["kl"], "skipped_steps": self.progress.skipped_steps}
        if self.trainer.val_iwae_samples is not None and (epoch % self.trainer.val_iwae_every == 0
                                                          or epoch == self.trainer.epochs - 1):
            record["val_iwae"] = self.validation_iwae()
        if self.labelled is not None:
            record |= {"train_labelled_loss": self.progress.labelled_loss / max(self.progress.labelled_images, 1),
                       "val_error": classification_error(vae, self.data.val)}
        if val["elbo"] > self.progress.best_val_elbo:  # the same decision on every rank: val is gathered
            self.progress.best_val_elbo, self.progress.best_epoch = val["elbo"], epoch
            self.best = {"state": {k: v.detach().clone() for k, v in vae.state_dict().items()}, "tau": vae.tau}
            if self.group.is_main:
                checkpoints.save_best(self.run_dir / "best.pt", vae, self.step.optimizer, self.config, epoch,
                                      val["elbo"])
        record["best_epoch"] = self.progress.best_epoch
        return record

    def validation_iwae(self) -> float:
        """The mean IWAE estimate of log p(x) over the validation images with K =
        ``trainer.val_iwae_samples`` (nats per image; each rank scores its shard), on the first
        ``trainer.val_iwae_limit`` of them when set."""
        x = self.data.val.head(self.trainer.val_iwae_limit).shard(self.group).x  # (min(N, limit) / W, *event)
        iwae = iwae_log_likelihood(self.vae, x, self.trainer.val_iwae_samples, self.trainer.eval_chunk_size,
                                   self.trainer.eval_batch_size, compile="false")
        return self.group.gather(iwae).mean().item()

    def end_of_epoch(self, record: dict, seconds: float) -> None:
        """Advance the progress to the next epoch; append the metrics and timing; write ``last.pt``."""
        p = self.progress
        p.epoch, p.batch, p.epoch_loss = record["epoch"] + 1, 0, 0.0
        p.labelled_loss, p.labelled_images = 0.0, 0
        p.train_seconds += seconds
        rng = self.group.gather_objects(checkpoints.rng_state())
        if self.group.is_main:
            append_jsonl(self.run_dir / "metrics.jsonl", record)
            append_jsonl(self.run_dir / "timings.jsonl", {"epoch": record["epoch"], "seconds": seconds})
            checkpoints.save_last(self.run_dir / "last.pt", self.vae, self.step.optimizer, self.config, p, rng)
            self.logger.epoch(record | {"seconds": seconds}, self.vae, self.data)  # after the checkpoint

    def train_batches(self) -> None:
        """SVI steps over the epoch's batches from ``progress.batch`` on; −ELBO summed over the
        ranks into ``progress.epoch_loss`` (read from the device once, at the end, or at an
        interruption). The batch order is seeded by (seed, epoch), the same on every rank and
        after a resume. A semi-supervised run follows each step by one on a labelled batch
        (:meth:`labelled_step`)."""
        p, trainer, group, split = self.progress, self.trainer, self.group, self.train_split
        steps_per_epoch = math.ceil(len(split) / trainer.batch_size)
        total = torch.tensor(p.epoch_loss / group.world, device=split.x.device)  # this rank's share
        labelled = torch.tensor(p.labelled_loss, device=split.x.device)
        batches = split.batches(trainer.batch_size, shuffle=True, seed=self.seed * 1_000_003 + p.epoch,
                                group=group, start=p.batch)
        for xb in batches:  # (B / W, D), re-binarised
            if trainer.tau_update == "step":
                self.vae.tau = trainer.tau(p.epoch + p.batch / steps_per_epoch)
            try:
                loss = self.step(xb)
                total = total + loss / group.world  # the loss is W × the shard's −ELBO
                p.step += 1
                self._show(loss, len(xb) * group.world)
                if self.labelled is not None:
                    labelled = labelled + self.labelled_step()
            except NonFiniteStep as bad:
                self.non_finite(bad, xb)
            p.batch += 1
            if self.stop_requested(xb.device):
                p.epoch_loss, p.labelled_loss = float(group.sum(total)), float(labelled)
                self.interrupt()
            if self.out_of_time(xb.device):
                p.epoch_loss, p.labelled_loss = float(group.sum(total)), float(labelled)
                self.pause()
        p.epoch_loss, p.labelled_loss = float(group.sum(total)), float(labelled)  # over all ranks, read once

    def labelled_step(self) -> torch.Tensor:
        """One step on the labelled batch that follows the current one (same epoch and batch after
        a resume); returns its loss (nats, 0-dim, on the device) and counts its images."""
        p = self.progress
        xl, yl = self.labelled.batch(self.seed, p.epoch, p.batch)  # (B_l, *event), (B_l,)
        loss = self.step(xl, yl)
        p.step += 1
        p.labelled_images += len(yl)
        return loss

    def stop_requested(self, device) -> bool:
        """SIGINT or SIGTERM seen, by this rank or (with several) by any."""
        if self.group.world == 1:
            return bool(self.stop)
        return bool(self.group.sum(torch.tensor(float(bool(self.stop)), device=device)) > 0)  # every rank agrees

    def out_of_time(self, device) -> bool:
        """``trainer.max_time`` of training wall time passed in this process (by rank 0's clock)."""
        if self.deadline is None:
            return False
        late = time.monotonic() >= self.deadline
        if self.group.world == 1:
            return late
        return bool(self.group.sum(torch.tensor(float(late and self.group.is_main), device=device)) > 0)

    def pause(self) -> None:
        """Write ``last.pt`` where training stands and raise :class:`~pyro_mvae.errors.TimeLimitReached`."""
        self.save_last()
        p = self.progress
        raise TimeLimitReached(f"reached trainer.max_time={self.trainer.max_time} at epoch {p.epoch}, batch {p.batch} "
                               f"(step {p.step}); {self.run_dir / 'last.pt'} holds it. Continue with: "
                               f"pyro-mvae train resume={self.run_dir}")

    def save_last(self) -> None:
        """Write ``last.pt`` (rank 0) with every rank's random state."""
        rng = self.group.gather_objects(checkpoints.rng_state())
        if self.group.is_main:
            checkpoints.save_last(self.run_dir / "last.pt", self.vae, self.step.optimizer, self.config,
                                  self.progress, rng)

    def interrupt(self) -> None:
        """Write ``last.pt`` where training stands and raise :class:`~pyro_mvae.errors.Interrupted`."""
        self.save_last()
        last = self.run_dir / "last.pt"
        signum, p = self.stop.signum or 2, self.progress
        raise Interrupted(signum, f"stopped by signal {signum} at epoch {p.epoch}, batch {p.batch} "
                                  f"(step {p.step}); the checkpoint {last} holds it. Resume with: "
                                  f"pyro-mvae train resume={self.run_dir}")

    def non_finite(self, bad: NonFiniteStep, xb: torch.Tensor) -> None:
        """Skip and count the step, or stop with the step, the non-finite sites and the last checkpoint."""
        p = self.progress
        if self.trainer.on_nonfinite == "skip":
            p.skipped_steps += 1
            return
        last = self.run_dir / "last.pt"
        where = (f"{last} (end of epoch {p.epoch - 1})" if p.epoch > 0 and last.exists()
                 else "none yet (the run had not finished an epoch)")
        raise Diverged(
            f"non-finite loss or gradient at step {p.step} (epoch {p.epoch}, batch {p.batch}; loss "
            f"{bad.loss}, gradient sum {bad.grad_sum}); {non_finite_sites(self.vae, xb)}. The "
            f"parameters were not updated by it. Last good checkpoint: {where}. Lower trainer.lr, "
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
