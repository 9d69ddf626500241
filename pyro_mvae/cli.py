"""The ``pyro-mvae`` command: ``train``, ``evaluate``, ``sample`` and ``compare``.

``train`` takes Hydra overrides: ``group=option`` swaps a component (``prior=mixture``), and
``key=value`` sets a field (``trainer.epochs=100``, ``data.root=PATH``, ``device=cuda``). The
other commands take a run directory and ordinary options (``--help`` lists them).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pyro_mvae import __version__
from pyro_mvae.errors import ConfigError, Diverged, Interrupted, JobsFailed
from pyro_mvae.infer.ais import AISSettings
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.training import checkpoints, distributed
from pyro_mvae.training.config import (build_from_config, check_config, compose_config, describe_config, groups,
                                       objective_name, resolve_objective, trainer_settings)
from pyro_mvae.training.checkpoints import holds_run
from pyro_mvae.training.runs import resolve_device
from pyro_mvae.training.train import apply_threads, fit

USAGE = """usage: pyro-mvae train [group=option ...] [key=value ...] [--help | --cfg job]
       pyro-mvae train resume=RUN_DIR [trainer.epochs=N]
       pyro-mvae train -m key=a,b,c ... [hydra/launcher=joblib] [hydra/sweeper=optuna] [hydra.sweep.dir=DIR]
       pyro-mvae evaluate RUN_DIR [-K 5000] [--split test] [--limit N] [--chunk-size 500 | --memory-mib M] [--device auto]
                          [--estimator ais [--ais-steps 500] [--ais-chains 16]] [--bdmc N [--bdmc-steps 10,100,1000]]
       pyro-mvae sample RUN_DIR [-n 64] [--out PATH]
       pyro-mvae compare RUN_OR_SWEEP_DIR ... [--baseline OVERRIDES] [--format markdown|csv|latex]

  pyro-mvae train                                   the seed's factorized mixture prior on digits
  pyro-mvae train prior=mixture guide=gaussian data=mnist trainer.epochs=100
  pyro-mvae train prior=vamp guide=flow net=conv data=mnist data.root=PATH device=cuda
  pyro-mvae train trainer.devices=2                 one model, two processes (DistributedDataParallel)

  pyro-mvae train experiment=mnist_core data.root=PATH prior=mixture   the README's MNIST protocol
  pyro-mvae train -m prior=standard,mixture guide=gaussian,marginal_mixture seed=0,1 skip_invalid=true
  pyro-mvae train -m experiment=search_digits hydra/sweeper=optuna      a search (pip install "pyro_mvae[sweeps]")
"""



def usage() -> str:
    """The usage text, with the config groups and their options read from the registries."""
    options = "; ".join(f"{group} ({', '.join(names)})" for group, names in groups().items())
    experiments = ", ".join(sorted(f.stem for f in (Path(__file__).parent / "conf" / "experiment").glob("*.yaml")))
    return (f"{USAGE}\nconfig groups: {options}; experiment ({experiments}).\n"
            "A key the chosen component lacks is refused with the component's keys.")


RESUMABLE = ("resume", "trainer.epochs", "trainer.progress", "trainer.threads", "trainer.eval_limit",
             "trainer.eval_samples", "trainer.eval_chunk_size", "trainer.eval_batch_size")
"""The only settings a resume may give: the rest is the run's own configuration."""


HELP_FLAGS = ("-h", "--help", "--cfg", "job")
"""``pyro-mvae train [overrides] --help`` prints the configuration with every key documented;
``--cfg job`` prints it as plain YAML (as a Hydra app does)."""


