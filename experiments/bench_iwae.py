"""IWAE-K evaluation speed and memory: the package against a hand-written plain-PyTorch estimator.

    python experiments/bench_iwae.py RUN_DIR [--images 200] [-K 5000] [--chunks 100 500 2500] [--out RECORD]
    python experiments/bench_iwae.py --table RECORD [RECORD ...]   # the docs' tables of records

RUN_DIR must hold a trained run with the standard prior, the Gaussian guide and the Bernoulli
likelihood (for example `multirun/core_table_mnist/route=standard_gaussian` from
`pyro-mvae train -m experiment=core_table data=mnist data.root=PATH`):
the hand-written twin below implements exactly that model with the same networks.

1. Agreement: both estimators score the same images; their means must agree within Monte Carlo
   error (printed as a z-score of the paired per-image difference).
2. Speed: both run in this process, alternating, after a warm-up; images per second and the
   ratio package / hand-written are printed.
3. Memory: for each chunk size, each estimator runs in a fresh child process, once at K and once
   at K/5, to show that memory follows the chunk size and not K. CUDA: the growth of
   torch.cuda.max_memory_allocated. CPU (Linux): the child loads the run, resets the kernel's
   resident-set high-water mark (``/proc/self/clear_refs``), evaluates, and reports the new
   high-water mark (VmHWM) minus the resident set before the evaluation.

ATen's element-wise kernels are the command line's (:func:`pyro_mvae.runs.prefer_cpu_kernels`).
``--out``: also write the numbers as a record the docs cite (``experiments/records.py``):
``images``, ``threads``, ``K``, ``chunk``, ``package_images_per_s``, ``handwritten_images_per_s``,
``ratio`` (package / hand-written images per second), ``package_mean`` and ``handwritten_mean``
(nats), ``z``, and under ``memory.chunk_<c>.K<K>`` the ``package_mib`` and ``handwritten_mib``.
``--table RECORD ...`` prints the docs' speed table (a row per record) and the memory table of
each record, every number with its marker, measuring nothing.
"""

import argparse
import json
import math
import multiprocessing as mp
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from records import minus, region, write_record

from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.runs import load_run, prefer_cpu_kernels, resolve_device

LOG_2PI = math.log(2 * math.pi)


@torch.no_grad()
def handwritten_iwae(vae, x: torch.Tensor, K: int, chunk: int, batch: int = 100) -> torch.Tensor:
    """Plain-PyTorch IWAE for N(0, I) prior, diagonal Gaussian guide, Bernoulli likelihood: ``(N,)``."""
    encoder, decoder = vae.encoder.encode, vae.decode
    out = []
    for xb in x.split(batch):  # (B, *event)
        loc, raw = encoder(xb).chunk(2, dim=-1)  # (B, d) each
        scale = F.softplus(raw) + 1e-3
        total = torch.full((xb.shape[0],), -math.inf, device=x.device)
        for start in range(0, K, chunk):
            k = min(chunk, K - start)
            eps = torch.randn(k, *loc.shape, device=x.device)  # (k, B, d)
            z = loc + scale * eps
            logits = decoder(z).flatten(2)  # (k, B, D)
            target = xb.flatten(1).expand_as(logits)  # (k, B, D)
            log_px = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
            log_pz = -0.5 * (z ** 2 + LOG_2PI).sum(-1)
            log_qz = -0.5 * (eps ** 2 + LOG_2PI).sum(-1) - scale.log().sum(-1)
            total = torch.logaddexp(total, torch.logsumexp(log_px + log_pz - log_qz, 0))
        out.append(total - math.log(K))
    return torch.cat(out)


def package_iwae(vae, x, K, chunk):
    return iwae_log_likelihood(vae, x, K, chunk_size=chunk, batch_size=100, compile="false")


ESTIMATORS = {"package": package_iwae, "handwritten": handwritten_iwae}


def proc_status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_cpu_peak() -> int:
    """Resets the resident-set high-water mark (Linux >= 4.0); returns the current RSS, KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return proc_status_kib("VmRSS")


def start_peak(device: torch.device) -> float:
    """Resets the device's peak-memory counter; returns the memory in use now (the base)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2 ** 20
    return reset_cpu_peak() / 1024


