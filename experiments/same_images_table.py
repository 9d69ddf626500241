"""IWAE log-likelihood of several runs on the same first N test images, from their per-image files.

    python experiments/same_images_table.py N RUN_DIR [RUN_DIR ...]

Each run directory needs ``per_datapoint_test.csv`` (written by ``pyro-mvae evaluate``) with at
least N rows; its ``iwae_<K>`` column at the largest K is used. Prints mean ± s.e. (nats) per
run, the k̂ > 0.7 share, and the paired difference against the first run ± its s.e.
"""

import csv
import math
import sys
from pathlib import Path


def column(run_dir: Path, n: int) -> tuple[list[float], list[float], int]:
    with open(run_dir / "per_datapoint_test.csv") as f:
        rows = list(csv.DictReader(f))[:n]
    if len(rows) < n:
        raise SystemExit(f"{run_dir} scored only {len(rows)} test images, fewer than {n}")
    k = max(int(c.split("_")[1]) for c in rows[0] if c.startswith("iwae_"))
    return [float(r[f"iwae_{k}"]) for r in rows], [float(r["khat"]) for r in rows], k


def mean_se(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def main(n: int, runs: list[str]) -> None:
    base = None
    print(f"| run | IWAE log p(x) on the first {n} test images (nats) | K | k̂ > 0.7 | Δ vs first (paired) |")
    print("|---|---|---|---|---|")
    for run in map(Path, runs):
        ll, khat, k = column(run, n)
        base = base or ll
        delta = "—" if ll is base else "{:+.2f} ± {:.2f}".format(*mean_se([a - b for a, b in zip(ll, base)]))
        share = 100 * sum(h > 0.7 for h in khat) / n
        print(f"| {run.name} | {'{:.2f} ± {:.2f}'.format(*mean_se(ll))} | {k} | {share:.1f}% | {delta} |")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
