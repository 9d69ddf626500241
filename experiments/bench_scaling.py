"""Scaling: training throughput on 1 and 2 processes, and the cost of the IWAE test evaluation.

    python experiments/bench_scaling.py [--data-root ../shared/data] [--steps 100]
        [--eval-run runs/mnist_table/standard_gaussian] [--out RECORD]
    python experiments/bench_scaling.py --table RECORD      # the docs' evaluation table of a record

1. Training: the package's training step (standard prior + Gaussian guide, 784-300-300-40 MLPs,
   global batch 100 of binarised MNIST) timed over ``--steps`` steps after 10 warm-up steps, in
   one process with 1 and with all torch threads, and in 2 processes (gloo,
   DistributedDataParallel, 1 thread each, each rank taking half of every global batch).
2. Evaluation (with ``--eval-run``): seconds of ``iwae_log_likelihood`` for K in {500, 1000,
   5000} and N in {50, 100, 200} test images, and the fitted cost per image-particle, so that
   the cost of a run is predictable as seconds ≈ c · K · N.

ATen's element-wise kernels are the command line's (:func:`pyro_mvae.runs.prefer_cpu_kernels`).
``--out``: also write the numbers as a record the docs cite (``experiments/records.py``):
``training.<processes>x<threads>.steps_per_s`` and, with ``--eval-run``, ``evaluation.K<K>.N<N>.seconds``
and ``us_per_image_particle``, and ``evaluation.median_us``. ``--table RECORD`` prints the docs'
evaluation table of such a record, measuring nothing.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from records import region, write_record

from pyro_mvae.data import load_mnist
from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.infer.steps import ELBOLoss, Stepper
from pyro_mvae.models.registry import build_vae
from pyro_mvae.runs import load_run, prefer_cpu_kernels
from pyro_mvae.training import distributed
from pyro_mvae.training.train import make_optimizer


def steps_per_second(group, data_root: str, steps: int, threads: int, queue=None) -> float:
    """Global steps per second of this rank's training loop (all ranks step together)."""
    torch.set_num_threads(threads)
    data = load_mnist(data_root, download=False)
    torch.manual_seed(0)
    vae = build_vae(data.event_shape, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
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


def training_table(data_root: str, steps: int) -> dict:
    """Steps per second in one process (1 and all threads) and in two (gloo); printed and returned."""
    import torch.multiprocessing as mp

    threads = torch.get_num_threads()
    print("| processes | threads per process | steps/s (global batch 100) | samples/s |")
    print("|---|---|---|---|")
    values = {}
    for n_threads in sorted({1, threads}):
        rate = steps_per_second(distributed.SINGLE, data_root, steps, n_threads)
        print(f"| 1 | {n_threads} | {rate:.1f} | {100 * rate:.0f} |")
        values[f"1x{n_threads}"] = {"steps_per_s": rate}
    torch.set_num_threads(threads)
    queue = mp.get_context("spawn").Queue()
    distributed.spawn(_rank, 2, data_root, steps, queue)
    rate = queue.get()
    print(f"| 2 (gloo) | 1 | {rate:.1f} | {100 * rate:.0f} |")
    values["2x1"] = {"steps_per_s": rate}
    return values


def evaluation_table(run_dir: str) -> dict:
    """Seconds of IWAE for K × N; printed and returned with the median cost per image-particle."""
    vae, _, _, data = load_run(run_dir, torch.device("cpu"))
    values = {}
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
            values.setdefault(f"K{K}", {})[f"N{N}"] = {"seconds": seconds, "us_per_image_particle": 1e6 * costs[-1]}
    c = sorted(costs)[len(costs) // 2]
    print(f"median cost c = {1e6 * c:.1f} µs per image-particle: the full MNIST test set (N = 10,000) "
          f"at K = 5000 takes about {c * 5000 * 10_000 / 60:.0f} minutes on this machine")
    return values | {"median_us": 1e6 * c}


def table(record: dict) -> str:
    """The docs' evaluation table (seconds, K × N) of an ``--out`` record as a records region."""
    evaluation = record["values"]["evaluation"]
    by_k = {k: v for k, v in evaluation.items() if k.startswith("K")}
    n_keys = list(next(iter(by_k.values())))
    header = "| K | " + " | ".join(f"N = {n.removeprefix('N')}" for n in n_keys) + " |"
    lines = [header, "|---" * (len(n_keys) + 1) + "|"]
    for k, row in by_k.items():
        cells = [f"{row[n]['seconds']:.1f} s <!-- rec:{record['id']}.evaluation.{k}.{n}.seconds -->" for n in n_keys]
        lines.append(f"| {k.removeprefix('K')} | " + " | ".join(cells) + " |")
    return region(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-run", default=None, help="a trained standard-VAE run directory")
    parser.add_argument("--out", help="also write the numbers as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' evaluation table of a record")
    args = parser.parse_args()
    if args.table:
        return print(table(json.loads(Path(args.table).read_text())))
    kernels = prefer_cpu_kernels()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    values = {"training": training_table(args.data_root, args.steps)}
    if args.eval_run:
        values["evaluation"] = evaluation_table(args.eval_run)
    if args.out:
        write_record(args.out, values, f"cpu, ATen {kernels} kernels, the threads of each row, nothing else running")


if __name__ == "__main__":
    main()