def train(overrides: list[str]) -> dict:
    """Run ``pyro-mvae train``; returns the report. Raises user errors (ValueError, Hydra errors).

    Every setting is checked against its component's typed config
    (:func:`pyro_mvae.training.config.check_config`) before any work.
    ``resume=RUN_DIR`` continues that run from its ``last.pt``. Under torchrun (``WORLD_SIZE`` >
    1 in the environment) this process is one rank; with ``trainer.devices=W`` it spawns W
    ranks here (see :mod:`pyro_mvae.training.distributed`)."""
    if {"-m", "--multirun"} & set(overrides):
        from pyro_mvae.sweeps.app import multirun

        return multirun([o for o in overrides if o not in ("-m", "--multirun")])
    config = compose_config([o for o in overrides if o not in HELP_FLAGS])
    check_config(config)
    resolve_objective(config)
    if "--cfg" in overrides:  # Hydra's `--cfg job`: the resolved configuration, nothing run
        print(OmegaConf.to_yaml(config), end="")
        return {}
    if {"-h", "--help"} & set(overrides):
        print(f"{USAGE.splitlines()[0]}\n\nresolved configuration (keys of the chosen components, "
              f"defaults unless overridden):\n{describe_config(config)}")
        return {}
    resume = None
    if config["resume"]:
        config, resume = resumed_config(config, overrides)
        check_config(config)  # the checkpoint's own configuration is checked as well
    trainer = trainer_settings(config)
    config["run_dir"] = config["run_dir"] or default_run_dir(config)
    if resume is None and holds_run(Path(config["run_dir"])):
        raise FileExistsError(f"run directory {config['run_dir']} already holds a run: choose another "
                              f"run_dir, or continue it with resume={config['run_dir']}")
    group = distributed.from_environment()
    if group is None and trainer.devices > 1:
        _preflight(config)
        distributed.spawn(train_rank, trainer.devices, config, resume)
        return json.loads((Path(config["run_dir"]) / "report.json").read_text())
    if group is None:
        return train_rank(distributed.SINGLE, config, resume)
    try:
        return train_rank(group, config, resume)
    finally:
        torch.distributed.destroy_process_group()


