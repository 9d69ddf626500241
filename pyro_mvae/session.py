"""One training run from a composed configuration: new, resumed, or one rank of several
processes; what ``pyro-mvae train`` and each job of a sweep run."""

import json
import os
import time
from pathlib import Path

import torch

from pyro_mvae.compose import (
    OWN_NET,
    build_from_config,
    check_config,
    compose_config,
    groups,
    objective_name,
    trainer_settings,
)
from pyro_mvae.errors import ConfigError
from pyro_mvae.evaluation.evaluate import evaluate_final, model_figures
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.runs import resolve_device
from pyro_mvae.tracking import mlflow_runs as tracking
from pyro_mvae.training import checkpoints, distributed
from pyro_mvae.training.checkpoints import holds_run
from pyro_mvae.training.train import absolute_paths, fit, patience_exhausted

RESUMABLE = ("resume", "trainer.epochs", "trainer.progress", "trainer.threads", "trainer.eval_limit",
             "trainer.eval_samples", "trainer.eval_chunk_size", "trainer.eval_batch_size", "trainer.compile",
             "trainer.max_time")
"""The only settings a resume may give; the rest is the run's own configuration."""


def train_config(config: dict, overrides: list[str], encoder=None, decoder=None) -> dict:
    """Train the run a composed and checked ``config`` describes (``overrides``: the command
    line's, which a resume checks); returns the report. ``encoder`` and ``decoder``: the user's own
    modules, for resuming a run trained on them (:func:`resume_run`).

    ``resume=RUN_DIR`` continues that run from its ``last.pt``; so does the same command again when
    it names the ``run_dir`` of an unfinished run with the same settings (:func:`continued_config`:
    a run stopped by ``trainer.max_time``, a signal or a requeue). Under torchrun (``WORLD_SIZE`` >
    1 in the environment) this process is one rank; with ``trainer.devices=W`` it spawns W
    ranks here (see :mod:`pyro_mvae.training.distributed`).

    Raises:
        ConfigError: see :func:`resumed_config`.
        FileExistsError: a new run's ``run_dir`` already holds a run with other settings.
    """
    resume = None
    if not config["resume"] and config["run_dir"] and holds_run(Path(config["run_dir"])):
        config, overrides = continued_config(config, overrides)
    if config["resume"]:
        config, resume = resumed_config(config, overrides, own_modules=encoder is not None)
        check_config(config)  # the checkpoint's own configuration is checked as well
    trainer = trainer_settings(config)
    config["run_dir"] = config["run_dir"] or default_run_dir(config)
    group = distributed.from_environment()
    if group is None and trainer.devices > 1:
        _preflight(config)
        distributed.spawn(train_rank, trainer.devices, config, resume)
        return json.loads((Path(config["run_dir"]) / "report.json").read_text())
    if group is None:
        return train_rank(distributed.SINGLE, config, resume, encoder, decoder)
    try:
        return train_rank(group, config, resume)
    finally:
        torch.distributed.destroy_process_group()


def resume_run(run_dir, epochs: int | None = None, encoder=None, decoder=None) -> dict:
    """Continue the run in ``run_dir`` from its ``last.pt`` in this process, as ``pyro-mvae train
    resume=RUN_DIR [trainer.epochs=N]`` does (checkpoints, metrics, final evaluation, figures,
    summary line): ``epochs`` raises the run's ``trainer.epochs``; ``encoder`` and ``decoder`` are
    the same modules again for a run trained on networks of the user's own (``net: own``), which
    the command line cannot resume. Returns the report (``report.json``).

    Raises:
        ConfigError: see :func:`resumed_config`, and for ``net: own`` without the modules.
        pyro_mvae.errors.RunError: for a missing or unreadable ``last.pt``.
    """
    overrides = [f"resume={run_dir}"] + ([f"trainer.epochs={epochs}"] if epochs is not None else [])
    return train_config(compose_config(overrides), overrides, encoder, decoder)


