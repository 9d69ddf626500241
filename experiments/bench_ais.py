"""AIS peak memory: it follows ``max_particles`` (chains × images annealed at once), not T or S.

Each cell is a fresh process that loads the run, resets the peak (CPU: the kernel's resident-set
high-water mark via /proc/self/clear_refs, after glibc's malloc_trim has returned the freed data
set to the kernel; CUDA: torch.cuda.max_memory_allocated) and runs AIS
on the same test images; the reference measured in the same run is the package's IWAE-5000 at
chunks of 500 on those images, whose memory experiments/bench_iwae.py compares with a
hand-written plain-PyTorch estimator.

    python experiments/bench_ais.py runs/route_study/standard_gaussian [--images 200] [--device cpu]
"""

import argparse
import ctypes
import gc
import multiprocessing as mp

import torch
from bench_iwae import peak_since, start_peak

from pyro_mvae.infer.ais import ais_log_likelihood
from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.runs import load_run, resolve_device

CELLS = [("iwae", 5000, 0, 0)] + [("ais", t, s, p) for p in (1600, 6400) for t, s in ((10, 16), (50, 16), (10, 64))]
"""(estimator, T or K, S, max_particles) of each measured cell."""


def _child(run_dir, device, images, cell, queue):
    torch.set_num_threads(1)
    vae, _, _, data = load_run(run_dir, device)
    x = data.test.x[:images].clone()  # (N, D)
    del data
    gc.collect()
    if device.type == "cpu":  # hand the freed data set back to the kernel, so new arrays raise the RSS
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = start_peak(device)
    name, steps, chains, particles = cell
    if name == "iwae":
        iwae_log_likelihood(vae, x, num_samples=steps, chunk_size=500)
    else:
        ais_log_likelihood(vae, x, steps=steps, chains=chains, max_particles=particles)
    queue.put(peak_since(device, base))


def peak_mib(run_dir, device, images, cell) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(run_dir, device, images, cell, queue))
    child.start()
    peak = queue.get()
    child.join()
    return peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"{device}; {args.images} test images; one thread; peak memory above the start of the estimate")
    print("| estimator | T (or K) | S | max_particles | peak (MiB) |\n|---|---|---|---|---|")
    for cell in CELLS:
        name, steps, chains, particles = cell
        peak = peak_mib(args.run_dir, device, args.images, cell)
        print(f"| {name.upper()} | {steps} | {chains or '—'} | {particles or 'chunk 500'} | {peak:.0f} |")


if __name__ == "__main__":
    main()
