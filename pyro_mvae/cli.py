"""The ``pyro-mvae`` command: ``train``, ``evaluate``, ``sample`` and ``compare``.

``train`` takes Hydra overrides: ``group=option`` swaps a component (``prior=mixture``), and
``key=value`` sets a field (``trainer.epochs=100``, ``data.root=PATH``, ``device=cuda``). The
other commands take a run directory and ordinary options (``--help`` lists them).
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pyro_mvae import __version__
from pyro_mvae.compose import check_config, compose_config, describe_config, groups, resolve_objective
from pyro_mvae.config import BROKEN, did_you_mean
from pyro_mvae.errors import ConfigError, Diverged, Interrupted, JobsFailed, TimeLimitReached
from pyro_mvae.infer.ais import AISSettings
from pyro_mvae.runs import prefer_cpu_kernels, resolve_device
from pyro_mvae.session import train_config
from pyro_mvae.training.train import apply_threads

USAGE = """usage: pyro-mvae train [group=option ...] [key=value ...] [--help | --cfg job]
       pyro-mvae train resume=RUN_DIR [trainer.epochs=N]
       pyro-mvae train -m key=a,b,c ... [hydra/launcher=joblib] [hydra/sweeper=optuna] [hydra.sweep.dir=DIR]
       pyro-mvae evaluate RUN_DIR [-K 5000] [--split test] [--limit N] [--chunk-size N | --memory-mib M]
                          [--device auto]
                          [--estimator ais [--ais-steps 500] [--ais-chains 16]] [--bdmc N [--bdmc-steps 10,100,1000]]
       pyro-mvae sample RUN_DIR [-n 64] [--out PATH]
       pyro-mvae compare RUN_OR_SWEEP_DIR ... [--baseline OVERRIDES] [--format markdown|csv|latex] [--limit N]

  pyro-mvae train                                   the seed's factorized mixture prior on digits
  pyro-mvae train prior=mixture guide=gaussian data=mnist trainer.epochs=100
  pyro-mvae train prior=vamp guide=flow net=conv data=mnist data.root=PATH device=cuda
  pyro-mvae train trainer.devices=2                 one model, two processes (DistributedDataParallel)

  pyro-mvae train experiment=mnist_core data.root=PATH prior=mixture   the README's MNIST protocol
  pyro-mvae train -m prior=standard,mixture guide=gaussian,marginal_mixture seed=0,1 skip_invalid=true
  pyro-mvae train -m experiment=search_digits       an Optuna search (pip install "pyro_mvae[sweeps]")