def continued_config(config: dict, overrides: list[str]) -> tuple[dict, list[str]]:
    """``config`` and ``overrides`` as a resume of ``config["run_dir"]``, which holds a run: the
    same command continues a run that was stopped (``trainer.max_time``, a signal, a cluster's
    requeue) when every setting but the :data:`RESUMABLE` ones is the run's own. Prints one line
    saying so.

    Raises:
        FileExistsError: the run directory holds a run with other settings (they are named), or a
            run that has not written its first checkpoint.
    """
    run_dir = Path(config["run_dir"])
    if not (run_dir / "last.pt").exists():
        raise FileExistsError(f"run directory {run_dir} already holds a run that has no last.pt to continue from: "
                              "choose another run_dir")
    checkpoint = checkpoints.load(run_dir / "last.pt", resume=True)
    differ = _differences(_comparable(_as_run(config)), _comparable(checkpoint["config"]))
    if differ:
        raise FileExistsError(f"run directory {run_dir} already holds a run with other settings "
                              f"({'; '.join(differ[:5])}): choose another run_dir, or continue that run with "
                              f"resume={run_dir}")
    progress = checkpoint["progress"]
    print(f"pyro-mvae: continuing the run in {run_dir} from epoch {progress['epoch']}, batch {progress['batch']}",
          flush=True)
    given = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in RESUMABLE]
    return config | {"resume": str(run_dir)}, [f"resume={run_dir}", *given]


def _as_run(config: dict) -> dict:
    """A composed config as its run records it: the objective named, data paths absolute."""
    named = {"objective": config["objective"] | {"name": objective_name(config)}}
    return config | named | {"data": absolute_paths(config["data"])}


def _comparable(config: dict) -> dict:
    """The settings that make a run what it is: the groups (less the :data:`RESUMABLE` trainer
    settings), the seed and the tags, flattened to ``{"group.key": value}``."""
    resumable = {key.split(".")[1] for key in RESUMABLE if key.startswith("trainer.")}
    flat = {"seed": config["seed"], "tags": list(config.get("tags") or [])}
    for group in ("data", "prior", "guide", "likelihood", "objective", "net", "trainer"):
        flat |= {f"{group}.{k}": v for k, v in config[group].items() if not (group == "trainer" and k in resumable)}
    return flat


def _differences(given: dict, saved: dict) -> list[str]:
    """``key: given vs the run's`` for every setting both have that differs (a setting added by a
    later release is missing from an earlier run's, which had its default)."""
    return [f"{key}: {given[key]!r} here, {saved[key]!r} in the run"
            for key in sorted(set(given) & set(saved)) if given[key] != saved[key]]


def resumed_config(config: dict, overrides: list[str], own_modules: bool = False) -> tuple[dict, str]:
    """The configuration of the run ``config["resume"]`` (from its ``last.pt``) with only the
    :data:`RESUMABLE` settings taken from ``config``; and the checkpoint's path. A run that
    finished training but has no ``report.json`` (stopped in its final evaluation) resumes
    straight into the evaluation.

    Raises:
        ConfigError: for any other override, a finished and reported run, another number of
            processes, or a run on the user's own networks (``net: own``) without ``own_modules``.
        pyro_mvae.errors.RunError: for a missing or unreadable ``last.pt``.
    """
    given = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    others = [key for key in given if key not in RESUMABLE]
    if others:
        raise ConfigError(f"resume continues the run's own configuration; only "
                          f"{', '.join(RESUMABLE[1:])} may be given with it, got {', '.join(others)}")
    run_dir = Path(config["resume"])
    ckpt = checkpoints.load(run_dir / "last.pt", resume=True)
    resumed = ckpt["config"]
    if resumed["net"].get("name") == OWN_NET and not own_modules:
        raise ConfigError(f"{run_dir} was trained on networks of your own (net: own), which a configuration cannot "
                          "name, so the command line cannot resume it; resume it in Python with the same modules: "
                          f"pyro_mvae.resume_run('{run_dir}', epochs=N, encoder=body, decoder=decoder) "
                          "(docs/guide/python.md)")
    for key in RESUMABLE[1:]:
        if key in given:
            resumed["trainer"][key.split(".")[1]] = config["trainer"][key.split(".")[1]]
    resumed.update(run_dir=str(run_dir), resume=None)
    if (run_dir / "report.json").exists():  # else it stopped in or before its final evaluation
        _refuse_finished(run_dir, ckpt["progress"], resumed["trainer"])
    world = int(os.environ.get("WORLD_SIZE", resumed["trainer"]["devices"]))
    if len(ckpt["rng"]) != world:
        raise ConfigError(f"{run_dir} was trained on {len(ckpt['rng'])} processes; resume it on as "
                          f"many (trainer.devices={len(ckpt['rng'])}), this is {world}")
    return resumed, str(run_dir / "last.pt")


