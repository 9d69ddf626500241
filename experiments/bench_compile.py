"""IWAE evaluation eager and under torch.compile, against the decoder's matrix products alone.

    python experiments/bench_compile.py RUN_DIR [--images 100] [-K 5000] [--chunk N] [--threads 1 2]
                                        [--out docs/records/bench_compile.json]
    python experiments/bench_compile.py --table docs/records/bench_compile.json   # the docs' table of a record
    python experiments/bench_compile.py RUN_DIR --chunks 500 200 100 50 25 [--threads 2]
    python experiments/bench_compile.py RUN_DIR --simdlen 512        # inductor's own AVX512 width
    python experiments/bench_compile.py RUN_DIR --ais [--images 400] [--ais-steps 30] [--ais-chains 4]
    python experiments/bench_compile.py RUN_DIR --device cuda --threads 1 --cudagraphs   # on a GPU (not measured here)

RUN_DIR: a trained run (e.g. `multirun/core_table_mnist/route=standard_gaussian`). For each
thread count, in this process, alternating for ``--rounds`` rounds after a warm-up:

- eager: ``iwae_log_likelihood(..., compile="false")``, seconds per image;
- compiled: ``compile="true"``, seconds per image once compiled;
- the limit: the decoder's matrix products alone for the same particles (``(k·B, d) @ W.T``
  for each linear layer, nothing else), seconds per image, with their GFLOP/s.

ATen's element-wise kernels are those ``pyro-mvae evaluate`` uses (AVX2 unless
``ATEN_CPU_CAPABILITY`` is set: :func:`pyro_mvae.runs.prefer_cpu_kernels`).
``--out``: also write these numbers (or those of ``--chunks``, ``chunks.chunk_<c>.eager_s`` and
``compiled_s``, or of ``--ais``, ``ais.eager_s``, ``compiled_first_s``, ``compiled_s``,
``eager_again_s`` and ``max_diff_nats``) as a record the docs cite (``experiments/records.py``):
``compilation_s``, ``max_diff_nats`` and, per ``threads_N``, the seconds per image ``eager_s``,
``compiled_s`` and ``limit_s``, ``limit_gflops``, the ratios ``eager_ratio`` and ``compiled_ratio``
to the limit and ``payback_images`` (absent when compiling never pays). The timings depend on the
networks' shapes only, not on their trained weights. ``--table RECORD`` prints the docs' table of
such a record, every number with its marker, measuring nothing.

``--chunk``: particles per chunk (default: the package's, ``default_chunk_size``: 50 at 100
images on a CPU). ``--chunks``: instead, eager and compiled seconds per image for each of these
chunk sizes (last thread count). ``--simdlen``: the vector width (bits) of inductor's CPU code on
an AVX512 machine (the package's: ``compiled.AVX512_SIMDLEN``), to compare widths run by run.
``--cudagraphs`` (with ``--device cuda``): also the log-joint compiled as replayed CUDA graphs
(``mode="reduce-overhead"``; every chunk has the same static shape), against the package's
compiled path, which does not use them (not measured: no GPU was lent).

Also the compilation itself (a fresh inductor cache, as a user's first run: the first compiled
call minus an eager one), after how many images it pays back, and the largest per-image
difference between the two estimates on the same draws (nats).

``--ais``: AIS instead (``ais_log_likelihood`` with its HMC potential's log p(x | z) + log p(z)
eager, then under ``torch.compile``; the networks' parameters frozen for both, so that the
compiled backward computes the gradient in z only): seconds for the images, first compiled run
(with its compilation) and the next, and the largest difference of the estimates.
"""

import argparse
import json
import math
import os
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor_"))  # cold: nothing cached

import pyro  # noqa: E402
import torch  # noqa: E402
from records import region, write_record  # noqa: E402
from torch import nn  # noqa: E402

from pyro_mvae.infer import compiled  # noqa: E402
from pyro_mvae.infer.ais import ais_log_likelihood  # noqa: E402
from pyro_mvae.infer.compiled import log_joint  # noqa: E402
from pyro_mvae.infer.iwae import default_chunk_size, iwae_batch, iwae_log_likelihood  # noqa: E402
from pyro_mvae.runs import load_run, prefer_cpu_kernels  # noqa: E402


