"""Threads on a shared machine: SVI steps per second of the MNIST VAE (784-300-300-40, mixture
prior, Gaussian guide, B = 100) with 1 thread, all cores, and all cores with
OMP_WAIT_POLICY=PASSIVE, each alone and beside a second identical training.

Each configuration runs as fresh worker processes (the OpenMP wait policy is read when torch
loads), on the same real images. The plain-PyTorch baseline of the same run is the configuration
"1 thread, alone": every other cell is a ratio of its time per step to that one. This chose the
default of ``trainer.threads`` (README: "Threads on a shared machine").

``--whole`` times whole ``pyro-mvae train`` runs instead (the README's first command on digits,
with the overrides given after it): wall seconds of one run alone, then of two identical runs
started side by side, and their ratio.

    python experiments/bench_threads.py --root ../shared/data [--steps 300]
    python experiments/bench_threads.py --whole trainer.eval_samples=1000
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CONFIGS = {"1 thread": (1, {}), "all cores": (0, {}),
           "all cores, OMP_WAIT_POLICY=PASSIVE": (0, {"OMP_WAIT_POLICY": "PASSIVE"})}


def worker(root: str, steps: int, threads: int) -> float:
    """Seconds per SVI step of one training process (after 20 warm-up steps)."""
    import torch

    from pyro_mvae.data import load_digits, load_mnist
    from pyro_mvae.infer.objectives import build_objective
    from pyro_mvae.infer.steps import Stepper
    from pyro_mvae.models.registry import build_vae
    from pyro_mvae.training.train import apply_threads, make_optimizer

    apply_threads(threads)
    data = load_mnist(root, download=False, limit=5000, val_size=1000) if root else load_digits()
    torch.manual_seed(0)
    vae = build_vae(data.data_dim, {"name": "mixture"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp"})
    step = Stepper(vae, build_objective("trace", vae=vae), make_optimizer(vae, 1e-3))
    batches = [xb for _, xb in zip(range(steps + 20), data.train.batches(100, shuffle=True, seed=0))]
    for xb in batches[:20]:
        step(xb)
    tic = time.perf_counter()
    for xb in batches[20:]:
        step(xb)
    return (time.perf_counter() - tic) / (len(batches) - 20)


def measure(root: str, steps: int, threads: int, env: dict, side_by_side: int) -> float:
    """Mean seconds per step over ``side_by_side`` concurrent worker processes."""
    command = [sys.executable, __file__, "--worker", "--root", root, "--steps", str(steps),
               "--threads", str(threads)]
    full_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")} | env
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=full_env)
             for _ in range(side_by_side)]
    times = [json.loads(p.communicate()[0])["seconds_per_step"] for p in procs]
    return sum(times) / len(times)


def whole_runs(overrides: list[str], side_by_side: int) -> list[float]:
    """Wall seconds of each of ``side_by_side`` ``pyro-mvae train`` runs started at once."""
    with tempfile.TemporaryDirectory() as tmp:
        commands = [[sys.executable, "-m", "pyro_mvae.cli", "train", f"run_dir={tmp}/run{i}",
                     "trainer.progress=false", "trainer.figures=false", *overrides] for i in range(side_by_side)]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        tic = time.perf_counter()
        procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, env=env) for c in commands]
        ends = {}
        while len(ends) < len(procs):  # each run's own end, whichever finishes first
            done = [i for i, p in enumerate(procs) if i not in ends and p.poll() is not None]
            ends |= {i: time.perf_counter() - tic for i in done}
            time.sleep(0.05)
        if any(p.returncode for p in procs):
            raise SystemExit(f"pyro-mvae train failed: exit codes {[p.returncode for p in procs]}")
    return [ends[i] for i in range(len(procs))]


def compare_whole(overrides: list[str]) -> None:
    alone = whole_runs(overrides, 1)[0]
    beside = whole_runs(overrides, 2)
    print(f"{os.cpu_count()} cores; pyro-mvae train {' '.join(overrides)}")
    print("| runs at once | wall time of each run (s) | ratio to one alone |")
    print("|---|---|---|")
    print(f"| 1 | {alone:.1f} | 1.00× |")
    print(f"| 2 | {' and '.join(f'{s:.1f}' for s in beside)} | {max(beside) / alone:.2f}× (the slower) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data", help="folder holding MNIST/raw/ ('' for digits)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--whole", nargs="*", metavar="OVERRIDE",
                        help="time whole `pyro-mvae train` runs (digits) with these overrides, alone and two at once")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.whole is not None:
        compare_whole(args.whole)
        return
    if args.worker:
        print(json.dumps({"seconds_per_step": worker(args.root, args.steps, args.threads)}))
        return
    cores = os.cpu_count()
    rows = {name: {n: measure(args.root, args.steps, threads, env, n) for n in (1, 2)}
            for name, (threads, env) in CONFIGS.items()}
    base = rows["1 thread"][1]
    print(f"{cores} cores; {args.steps} steps per process; ratios to '1 thread, alone' ({1e3 * base:.1f} ms/step)")
    print("| threads | alone (ms/step) | beside a second training (ms/step) | slowdown beside | vs 1 thread alone |")
    print("|---|---|---|---|---|")
    for name, cell in rows.items():
        print(f"| {name} | {1e3 * cell[1]:.1f} | {1e3 * cell[2]:.1f} | {cell[2] / cell[1]:.2f}× | "
              f"{cell[1] / base:.2f}× alone, {cell[2] / base:.2f}× beside |")


if __name__ == "__main__":
    main()
