"""Training time per epoch of every route for the component choice, measured side by side.

    python experiments/route_timing.py [--data-root ../shared/data] [--steps 20] [--rounds 5]
                                       [--prior mixture|factorized_mixture] [--routes NAME ...] [--out RECORD]
    python experiments/route_timing.py --table RECORD      # the docs' table of a record

The routes of `experiment=gradient_routes` and the marginal-mixture and Gumbel-Rao guides
(``--prior``: mixture, C = 10, or the factorized mixture, N = 3; 784-300-300-40 MLPs, MNIST at
B = 100; routes the prior refuses, such as enumeration of N^d choices, are skipped), each built
from the packaged config and stepped by the trainer's own step
(:class:`pyro_mvae.infer.steps.Stepper`, fused Adam), in one process, alternating blocks of
``--steps`` steps for ``--rounds`` rounds after a warm-up (experiments/bench_svi.py's harness).
Seconds per epoch = 500 steps (50,000 training images) × seconds per step: training only,
without the per-epoch validation pass (the same for every route). ATen's element-wise kernels are
the command line's (:func:`pyro_mvae.runs.prefer_cpu_kernels`).

``--out``: also write, per route (its name's runs of other characters than letters and digits as
``_``), ``ms_per_step`` and ``s_per_epoch`` with its ``name`` and the ``step`` the trainer chose
(``fast`` or ``svi``), as a record the docs cite (``experiments/records.py``); ``--table RECORD``
prints the docs' table of such a record, measuring nothing.
"""

import argparse
import json
from pathlib import Path

import torch
from bench_svi import bench, variant_key, warm_up
from records import region, write_record

from pyro_mvae.compose import compose_config
from pyro_mvae.data import load_mnist
from pyro_mvae.errors import PairingError
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.infer.steps import Stepper
from pyro_mvae.models.registry import build_vae
from pyro_mvae.runs import prefer_cpu_kernels
from pyro_mvae.training.train import make_optimizer

ROUTES = {
    "Concrete (soft), trace": ["guide=relaxed_mixture", "guide.straight_through=false", "objective=trace"],
    "straight-through Concrete, trace": ["guide=relaxed_mixture", "guide.straight_through=true", "objective=trace"],
    "score function, tracegraph": ["guide=discrete_mixture", "guide.baseline=none", "objective=tracegraph"],
    "score function + decaying average": ["guide=discrete_mixture", "guide.baseline=decaying_average",
                                          "objective=tracegraph"],
    "score function + neural baseline": ["guide=discrete_mixture", "guide.baseline=neural", "objective=tracegraph"],
    "enumeration, enum": ["guide=discrete_mixture", "objective=enum"],
    "Gumbel-Rao (M = 10), trace": ["guide=relaxed_mixture", "guide.estimator=gumbel_rao", "objective=trace"],
    "marginal mixture, trace": ["guide=marginal_mixture", "objective=trace"],
    "Gaussian guide, trace": ["guide=gaussian", "objective=trace"],
}
STEPS_PER_EPOCH = 500


def route_step(overrides: list[str], event_shape: tuple, prior: str) -> Stepper:
    """The trainer's step for one route. Raises PairingError for a route the prior refuses."""
    config = compose_config(["data=mnist", f"prior={prior}", *overrides])
    torch.manual_seed(0)
    vae = build_vae(event_shape, config["prior"], config["guide"], config["likelihood"], config["net"])
    vae.tau = 0.5
    elbo = build_objective(**config["objective"], vae=vae)
    return Stepper(vae, elbo, make_optimizer(vae, config["trainer"]["lr"]))


def table(record: dict) -> str:
    """The docs' table of an ``--out`` record as a records region, every number with its marker."""
    lines = ["| route | step | ms per step | s per epoch (500 steps) |", "|---|---|---|---|"]
    for key, v in record["values"].items():
        ref = f"<!-- rec:{record['id']}.{key}"
        lines.append(f"| {v['name']} | {v['step']} | {v['ms_per_step']:.1f} {ref}.ms_per_step --> "
                     f"| {v['s_per_epoch']:.1f} {ref}.s_per_epoch --> |")
    return region(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prior", default="mixture", choices=["mixture", "factorized_mixture"])
    parser.add_argument("--routes", nargs="+", choices=list(ROUTES), default=list(ROUTES))
    parser.add_argument("--out", help="also write the table as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        return print(table(json.loads(Path(args.table).read_text())))
    kernels = prefer_cpu_kernels()
    data = load_mnist(args.data_root, download=False)
    batches = [data.train.x[i * 100:(i + 1) * 100].bernoulli() for i in range(args.steps)]  # (100, 1, 28, 28)
    steps = {}
    for name in args.routes:
        try:
            steps[name] = route_step(ROUTES[name], data.event_shape, args.prior)
        except PairingError as err:
            print(f"skipped {name}: {err}")
    _, failed = warm_up(steps, batches)
    if failed:
        raise SystemExit(f"routes that did not step: {failed}")
    per_step = bench(steps, batches, args.rounds)
    print(f"prior {args.prior}; torch threads {torch.get_num_threads()}; "
          f"{args.rounds} rounds × {args.steps} steps per route")
    print("| route | route of the step | ms per step | s per epoch (500 steps) |")
    print("|---|---|---|---|")
    values = {}
    for name, seconds in per_step.items():
        print(f"| {name} | {steps[name].route} | {1e3 * seconds:.1f} | {STEPS_PER_EPOCH * seconds:.1f} |")
        values[variant_key(name)] = {"name": name, "step": steps[name].route, "ms_per_step": 1e3 * seconds,
                                     "s_per_epoch": STEPS_PER_EPOCH * seconds}
    if args.out:
        write_record(args.out, values, f"cpu, {torch.get_num_threads()} torch threads, ATen {kernels} kernels, "
                     f"prior {args.prior}, nothing else running")


if __name__ == "__main__":
    main()