def timed(fn) -> float:
    """Wall seconds of fn(), the device's queue drained before the clock stops."""
    tic = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - tic


@torch.no_grad()
def matmul_limit(vae, n_images: int, K: int, chunk: int, batch: int) -> tuple[float, float]:
    """Seconds of the decoder's matrix products for n_images × K particles, and their GFLOP/s."""
    weights = [m.weight for m in vae.decoder.modules() if isinstance(m, nn.Linear)]
    if not weights:
        raise SystemExit("the limit is measured for MLP decoders (nn.Linear layers) only")
    rows = chunk * batch
    h = torch.randn(rows, weights[0].shape[1], device=weights[0].device)  # (k·B, d)
    calls = math.ceil(n_images / batch) * math.ceil(K / chunk)

    def products():
        for _ in range(calls):
            a = h
            for w in weights:
                a = a @ w.T  # (k·B, out)
    seconds = timed(products)
    flops = 2 * rows * sum(w.numel() for w in weights) * calls
    return seconds, flops / seconds / 1e9


def bench_ais(vae, x, steps: int, chains: int, threads: int) -> dict:
    """Eager against compiled AIS on the same draws, in this process; returns the seconds of each
    run and the largest difference of the estimates (nats)."""
    torch.set_num_threads(threads)
    vae.requires_grad_(False)
    compiled_joint = compiled.compiled_log_joint(vae)  # the package's: its inductor options, padding
    runs, values = {}, {"images": x.shape[0], "steps": steps, "chains": chains, "threads": threads}
    for label, key, joint in (("eager", "eager_s", None), ("compiled, first (with compilation)", "compiled_first_s",
                                                          compiled_joint),
                              ("compiled", "compiled_s", compiled_joint), ("eager, again", "eager_again_s", None)):
        pyro.set_rng_seed(0)
        tic = time.perf_counter()
        runs[label] = ais_log_likelihood(vae, x, steps=steps, chains=chains, log_joint=joint)[0]  # (N,)
        values[key] = time.perf_counter() - tic
        print(f"| {label} | {values[key]:.1f} |")
    values["max_diff_nats"] = (runs["compiled"] - runs["eager"]).abs().max().item()
    print(f"largest |compiled - eager| on the same draws: {values['max_diff_nats']:.2e} nats")
    return {"ais": values}


