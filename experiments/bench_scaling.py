"""Scaling: training throughput on 1 and 2 processes, and the cost of the IWAE test evaluation.

    python experiments/bench_scaling.py [--data-root ../shared/data] [--steps 100]
        [--eval-run runs/mnist_table/standard_gaussian]

1. Training: the package's training step (standard prior + Gaussian guide, 784-300-300-40 MLPs,
   global batch 100 of binarised MNIST) timed over ``--steps`` steps after 10 warm-up steps, in
   one process with 1 and with all torch threads, and in 2 processes (gloo,
   DistributedDataParallel, 1 thread each, each rank taking half of every global batch).
2. Evaluation (with ``--eval-run``): seconds of ``iwae_log_likelihood`` for K in {500, 1000,
   5000} and N in {50, 100, 200} test images, and the fitted cost per image-particle, so that
   the cost of a run is predictable as seconds ≈ c · K · N.
"""

import argparse
import time

import torch

from pyro_mvae.data import load_mnist
from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.infer.steps import ELBOLoss, Stepper
from pyro_mvae.models.registry import build_vae
from pyro_mvae.runs import load_run
from pyro_mvae.training import distributed
from pyro_mvae.training.train import make_optimizer


def steps_per_second(group, data_root: str, steps: int, threads: int, queue=None) -> float:
    """Global steps per second of this rank's training loop (all ranks step together)."""
    torch.set_num_threads(threads)
    data = load_mnist(data_root, download=False)
    torch.manual_seed(0)
    vae = build_vae(data.data_dim, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [300, 300], "latent_dim": 40})
    elbo = build_objective("trace", vae=vae)
    step = Stepper(vae, elbo, make_optimizer(vae, 1e-3),
                   loss_module=group.wrap(ELBOLoss(vae, elbo, scale=group.world)))
    batches = list(data.train.batches(100, shuffle=True, seed=0, group=group))  # (100 / W, D) each
    for xb in batches[:10]:
        step(xb)
    group.barrier()
    tic = time.perf_counter()
    for i in range(steps):
        loss = step(batches[i % len(batches)])
    float(loss)
    group.barrier()
    rate = steps / (time.perf_counter() - tic)
    if queue is not None and group.is_main:
        queue.put(rate)
    return rate


def _rank(group, data_root, steps, queue):
    steps_per_second(group, data_root, steps, threads=1, queue=queue)


def training_table(data_root: str, steps: int) -> None:
    import torch.multiprocessing as mp

    threads = torch.get_num_threads()
    print("| processes | threads per process | steps/s (global batch 100) | samples/s |")
    print("|---|---|---|---|")
    for n_threads in sorted({1, threads}):
        rate = steps_per_second(distributed.SINGLE, data_root, steps, n_threads)
        print(f"| 1 | {n_threads} | {rate:.1f} | {100 * rate:.0f} |")
    torch.set_num_threads(threads)
    queue = mp.get_context("spawn").Queue()
    distributed.spawn(_rank, 2, data_root, steps, queue)
    rate = queue.get()
    print(f"| 2 (gloo) | 1 | {rate:.1f} | {100 * rate:.0f} |")


def evaluation_table(run_dir: str) -> None:
    vae, _, _, data = load_run(run_dir, torch.device("cpu"))
    print("| K | test images N | seconds | µs per image-particle |")
    print("|---|---|---|---|")
    costs = []
    for K in (500, 1000, 5000):
        for N in (50, 100, 200):
            tic = time.perf_counter()
            iwae_log_likelihood(vae, data.test.x[:N], K, chunk_size=500, batch_size=100)
            seconds = time.perf_counter() - tic
            costs.append(seconds / (K * N))
            print(f"| {K} | {N} | {seconds:.1f} | {1e6 * costs[-1]:.1f} |")
    c = sorted(costs)[len(costs) // 2]
    print(f"median cost c = {1e6 * c:.1f} µs per image-particle: the full MNIST test set (N = 10,000) "
          f"at K = 5000 takes about {c * 5000 * 10_000 / 60:.0f} minutes on this machine")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-run", default=None, help="a trained standard-VAE run directory")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    training_table(args.data_root, args.steps)
    if args.eval_run:
        evaluation_table(args.eval_run)


if __name__ == "__main__":
    main()