def _refuse_finished(run_dir: Path, progress: dict, trainer: dict) -> None:
    """Raises ConfigError for a run that trained all its epochs, or stopped early, and reported."""
    epochs, patience = trainer["epochs"], trainer["patience"]
    if progress["epoch"] >= epochs and progress["batch"] == 0:
        raise ConfigError(f"{run_dir} has finished its {epochs} epochs: give trainer.epochs=N with "
                          f"N > {epochs} to train it further")
    if progress["batch"] == 0 and patience_exhausted(progress, trainer):
        raise ConfigError(f"{run_dir} stopped early: no better validation ELBO in the {patience} epochs "
                          f"after epoch {progress['best_epoch']}; it is finished (its report.json holds "
                          "the result), start a new run to train with other settings")


def _preflight(config: dict) -> None:
    """Build the data, the model and the objective once here, so that a bad setting is refused
    before any process is spawned."""
    _, vae = build_from_config(config, torch.device("cpu"))
    build_objective(**config["objective"], vae=vae)


def train_rank(group, config: dict, resume: str | None = None, encoder=None, decoder=None) -> dict:
    """Train the run ``config`` describes (resumed from the checkpoint ``resume``; on the user's own
    ``encoder`` and ``decoder`` for ``net: own``) as one rank of ``group``, write its figures, print
    its summary line; returns the report."""
    device = distributed.device_for(group, resolve_device(config["device"]))
    torch.manual_seed(config["seed"])  # parameter initialisation, the same on every rank
    data, vae = build_from_config(config, device, encoder, decoder)
    checkpoint = None if resume is None else checkpoints.load(resume, device, resume=True)
    run_dir = Path(config["run_dir"])
    report = fit(vae, data, trainer_settings(config), config["objective"], run_dir, config, seed=config["seed"],
                 group=group, resume=checkpoint, evaluate=evaluate_final)
    if not group.is_main:
        return report
    line = summary(report, run_dir)
    if config["trainer"].get("figures", True):
        x, labels = data.test.x[:2000], data.test.y[:2000]  # (N, *event), (N,)
        model_figures(vae, run_dir, x, labels, data.event_shape)
        tracking.log_figures(run_dir)
        line += f"; figures in {run_dir / 'figures'}/"
    print(line)
    return report


def default_run_dir(config: dict) -> str:
    """``runs/<date>-<time>_<data>_<prior>_<guide>[-<estimator>]_<objective>[-<n>]``: the guide's
    estimator is its non-default gradient route (``gumbel_rao``, ``soft`` Concrete, a baseline);
    ``-2``, ``-3``, ... when a run of the same kind already took the name in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    guide = config["guide"]
    estimator = groups()["guide"][guide["name"]].defaults().get("estimator")
    route = [guide["estimator"]] if guide.get("estimator", estimator) != estimator else []
    route += ["soft"] if guide.get("straight_through") is False else []
    route += [guide["baseline"]] if guide.get("baseline", "none") != "none" else []
    names = [config["data"]["name"], config["prior"]["name"], "-".join([guide["name"], *route]),
             objective_name(config)]
    base = f"runs/{stamp}_{'_'.join(names)}"
    path, n = base, 1
    while Path(path).exists():  # another run of the same kind started in the same second
        n += 1
        path = f"{base}-{n}"
    return path


def summary(report: dict, run_dir: Path) -> str:
    """The line ``pyro-mvae train`` prints at the end of a run: test IWAE log p(x) and ELBO with
    their standard errors, the classification error of a semi-supervised run, the best epoch and
    the run directory."""
    error = f", classification error {100 * report['test_error']:.2f}%" if "test_error" in report else ""
    return (f"{report['dataset']} test ({report['n_test']} images): "
            f"IWAE log p(x) (K={report['K']}) = {report['test_iwae_ll']:.2f} ± "
            f"{report['test_iwae_ll_se']:.2f} nats, ELBO = {report['test_elbo']:.2f} ± "
            f"{report['test_elbo_se']:.2f} nats{error}; best epoch {report['best_epoch']} of "
            f"{report['epochs_run']}; run directory {run_dir}")