def peak_since(device: torch.device, base: float) -> float:
    """MiB of the peak above ``base`` (:func:`start_peak`)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20 - base
    return proc_status_kib("VmHWM") / 1024 - base


def _memory_child(run_dir, device, images, K, chunk, name, queue):
    vae, _, _, data = load_run(run_dir, device)
    x = data.test.x[:images].clone()
    del data
    base = start_peak(device)
    ESTIMATORS[name](vae, x, K, chunk)
    queue.put(peak_since(device, base))


def peak_memory_mib(run_dir, device, images, K, chunk, name) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_memory_child, args=(run_dir, device, images, K, chunk, name, queue))
    child.start()
    peak = queue.get()
    child.join()
    return peak


def timed(fn, *args) -> tuple[float, torch.Tensor]:
    if args[1].device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    result = fn(*args)
    if args[1].device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - tic, result


def tables(records: list[dict]) -> str:
    """The docs' speed table (a row per record) and each record's memory table, as records regions."""
    speed = ["| images, threads | package (`iwae_log_likelihood`) | hand-written plain PyTorch | ratio "
             "| estimates (nats), paired z |", "|---" * 5 + "|"]
    memory = []
    for record in records:
        v, ref = record["values"], f"<!-- rec:{record['id']}"
        speed.append(f"| {v['images']} {ref}.images -->, {v['threads']} {ref}.threads --> thread(s) "
                     f"| {v['package_images_per_s']:.2f} {ref}.package_images_per_s --> images/s "
                     f"| {v['handwritten_images_per_s']:.2f} {ref}.handwritten_images_per_s --> images/s "
                     f"| {v['ratio']:.2f} {ref}.ratio --> | {minus(v['package_mean'], '.3f')} {ref}.package_mean --> "
                     f"vs {minus(v['handwritten_mean'], '.3f')} {ref}.handwritten_mean -->, z = "
                     f"{minus(v['z'], '.2f')} {ref}.z --> |")
        for chunk, by_k in v.get("memory", {}).items():
            for k, mib in by_k.items():
                cell = f"{ref}.memory.{chunk}.{k}"
                memory.append(f"| {chunk.removeprefix('chunk_')} | {k.removeprefix('K')} "
                              f"| {mib['package_mib']:.0f} {cell}.package_mib --> "
                              f"| {mib['handwritten_mib']:.0f} {cell}.handwritten_mib --> |")
    out = region(speed)
    if memory:
        out += "\n\n" + region(["| chunk | K | package peak MiB | hand-written peak MiB |", "|---" * 4 + "|", *memory])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("-K", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=500, help="chunk size of the timing runs")
    parser.add_argument("--chunks", type=int, nargs="+", default=[100, 500, 2500])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="also write the numbers as a record (docs/records/NAME.json)")
    parser.add_argument("--table", nargs="+", metavar="RECORD", help="print the docs' tables of records")
    args = parser.parse_args()
    if args.table:
        return print(tables([json.loads(Path(path).read_text()) for path in args.table]))
    if args.run_dir is None:
        parser.error("give RUN_DIR (or --table RECORD ...)")
    kernels = prefer_cpu_kernels()
    device = resolve_device(args.device)
    vae, config, _, data = load_run(args.run_dir, device)
    if (config["prior"]["name"], config["guide"]["name"], config["likelihood"]["name"]) != \
            ("standard", "gaussian", "bernoulli"):
        raise SystemExit("the hand-written twin implements prior=standard guide=gaussian likelihood=bernoulli")
    x = data.test.x[: args.images]
    print(f"device {device}, threads {torch.get_num_threads()}, {len(x)} {config['data']['name']} "
          f"test images, K={args.K}, chunk {args.chunk}")
    for fn in ESTIMATORS.values():  # warm-up
        fn(vae, x[:10], 50, 50)
    seconds = {name: 0.0 for name in ESTIMATORS}
    results = {name: [] for name in ESTIMATORS}
    for _ in range(args.repeats):
        for name, fn in ESTIMATORS.items():  # alternating
            dt, est = timed(fn, vae, x, args.K, args.chunk)
            seconds[name] += dt
            results[name].append(est)
    pkg, hand = torch.stack(results["package"]).mean(0), torch.stack(results["handwritten"]).mean(0)
    diff = pkg - hand
    z = diff.mean() / (diff.std() / math.sqrt(len(diff)))
    print(f"IWAE log p(x): package {pkg.mean():.3f}, hand-written {hand.mean():.3f} nats; paired "
          f"difference {diff.mean():+.4f} (z = {z:.2f}, |z| < 3 is agreement within Monte Carlo error)")
    rate = {name: args.repeats * len(x) / s for name, s in seconds.items()}
    print(f"images/s: package {rate['package']:.2f}, hand-written {rate['handwritten']:.2f}; "
          f"ratio package / hand-written = {rate['package'] / rate['handwritten']:.3f}")
    values = {"images": len(x), "threads": torch.get_num_threads(), "K": args.K, "chunk": args.chunk,
              "package_images_per_s": rate["package"], "handwritten_images_per_s": rate["handwritten"],
              "ratio": rate["package"] / rate["handwritten"], "package_mean": pkg.mean().item(),
              "handwritten_mean": hand.mean().item(), "z": z.item(), "memory": {}}
    print("| chunk | K | package peak MiB | hand-written peak MiB |")
    print("|---|---|---|---|")
    for chunk in args.chunks:
        for K in (args.K, args.K // 5):
            mem = {name: peak_memory_mib(args.run_dir, device, 100, K, chunk, name) for name in ESTIMATORS}
            print(f"| {chunk} | {K} | {mem['package']:.0f} | {mem['handwritten']:.0f} |")
            values["memory"].setdefault(f"chunk_{chunk}", {})[f"K{K}"] = {
                "package_mib": mem["package"], "handwritten_mib": mem["handwritten"]}
    if args.out:
        write_record(args.out, values, f"{device}, {values['threads']} torch threads, ATen {kernels} kernels, "
                     "nothing else running; memory: a fresh child process per cell")


if __name__ == "__main__":
    main()