def bench_chunks(vae, x, K: int, chunks: list[int], threads: int, rounds: int) -> dict:
    """Eager and compiled seconds per image for each chunk size, batches of 100 images; returns
    them under ``chunks.chunk_<c>``."""
    torch.set_num_threads(threads)
    n = x.shape[0]
    print(f"{n} images, K = {K}, batches of 100, {threads} thread(s); seconds per image (median of {rounds})\n"
          "| chunk (particles) | rows per decoder call | eager | compiled |\n|---|---|---|---|")
    values = {"images": n, "K": K, "threads": threads, "chunks": {}}
    for chunk in chunks:
        vae.__dict__.pop("_compiled_log_joint", None)  # a fresh compiled function: compiled at this shape
        iwae_log_likelihood(vae, x[:100], K, chunk, compile="true")
        med = {}
        for setting in ("false", "true"):
            times = sorted(timed(lambda: iwae_log_likelihood(vae, x, K, chunk, compile=setting)) / n
                           for _ in range(rounds))
            med[setting] = times[len(times) // 2]
        print(f"| {chunk} | {chunk * 100} | {med['false']:.4f} | {med['true']:.4f} |", flush=True)
        values["chunks"][f"chunk_{chunk}"] = {"eager_s": med["false"], "compiled_s": med["true"]}
    return values


def bench_cudagraphs(vae, x, K: int, chunk: int, rounds: int) -> None:
    """Seconds per image with log p(x | z) + log p(z) replayed as CUDA graphs against the package's
    compiled path (both on the same draws; GPU only)."""
    graphs = torch.compile(partial(log_joint, vae), mode="reduce-overhead", dynamic=False)

    def joint(z, xb):
        return graphs(z, xb).clone()  # (k, B); a replay reuses its output buffer

    def with_graphs():
        return torch.cat([iwae_batch(vae, x[i:i + 100], K, chunk, joint) for i in range(0, x.shape[0], 100)])

    def package():
        return iwae_log_likelihood(vae, x, K, chunk, compile="true")

    estimates, med = {}, {}
    for name, run in (("CUDA graphs", with_graphs), ("package, compiled", package)):
        pyro.set_rng_seed(1)
        estimates[name] = run()  # (N,), compiles
        times = sorted(timed(run) / x.shape[0] for _ in range(rounds))
        med[name] = times[len(times) // 2]
    diff = (estimates["CUDA graphs"] - estimates["package, compiled"]).abs().max().item()
    print(f"\n| path | seconds per image |\n|---|---|\n| CUDA graphs | {med['CUDA graphs']:.5f} |\n"
          f"| package, compiled | {med['package, compiled']:.5f} |\n"
          f"largest difference on the same draws: {diff:.2e} nats")


def table(record: dict) -> str:
    """The docs' table of an ``--out`` record (of the IWAE table, ``--chunks`` or ``--ais``) as a
    records region, every number with its marker."""
    if "chunks" in record["values"]:
        return chunk_table(record)
    if "ais" in record["values"]:
        return ais_table(record)
    lines = ["| threads | eager (s per image) | compiled (s per image) | matrix products (s per image) | GFLOP/s "
             "| eager / products | compiled / products | compiling pays back after (images) |", "|---" * 8 + "|"]
    for key, v in record["values"].items():
        if not key.startswith("threads_"):
            continue
        ref = f"<!-- rec:{record['id']}.{key}"
        payback = f"{v['payback_images']:.0f} {ref}.payback_images -->" if "payback_images" in v else "never"
        lines.append(f"| {key.removeprefix('threads_')} | {v['eager_s']:.4f} {ref}.eager_s --> | {v['compiled_s']:.4f} "
                     f"{ref}.compiled_s --> | {v['limit_s']:.4f} {ref}.limit_s --> | {v['limit_gflops']:.0f} "
                     f"{ref}.limit_gflops --> | {v['eager_ratio']:.2f} {ref}.eager_ratio --> | "
                     f"{v['compiled_ratio']:.2f} {ref}.compiled_ratio --> | {payback} |")
    return region(lines)


def chunk_table(record: dict) -> str:
    """The docs' table of a ``--chunks`` record."""
    lines = ["| chunk (particles) | rows per decoder call | eager (s per image) | compiled (s per image) |",
             "|---" * 4 + "|"]
    for key, v in record["values"]["chunks"].items():
        ref = f"<!-- rec:{record['id']}.chunks.{key}"
        chunk = int(key.removeprefix("chunk_"))
        lines.append(f"| {chunk} | {chunk * 100:,} | {v['eager_s']:.4f} {ref}.eager_s --> "
                     f"| {v['compiled_s']:.4f} {ref}.compiled_s --> |")
    return region(lines)


def ais_table(record: dict) -> str:
    """The docs' table of an ``--ais`` record."""
    v, ref = record["values"]["ais"], f"<!-- rec:{record['id']}.ais"
    rows = (("eager", "eager_s"), ("compiled, first (with its compilation)", "compiled_first_s"),
            ("compiled", "compiled_s"), ("eager, again", "eager_again_s"))
    return region(["| run | seconds |", "|---|---|",
                   *(f"| {label} | {v[key]:.1f} {ref}.{key} --> |" for label, key in rows)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("-K", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=None)
    parser.add_argument("--chunks", type=int, nargs="+", default=None, help="compare these chunk sizes")
    parser.add_argument("--simdlen", type=int, default=None, help="inductor's vector width (bits) on AVX512")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ais", action="store_true", help="time AIS instead of IWAE")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--ais-steps", type=int, default=30)
    parser.add_argument("--ais-chains", type=int, default=4)
    parser.add_argument("--cudagraphs", action="store_true", help="with --device cuda: also CUDA graphs")
    parser.add_argument("--out", help="also write the IWAE table's numbers as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        return print(table(json.loads(Path(args.table).read_text())))
    if args.run_dir is None:
        parser.error("give RUN_DIR (or --table RECORD)")
    kernels = prefer_cpu_kernels()  # ATen's element-wise kernels as pyro-mvae evaluate uses them
    if args.cudagraphs and args.device != "cuda":
        raise SystemExit("--cudagraphs needs --device cuda")
    if args.simdlen:
        compiled.AVX512_SIMDLEN = args.simdlen
    vae, _, _, data = load_run(args.run_dir, args.device)
    x = data.test.x[:args.images]  # (N, *event)
    n = x.shape[0]
    how = f"{args.device}, ATen {kernels} kernels, the threads of each row, nothing else running"
    if args.ais or args.chunks:
        if args.ais:
            print(f"AIS of {n} images, T = {args.ais_steps}, S = {args.ais_chains}, {args.threads[-1]} thread(s)\n"
                  "| run | seconds |\n|---|---|")
        values = (bench_ais(vae, x, args.ais_steps, args.ais_chains, args.threads[-1]) if args.ais else
                  bench_chunks(vae, x, args.K, args.chunks, args.threads[-1], args.rounds))
        if args.out:
            write_record(args.out, values, how)
        return
    args.chunk = args.chunk or default_chunk_size(100, x.device)

    def iwae(setting, seed=0):
        pyro.set_rng_seed(seed)
        return iwae_log_likelihood(vae, x, args.K, chunk_size=args.chunk, compile=setting)

    torch.set_num_threads(args.threads[0])
    one = x[:100]
    eager_batch = timed(lambda: iwae_log_likelihood(vae, one, args.K, args.chunk, compile="false"))
    first_compiled = timed(lambda: iwae_log_likelihood(vae, one, args.K, args.chunk, compile="true"))
    compile_seconds = first_compiled - eager_batch
    diff = (iwae("true", 1) - iwae("false", 1)).abs().max().item()
    print(f"compilation: {compile_seconds:.1f} s (first compiled batch {first_compiled:.1f} s, eager "
          f"{eager_batch:.1f} s, {args.threads[0]} thread(s)); largest |compiled - eager| on the same draws: "
          f"{diff:.2e} nats")
    print(f"\n{n} images, K = {args.K}, chunks of {args.chunk}, batches of 100; seconds per image "
          f"(median of {args.rounds} rounds)")
    print("| threads | eager | compiled | matmul limit (GFLOP/s) | eager / limit | compiled / limit "
          "| pays back after |")
    print("|---|---|---|---|---|---|---|")
    values = {"compilation_s": compile_seconds, "max_diff_nats": diff, "images": n, "K": args.K, "chunk": args.chunk}
    for threads in args.threads:
        torch.set_num_threads(threads)
        times = {"eager": [], "compiled": [], "limit": []}
        gflops = []
        for _ in range(args.rounds):
            times["eager"].append(timed(lambda: iwae("false")) / n)
            times["compiled"].append(timed(lambda: iwae("true")) / n)
            seconds, rate = matmul_limit(vae, n, args.K, args.chunk, 100)
            times["limit"].append(seconds / n)
            gflops.append(rate)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        saved = med["eager"] - med["compiled"]
        payback = f"{compile_seconds / saved:.0f} images" if saved > 0 else "never"
        values[f"threads_{threads}"] = {"eager_s": med["eager"], "compiled_s": med["compiled"], "limit_s": med["limit"],
                                        "limit_gflops": sorted(gflops)[len(gflops) // 2],
                                        "eager_ratio": med["eager"] / med["limit"],
                                        "compiled_ratio": med["compiled"] / med["limit"]}
        if saved > 0:
            values[f"threads_{threads}"]["payback_images"] = compile_seconds / saved
        print(f"| {threads} | {med['eager']:.4f} | {med['compiled']:.4f} | {med['limit']:.4f} "
              f"({sorted(gflops)[len(gflops) // 2]:.0f}) | {med['eager'] / med['limit']:.2f} | "
              f"{med['compiled'] / med['limit']:.2f} | {payback} |")
    if args.out:
        write_record(args.out, values, how)
    if args.cudagraphs:
        bench_cudagraphs(vae, x, args.K, args.chunk, args.rounds)


if __name__ == "__main__":
    main()
