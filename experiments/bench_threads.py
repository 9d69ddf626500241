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

    python experiments/bench_threads.py --root ../shared/data [--steps 300] [--out RECORD]
    python experiments/bench_threads.py --whole trainer.eval_samples=1000 [--out RECORD]
    python experiments/bench_threads.py --table RECORD      # the docs' table of a record

``--out``: also write the numbers as a record the docs cite (``experiments/records.py``): per
configuration key (``1_thread``, ``all_cores``, ``all_cores_OMP_WAIT_POLICY_PASSIVE``) its
``alone_ms``, ``beside_ms``, ``slowdown``, ``alone_vs_base`` and ``beside_vs_base``; with
``--whole``, ``alone_s``, ``beside_1_s`` and ``beside_2_s`` (the two runs' seconds) and ``ratio`` (the slower's to
alone). ``--table RECORD`` prints the docs' table of such a record, measuring nothing.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from records import region, write_record

CONFIGS = {"1 thread": (1, {}), "all cores": (0, {}),
           "all cores, OMP_WAIT_POLICY=PASSIVE": (0, {"OMP_WAIT_POLICY": "PASSIVE"})}


def worker(root: str, steps: int, threads: int) -> float:
    """Seconds per SVI step of one training process (after 20 warm-up steps)."""
    import torch

    from pyro_mvae.data import load_digits, load_mnist
    from pyro_mvae.infer.objectives import build_objective
    from pyro_mvae.infer.steps import Stepper
    from pyro_mvae.models.registry import build_vae
    from pyro_mvae.runs import prefer_cpu_kernels
    from pyro_mvae.training.train import apply_threads, make_optimizer

    prefer_cpu_kernels()  # ATen's element-wise kernels as pyro-mvae train uses them
    apply_threads(threads)
    data = load_mnist(root, download=False, limit=5000, val_size=1000) if root else load_digits()
    torch.manual_seed(0)
    vae = build_vae(data.event_shape, {"name": "mixture"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp"})
    step = Stepper(vae, build_objective("trace", vae=vae), make_optimizer(vae, 1e-3))
    batches, epoch = [], 0
    while len(batches) < steps + 20:  # as many epochs as the steps take (digits: 12 batches an epoch)
        batches += list(data.train.batches(100, shuffle=True, seed=epoch))  # (100, 1, H, W) each
        epoch += 1
    batches = batches[:steps + 20]
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


def compare_whole(overrides: list[str]) -> dict:
    """One run alone, then two side by side; prints and returns their seconds."""
    alone = whole_runs(overrides, 1)[0]
    beside = whole_runs(overrides, 2)
    print(f"{os.cpu_count()} cores; pyro-mvae train {' '.join(overrides)}")
    print("| runs at once | wall time of each run (s) | ratio to one alone |")
    print("|---|---|---|")
    print(f"| 1 | {alone:.1f} | 1.00× |")
    print(f"| 2 | {' and '.join(f'{s:.1f}' for s in beside)} | {max(beside) / alone:.2f}× (the slower) |")
    return {"alone_s": alone, "beside_1_s": beside[0], "beside_2_s": beside[1], "ratio": max(beside) / alone}


def config_key(name: str) -> str:
    """A record key of a configuration name: its runs of other characters than letters and digits
    as ``_`` (``all cores, OMP_WAIT_POLICY=PASSIVE`` -> ``all_cores_OMP_WAIT_POLICY_PASSIVE``)."""
    return re.sub(r"\W+", "_", name).strip("_")


def table(record: dict) -> str:
    """The docs' table of an ``--out`` record as a records region, every number with its marker."""
    v, rid = record["values"], record["id"]
    if "alone_s" in v:
        beside = " and ".join(f"{v[key]:.1f} <!-- rec:{rid}.{key} -->" for key in ("beside_1_s", "beside_2_s"))
        return region(["| runs at once | wall time of each run (s) | ratio to one alone |", "|---|---|---|",
                       f"| 1 | {v['alone_s']:.1f} <!-- rec:{rid}.alone_s --> | the reference |",
                       f"| 2 | {beside} | {v['ratio']:.2f} <!-- rec:{rid}.ratio -->× (the slower) |"])
    lines = ["| threads | alone (ms/step) | beside a second training (ms/step) | slowdown beside "
             "| vs 1 thread alone: alone, beside |", "|---" * 5 + "|"]
    for name in CONFIGS:
        c, ref = v[config_key(name)], f"<!-- rec:{rid}.{config_key(name)}"
        lines.append(f"| {name} | {c['alone_ms']:.1f} {ref}.alone_ms --> | {c['beside_ms']:.1f} {ref}.beside_ms --> "
                     f"| {c['slowdown']:.2f} {ref}.slowdown -->× | {c['alone_vs_base']:.2f} {ref}.alone_vs_base -->×, "
                     f"{c['beside_vs_base']:.2f} {ref}.beside_vs_base -->× |")
    return region(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data", help="folder holding MNIST/raw/ ('' for digits)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--whole", nargs="*", metavar="OVERRIDE",
                        help="time whole `pyro-mvae train` runs (digits) with these overrides, alone and two at once")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="also write the numbers as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        return print(table(json.loads(Path(args.table).read_text())))
    how = f"{os.cpu_count()} cores, nothing else running; each cell fresh processes"
    if args.whole is not None:
        values = compare_whole(args.whole)
        if args.out:
            write_record(args.out, values, how)
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
    if args.out:
        write_record(args.out, {config_key(name): {"alone_ms": 1e3 * cell[1], "beside_ms": 1e3 * cell[2],
                                                   "slowdown": cell[2] / cell[1], "alone_vs_base": cell[1] / base,
                                                   "beside_vs_base": cell[2] / base} for name, cell in rows.items()},
                     how)


if __name__ == "__main__":
    main()