def resumed_config(config: dict, overrides: list[str]) -> tuple[dict, str]:
    """The configuration of the run ``config["resume"]`` (from its ``last.pt``) with only the
    :data:`RESUMABLE` settings taken from ``config``; and the checkpoint's path. A run that
    finished training but has no ``report.json`` (stopped in its final evaluation) resumes
    straight into the evaluation.

    Raises:
        ConfigError: for any other override, a finished and reported run, or another number of
            processes.
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
    if progress["batch"] == 0 and (progress["epoch"] - 1) - progress["best_epoch"] >= patience:
        raise ConfigError(f"{run_dir} stopped early: no better validation ELBO in the {patience} epochs "
                          f"after epoch {progress['best_epoch']}; it is finished (its report.json holds "
                          "the result), start a new run to train with other settings")


def _preflight(config: dict) -> None:
    """Build the data, the model and the objective once here, so that a bad setting is refused
    before any process is spawned."""
    _, vae = build_from_config(config, torch.device("cpu"))
    build_objective(**config["objective"], vae=vae)


def train_rank(group, config: dict, resume: str | None = None) -> dict:
    """Train the run ``config`` describes (resumed from the checkpoint ``resume``) as one rank of
    ``group``, write its figures, print its summary line; returns the report."""
    device = distributed.device_for(group, resolve_device(config["device"]))
    torch.manual_seed(config["seed"])  # parameter initialisation, the same on every rank
    data, vae = build_from_config(config, device)
    checkpoint = None if resume is None else checkpoints.load(resume, device, resume=True)
    run_dir = Path(config["run_dir"])
    report = fit(vae, data, trainer_settings(config), config["objective"], run_dir, config, seed=config["seed"],
                 group=group, resume=checkpoint)
    if not group.is_main:
        return report
    line = summary(report, run_dir)
    if config["trainer"].get("figures", True):
        from pyro_mvae.evaluation.evaluate import model_figures

        x, labels = data.test.x[:2000], data.test.y[:2000]  # (N, D), (N,)
        model_figures(vae, run_dir, x, labels, data.image_shape)
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
    return (f"{report['dataset']} test ({report['n_test']} images): "
            f"IWAE log p(x) (K={report['K']}) = {report['test_iwae_ll']:.2f} ± "
            f"{report['test_iwae_ll_se']:.2f} nats, ELBO = {report['test_elbo']:.2f} ± "
            f"{report['test_elbo_se']:.2f} nats; best epoch {report['best_epoch']} of "
            f"{report['epochs_run']}; run directory {run_dir}")


def evaluate_command(args: list[str]) -> None:
    from pyro_mvae.evaluation.evaluate import evaluate_run

    parser = argparse.ArgumentParser(prog="pyro-mvae evaluate",
                                     description="IWAE log-likelihood, diagnostics and figures of a run")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("-K", "--num-samples", type=int, default=5000, help="importance samples K")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--chunk-size", type=int, default=500, help="particles drawn at once")
    parser.add_argument("--memory-mib", type=float, default=None,
                        help="pick the chunk size that fits this memory budget (overrides --chunk-size)")
    parser.add_argument("--batch-size", type=int, default=100, help="images scored at once")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (0: one per core); 1 stays fast beside other work")
    _annealing_arguments(parser)
    opts = parser.parse_args(args)
    if opts.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {opts.threads}")
    ais = AISSettings(steps=opts.ais_steps, chains=opts.ais_chains, leapfrog=opts.ais_leapfrog,
                      init=opts.ais_init, max_particles=opts.ais_max_particles)
    bdmc_steps = _positive_ints(opts.bdmc_steps, "--bdmc-steps")
    if opts.bdmc < 0:
        raise ValueError(f"--bdmc must be >= 0 (images to simulate), got {opts.bdmc}")
    apply_threads(opts.threads)
    report = evaluate_run(opts.run_dir, opts.num_samples, opts.split, opts.limit, opts.chunk_size,
                          opts.batch_size, opts.device, make_figures=not opts.no_figures,
                          memory_mib=opts.memory_mib, ais=ais if opts.estimator == "ais" else None,
                          bdmc=opts.bdmc, bdmc_steps=bdmc_steps)
    print(f"{report['data']} {report['split']} ({report['n']} images): IWAE log p(x) (K={report['K']}) "
          f"= {report['iwae_ll']:.2f} ± {report['iwae_ll_se']:.2f} nats "
          f"({report['iwae_bits_per_dim']:.4f} bits/dim), ELBO = {report['elbo']:.2f} ± "
          f"{report['elbo_se']:.2f}, gap {report['gap']:.2f}; active units "
          f"{report['active_units']}/{report['latent_dim']}; " + _khat_summary(report)
          + f"; chunks of {report['chunk_size']} particles")
    print("| K | IWAE log p(x) (nats) |\n|---|---|")
    for k, row in report["k_sweep"].items():
        print(f"| {k} | {row['mean']:.2f} ± {row['se']:.2f} |")
    print(_annealing_summary(report), end="")
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {opts.run_dir / 'eval.json'}" + ("" if opts.no_figures else f" and {opts.run_dir / 'figures'}/"))


def _annealing_arguments(parser) -> None:
    defaults = AISSettings()
    parser.add_argument("--estimator", default="iwae", choices=["iwae", "ais"],
                        help="ais: annealed importance sampling as well as IWAE (lower -K to make IWAE cheap)")
    parser.add_argument("--ais-steps", type=int, default=defaults.steps, help="T, annealing distributions")
    parser.add_argument("--ais-chains", type=int, default=defaults.chains, help="S, chains per image")
    parser.add_argument("--ais-leapfrog", type=int, default=defaults.leapfrog, help="L, leapfrog steps per transition")
    parser.add_argument("--ais-init", default=defaults.init, choices=["guide", "prior"],
                        help="the initial distribution: q(z | x) or p(z)")
    parser.add_argument("--ais-max-particles", type=int, default=defaults.max_particles,
                        help="chains × images annealed at once (memory bound)")
    parser.add_argument("--bdmc", type=int, default=0, metavar="N",
                        help="BDMC: lower and upper bounds on N images simulated from the model")
    parser.add_argument("--bdmc-steps", default="10,100,1000", help="the T values of BDMC, comma-separated")


def _positive_ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be comma-separated integers >= 1, e.g. 10,100,1000; got {text!r}")
    return values


def _annealing_summary(report: dict) -> str:
    out = ""
    if "ais" in report:
        a = report["ais"]
        out += (f"AIS log p(x) (T={a['steps']}, S={a['chains']}, L={a['leapfrog']}) = {a['ll']:.2f} ± "
                f"{a['ll_se']:.2f} nats, AIS − IWAE = {a['minus_iwae']:.2f} ± {a['minus_iwae_se']:.2f} "
                f"(paired); {a['seconds_per_image']:.2f} s per image, {a['cost_ratio_to_iwae']:.1f}× IWAE's\n")
    if "bdmc" in report:
        b = report["bdmc"]
        out += f"BDMC on {b['n']} simulated images:\n| T | lower | upper | gap (nats) |\n|---|---|---|---|\n"
        for t, row in b["by_steps"].items():
            out += f"| {t} | {row['lower']:.2f} | {row['upper']:.2f} | {row['gap']:.2f} ± {row['gap_se']:.2f} |\n"
        out += f"gap below 1 nat from T = {b['steps_for_gap_below_1_nat']}\n"
    return out


def _khat_summary(report: dict) -> str:
    if report["khat_share_above_0.7"] is None:
        return "k̂ not computed (K too small)"
    return f"k̂ > 0.7 for {100 * report['khat_share_above_0.7']:.1f}% (max {report['khat_max']:.2f})"


def sample_command(args: list[str]) -> None:
    from pyro_mvae.evaluation.figures import image_grid
    from pyro_mvae.training.runs import load_run

    parser = argparse.ArgumentParser(prog="pyro-mvae sample", description="a grid of samples from a run's model")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("-n", type=int, default=64, help="number of samples")
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default RUN_DIR/samples.png)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    opts = parser.parse_args(args)
    if opts.n < 1:
        raise ValueError(f"-n must be >= 1, got {opts.n}")
    vae, _, _, data = load_run(opts.run_dir, resolve_device(opts.device))
    torch.manual_seed(opts.seed)
    out = opts.out or opts.run_dir / "samples.png"
    image_grid(vae.sample(opts.n), data.image_shape, out)
    print(f"wrote {opts.n} samples to {out}")


def compare_command(args: list[str]) -> None:
    from pyro_mvae.evaluation.compare import FORMATS, compare_table

    parser = argparse.ArgumentParser(prog="pyro-mvae compare",
                                     description="one table of evaluated runs: rows by what differs, seeds aggregated")
    parser.add_argument("paths", type=Path, nargs="+", help="run directories and sweep directories")
    parser.add_argument("--baseline", default=None, metavar="OVERRIDES",
                        help="the row of the paired Δ, by its overrides, e.g. 'route=standard_gaussian' "
                             "(default: the first row)")
    parser.add_argument("--format", default="markdown", choices=FORMATS)
    opts = parser.parse_args(args)
    print(compare_table(opts.paths, opts.baseline, opts.format))


COMMANDS = {"train": train, "evaluate": evaluate_command, "sample": sample_command,
            "compare": compare_command}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"pyro-mvae {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"pyro-mvae: unknown command '{args[0]}'\n{usage()}", file=sys.stderr)
        return 2
    try:
        COMMANDS[args[0]](args[1:])
    except Interrupted as stop:
        print(f"pyro-mvae: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:  # before any training started: nothing to save
        print("pyro-mvae: interrupted", file=sys.stderr)
        return 130
    except Diverged as err:
        print(f"pyro-mvae: training diverged: {err}", file=sys.stderr)
        return 1
    except JobsFailed as err:
        print(f"pyro-mvae: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileExistsError, HydraException, OmegaConfBaseException) as err:
        print(f"pyro-mvae: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