"""



def usage() -> str:
    """The usage text, with the config groups and their options read from the registries, and
    the packaged routes and experiments (:func:`report_broken` names the installed components
    left out because they cannot be loaded)."""
    options = "; ".join(f"{group} ({', '.join(names)})" for group, names in groups().items())
    conf = Path(__file__).parent / "conf"
    routes, experiments, ablations = (", ".join(sorted(f.stem for f in (conf / folder).glob("*.yaml")))
                                      for folder in ("route", "experiment", "ablation"))
    return (f"{USAGE}\nconfig groups: {options}; route ({routes}); experiment ({experiments}); "
            f"ablation ({ablations}).\n"
            "A key the chosen component lacks is refused with the component's keys.")


def report_broken() -> bool:
    """Print one error line per installed component whose entry point cannot be loaded (its
    package and the fix, :data:`~pyro_mvae.config.BROKEN`), after a listing of the groups;
    returns whether there was one."""
    for why in sorted(BROKEN.values()):
        print(f"pyro-mvae: error: {why}", file=sys.stderr)
    return bool(BROKEN)


HELP_FLAGS = ("-h", "--help", "--cfg", "job")
"""``pyro-mvae train [overrides] --help`` prints the configuration with every key documented;
``--cfg job`` prints it as plain YAML (as a Hydra app does)."""


def train(overrides: list[str]) -> dict:
    """Run ``pyro-mvae train``; returns the report. Raises user errors (ValueError, Hydra errors).

    Every setting is checked against its component's typed config
    (:func:`pyro_mvae.compose.check_config`) before any work.
    ``resume=RUN_DIR`` continues that run from its ``last.pt``. Under torchrun (``WORLD_SIZE`` >
    1 in the environment) this process is one rank; with ``trainer.devices=W`` it spawns W
    ranks here (see :mod:`pyro_mvae.training.distributed`)."""
    if {"-m", "--multirun"} & set(overrides):
        from pyro_mvae.sweeps.app import multirun

        if set(HELP_FLAGS) & set(overrides):
            raise ConfigError("--help and --cfg describe one job: give one job's overrides without -m")
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
    return train_config(config, overrides)


def evaluate_parser() -> argparse.ArgumentParser:
    """The options of ``pyro-mvae evaluate`` (the docs print its help)."""
    parser = argparse.ArgumentParser(prog="pyro-mvae evaluate",
                                     description="IWAE log-likelihood, diagnostics and figures of a run")
    parser.add_argument("run_dir", type=Path, help="a run directory (train writes one)")
    parser.add_argument("-K", "--num-samples", type=int, default=5000,
                        help="importance samples K (default: %(default)s)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"],
                        help="the images scored (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="particles drawn at once (default: 5000 // --batch-size on a CPU, 500 on a GPU)")
    parser.add_argument("--memory-mib", type=float, default=None,
                        help="pick the chunk size that fits this memory budget (overrides --chunk-size)")
    parser.add_argument("--batch-size", type=int, default=100, help="images scored at once (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available (default: %(default)s)")
    parser.add_argument("--no-figures", action="store_true", help="skip RUN_DIR/figures/")
    parser.add_argument("--compile", default="auto", choices=["auto", "true", "false"],
                        help="IWAE under torch.compile; auto: on CPU where it pays (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (0: one per core); 1 stays fast beside other work (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seeds every draw: the same command gives the same numbers (default: the run's seed)")
    _annealing_arguments(parser)
    return parser


def evaluate_command(args: list[str]) -> None:
    """Run ``pyro-mvae evaluate`` with its command-line arguments (see :func:`evaluate_parser`) and
    print the summary."""
    from pyro_mvae.evaluation.evaluate import evaluate_run

    opts = evaluate_parser().parse_args(args)
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
                          bdmc=opts.bdmc, bdmc_steps=bdmc_steps, compile=opts.compile, seed=opts.seed)
    print(f"{report['data']} {report['split']} ({report['n']} images): IWAE log p(x) (K={report['K']}) "
          f"= {report['iwae_ll']:.2f} ± {report['iwae_ll_se']:.2f} nats "
          f"({report['iwae_bits_per_dim']:.4f} bits/dim), ELBO = {report['elbo']:.2f} ± "
          f"{report['elbo_se']:.2f}, gap {report['gap']:.2f}; active units "
          f"{report['active_units']}/{report['latent_dim']}; " + _khat_summary(report)
          + f"; chunks of {report['chunk_size']} particles; seed {report['seed']}")
    print("| K | IWAE log p(x) (nats) |\n|---|---|")
    for k, row in report["k_sweep"].items():
        print(f"| {k} | {row['mean']:.2f} ± {row['se']:.2f} |")
    print(_annealing_summary(report), end="")
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {opts.run_dir / 'eval.json'} (kept as {opts.run_dir / report['kept']})"
          + ("" if opts.no_figures else f" and {opts.run_dir / 'figures'}/"))


def _annealing_arguments(parser) -> None:
    defaults = AISSettings()
    parser.add_argument("--estimator", default="iwae", choices=["iwae", "ais"],
                        help="ais: annealed importance sampling as well as IWAE (lower -K to make IWAE"
                             " cheap) (default: %(default)s)")
    parser.add_argument("--ais-steps", type=int, default=defaults.steps,
                        help="T, annealing distributions (default: %(default)s)")
    parser.add_argument("--ais-chains", type=int, default=defaults.chains,
                        help="S, chains per image (default: %(default)s)")
    parser.add_argument("--ais-leapfrog", type=int, default=defaults.leapfrog,
                        help="L, leapfrog steps per transition (default: %(default)s)")
    parser.add_argument("--ais-init", default=defaults.init, choices=["both", "guide", "prior"],
                        help="the initial distribution: both (½ q(z | x) + ½ p(z), each start's estimate "
                             "compared), q(z | x) or p(z) (default: %(default)s)")
    parser.add_argument("--ais-max-particles", type=int, default=defaults.max_particles,
                        help="chains × images annealed at once (memory bound) (default: %(default)s)")
    parser.add_argument("--bdmc", type=int, default=0, metavar="N",
                        help="BDMC: lower and upper bounds on N images simulated from the model (default: %(default)s)")
    parser.add_argument("--bdmc-steps", default="10,100,1000",
                        help="the T values of BDMC, comma-separated (default: %(default)s)")


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
        if "starts_disagree" in a:
            d = a["starts_disagree"]
            out += (f"AIS: {d['count']} images where the guide's start and the prior's differ by > "
                    f"{d['threshold_nats']:g} nat beyond their noise"
                    + (f" (images {', '.join(map(str, d['images'][:10]))}{', ...' if d['count'] > 10 else ''}: "
                       f"see ais_guide and ais_prior in per_datapoint_{report['split']}.csv)" if d["count"] else "")
                    + "\n")
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


def sample_parser() -> argparse.ArgumentParser:
    """The options of ``pyro-mvae sample``."""
    parser = argparse.ArgumentParser(prog="pyro-mvae sample", description="a grid of samples from a run's model")
    parser.add_argument("run_dir", type=Path, help="a run directory")
    parser.add_argument("-n", type=int, default=64, help="number of samples (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default RUN_DIR/samples.png)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the draws (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available (default: %(default)s)")
    return parser


def sample_command(args: list[str]) -> None:
    """Run ``pyro-mvae sample``: draw images from a run's model into a PNG grid (see
    :func:`sample_parser`)."""
    from pyro_mvae.evaluation.figures import image_grid
    from pyro_mvae.runs import load_run

    opts = sample_parser().parse_args(args)
    if opts.n < 1:
        raise ValueError(f"-n must be >= 1, got {opts.n}")
    vae, _, _, data = load_run(opts.run_dir, resolve_device(opts.device))
    torch.manual_seed(opts.seed)
    out = opts.out or opts.run_dir / "samples.png"
    image_grid(vae.sample(opts.n), data.event_shape, out)
    print(f"wrote {opts.n} samples to {out}")


def compare_parser() -> argparse.ArgumentParser:
    """The options of ``pyro-mvae compare``."""
    from pyro_mvae.evaluation.compare import FORMATS

    parser = argparse.ArgumentParser(prog="pyro-mvae compare",
                                     description="one table of evaluated runs: rows by what differs, seeds aggregated")
    parser.add_argument("paths", type=Path, nargs="+", help="run directories and sweep directories")
    parser.add_argument("--baseline", default=None, metavar="OVERRIDES",
                        help="the row of the paired Δ, by the overrides in its label: one, e.g. "
                             "'route=standard_gaussian', or several in one quoted argument, separated by spaces, "
                             "in any order, e.g. 'prior=standard guide=gaussian'; they must pick exactly one row "
                             "(default: the first row)")
    parser.add_argument("--format", default="markdown", choices=FORMATS,
                        help="markdown, csv (numbers unrounded) or latex (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="compare every run on its first N scored images (runs scored on different numbers)")
    return parser


def compare_command(args: list[str]) -> None:
    """Run ``pyro-mvae compare``: print one table of evaluated runs (see :func:`compare_parser`)."""
    from pyro_mvae.evaluation.compare import compare_table

    opts = compare_parser().parse_args(args)
    if opts.limit is not None and opts.limit < 2:
        raise ConfigError(f"--limit must be at least 2 images (a standard error needs two), got {opts.limit}")
    print(compare_table(opts.paths, opts.baseline, opts.format, opts.limit))
    if opts.format == "markdown":
        for table in _study_tables(opts.paths):
            print("\n" + table)


def _study_tables(paths) -> list[str]:
    """The trials of each Optuna study kept in a database by a search among ``paths``
    (:func:`pyro_mvae.sweeps.study.study_table`, named by the sweep's ``sweep.json``)."""
    from pyro_mvae.sweeps.study import study_table

    tables = []
    for path in paths:
        record = Path(path) / "sweep.json"
        found = json.loads(record.read_text()).get("study") if record.is_file() else None
        if found:
            tables.append(study_table(found["storage"], found["name"]))
    return [t for t in tables if t]


COMMANDS = {"train": train, "evaluate": evaluate_command, "sample": sample_command,
            "compare": compare_command}


def main(argv=None) -> int:
    """The ``pyro-mvae`` entry point: run the command ``argv[0]`` (default ``sys.argv[1:]``) and
    return the exit code (0; 2 for a usage or user error, or a listing of the groups with an
    installed component that cannot be loaded; 1 for a diverged run or failed jobs; 3 for a run or
    sweep stopped at ``trainer.max_time``, to be continued; 128 + the signal number when interrupted)."""
    args = sys.argv[1:] if argv is None else list(argv)
    prefer_cpu_kernels()
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 2 if report_broken() or not args else 0
    if args[0] == "--version":
        print(f"pyro-mvae {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"pyro-mvae: unknown command '{args[0]}'{did_you_mean(args[0], COMMANDS)}\n{usage()}", file=sys.stderr)
        report_broken()
        return 2
    try:
        COMMANDS[args[0]](args[1:])
    except Interrupted as stop:
        print(f"pyro-mvae: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:  # before any training started: nothing to save
        print("pyro-mvae: interrupted", file=sys.stderr)
        return 130
    except TimeLimitReached as paused:
        print(f"pyro-mvae: {paused}", file=sys.stderr)
        return 3
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
