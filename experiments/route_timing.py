"""Training time per epoch of every route for the component choice, measured side by side.

    python experiments/route_timing.py [--data-root ../shared/data] [--steps 20] [--rounds 5]
                                       [--prior mixture|factorized_mixture] [--routes NAME ...]

The routes of `experiment=gradient_routes` and the marginal-mixture and Gumbel-Rao guides
(``--prior``: mixture, C = 10, or the factorized mixture, N = 3; 784-300-300-40 MLPs, MNIST at
B = 100; routes the prior refuses, such as enumeration of N^d choices, are skipped), each built
from the packaged config and stepped by the trainer's own step
(:class:`pyro_mvae.infer.steps.Stepper`, fused Adam), in one process, alternating blocks of
``--steps`` steps for ``--rounds`` rounds after a warm-up (experiments/bench_svi.py's harness).
Seconds per epoch = 500 steps (50,000 training images) × seconds per step: training only,
without the per-epoch validation pass (the same for every route).
"""

import argparse

import torch
from bench_svi import bench, warm_up

from pyro_mvae.compose import compose_config
from pyro_mvae.data import load_mnist
from pyro_mvae.errors import PairingError
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.infer.steps import Stepper
from pyro_mvae.models.registry import build_vae
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


def route_step(overrides: list[str], data_dim: int, prior: str) -> Stepper:
    """The trainer's step for one route. Raises PairingError for a route the prior refuses."""
    config = compose_config(["data=mnist", f"prior={prior}", *overrides])
    torch.manual_seed(0)
    vae = build_vae(data_dim, config["prior"], config["guide"], config["likelihood"], config["net"])
    vae.tau = 0.5
    elbo = build_objective(**config["objective"], vae=vae)
    return Stepper(vae, elbo, make_optimizer(vae, config["trainer"]["lr"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prior", default="mixture", choices=["mixture", "factorized_mixture"])
    parser.add_argument("--routes", nargs="+", choices=list(ROUTES), default=list(ROUTES))
    args = parser.parse_args()
    data = load_mnist(args.data_root, download=False)
    batches = [data.train.x[i * 100:(i + 1) * 100].bernoulli() for i in range(args.steps)]  # (100, 784)
    steps = {}
    for name in args.routes:
        try:
            steps[name] = route_step(ROUTES[name], data.data_dim, args.prior)
        except PairingError as err:
            print(f"skipped {name}: {err}")
    failed = warm_up(steps, batches)
    assert not failed, failed
    per_step = bench(steps, batches, args.rounds)
    print(f"prior {args.prior}; torch threads {torch.get_num_threads()}; "
          f"{args.rounds} rounds × {args.steps} steps per route")
    print("| route | route of the step | ms per step | s per epoch (500 steps) |")
    print("|---|---|---|---|")
    for name, seconds in per_step.items():
        print(f"| {name} | {steps[name].route} | {1e3 * seconds:.1f} | {STEPS_PER_EPOCH * seconds:.1f} |")


if __name__ == "__main__":
    main()
