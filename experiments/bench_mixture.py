"""log Σ_c π_c N(z; μ_c, diag σ_c²) for the VampPrior's size: broadcast against matrix products.

    python experiments/bench_mixture.py [--components 500] [-d 40] [--particles 2000] [--out RECORD]

Times ``MixtureSameFamily.log_prob`` (an ``(N, C, d)`` broadcast) and
``DiagonalGaussianMixture.log_prob`` (two ``(N, d) × (d, C)`` products in float64) on the same
N particles, one process, alternating after a warm-up, and prints their largest difference.
``--out``: also write ``broadcast_ms``, ``matrix_ms`` (per call), ``speedup`` and
``max_diff_nats`` as a record the docs cite (``experiments/records.py``).
"""

import argparse
import time

import torch
from records import write_record

from pyro_mvae.distributions.mixtures import DiagonalGaussianMixture
from pyro_mvae.runs import prefer_cpu_kernels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("-d", type=int, default=40)
    parser.add_argument("--particles", type=int, default=2000, help="N = K · B particles per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="also write the numbers as a record (docs/records/NAME.json)")
    args = parser.parse_args()
    kernels = prefer_cpu_kernels()
    torch.manual_seed(0)
    C, d = args.components, args.d
    matrix = DiagonalGaussianMixture(torch.zeros(C), torch.randn(C, d), torch.rand(C, d) + 0.05)
    broadcast = matrix.as_mixture_same_family()
    z = torch.randn(args.particles, d)
    seconds = {"broadcast (MixtureSameFamily)": 0.0, "matrix products": 0.0}
    for fn in (broadcast.log_prob, matrix.log_prob):
        fn(z)
    for _ in range(args.repeats):
        for name, fn in zip(seconds, (broadcast.log_prob, matrix.log_prob)):
            tic = time.perf_counter()
            fn(z)
            seconds[name] += time.perf_counter() - tic
    diff = (broadcast.log_prob(z) - matrix.log_prob(z)).abs().max().item()
    print(f"C = {C}, d = {d}, N = {args.particles}, {torch.get_num_threads()} threads; "
          f"largest difference {diff:.2e} nats")
    for name, s in seconds.items():
        print(f"{name}: {1e3 * s / args.repeats:.1f} ms per call")
    if args.out:
        broadcast_ms, matrix_ms = (1e3 * s / args.repeats for s in seconds.values())
        write_record(args.out, {"components": C, "d": d, "particles": args.particles, "broadcast_ms": broadcast_ms,
                                "matrix_ms": matrix_ms, "speedup": broadcast_ms / matrix_ms, "max_diff_nats": diff},
                     f"cpu, {torch.get_num_threads()} torch threads, ATen {kernels} kernels, nothing else running")


if __name__ == "__main__":
    main()
