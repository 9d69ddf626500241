"""How far from log p(x)? IWAE at K = 5000 against AIS at several budgets on the same test
images, each with its wall time per image, and the BDMC gap on images simulated from the model
(README: "How far from log p(x)?"; Wu et al. 2017).

    OMP_NUM_THREADS=1 python experiments/ais_study.py RUN_DIR --images 500 --budgets 100x4 500x4 \\
        --bdmc 100 --bdmc-steps 10 100 500 --out runs/ais/RUN.json

A budget TxS is T annealing distributions and S chains per image (L = --leapfrog). Writes the
JSON (atomically, after each stage, so a stopped study keeps what it measured) and prints the
README's rows.
"""

import argparse
import time
from pathlib import Path

import torch

from pyro_mvae.infer.ais import ais_log_likelihood
from pyro_mvae.infer.bdmc import bdmc
from pyro_mvae.infer.iwae import iwae_log_likelihood, mean_and_stderr
from pyro_mvae.runs import load_run
from pyro_mvae.storage import write_json_atomic


def timed(fn, *args, **kwargs):
    tic = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - tic


def study(args) -> dict:
    torch.manual_seed(args.seed)
    vae, config, _, data = load_run(args.run_dir)
    x = data.test.x[:args.images]  # (N, D): the test split's fixed binarisation
    n = x.shape[0]
    out = {"run_dir": str(args.run_dir), "prior": config["prior"]["name"], "guide": config["guide"]["name"],
           "images": n, "leapfrog": args.leapfrog, "torch_threads": torch.get_num_threads()}
    iwae, seconds = timed(iwae_log_likelihood, vae, x, num_samples=5000, progress=True)
    out["iwae_5000"] = dict(zip(("ll", "se"), mean_and_stderr(iwae))) | {"seconds_per_image": seconds / n}
    write_json_atomic(args.out, out)
    for budget in args.budgets:
        steps, chains = (int(v) for v in budget.split("x"))
        (estimates, stats), seconds = timed(ais_log_likelihood, vae, x, steps=steps, chains=chains,
                                            leapfrog=args.leapfrog, progress=True)
        diff = dict(zip(("minus_iwae", "minus_iwae_se"), mean_and_stderr(estimates - iwae)))
        out[f"ais_{budget}"] = (dict(zip(("ll", "se"), mean_and_stderr(estimates))) | diff | stats
                                | {"seconds_per_image": seconds / n,
                                   "cost_ratio_to_iwae": seconds / n / out["iwae_5000"]["seconds_per_image"]})
        write_json_atomic(args.out, out)
    if args.bdmc:
        report, seconds = timed(bdmc, vae, args.bdmc, tuple(args.bdmc_steps), args.bdmc_chains, args.leapfrog,
                                progress=True)
        out["bdmc"] = report | {"seconds": seconds}
        write_json_atomic(args.out, out)
    return out


def rows(out: dict) -> str:
    name = f"{out['prior']} + {out['guide']}"
    lines = [f"| {name} | IWAE, K = 5000 | {out['iwae_5000']['ll']:.2f} ± {out['iwae_5000']['se']:.2f} | — | "
             f"{out['iwae_5000']['seconds_per_image']:.2f} s (1×) |"]
    for key, row in out.items():
        if key.startswith("ais_"):
            steps, chains = key[4:].split("x")
            lines.append(f"| {name} | AIS, T = {steps}, S = {chains}, L = {out['leapfrog']} | {row['ll']:.2f} ± "
                         f"{row['se']:.2f} | {row['minus_iwae']:+.2f} ± {row['minus_iwae_se']:.2f} | "
                         f"{row['seconds_per_image']:.2f} s ({row['cost_ratio_to_iwae']:.1f}×) |")
    if "bdmc" in out:
        gaps = ", ".join(f"T = {t}: {r['gap']:.2f} ± {r['gap_se']:.2f}" for t, r in out["bdmc"]["by_steps"].items())
        lines.append(f"| {name} | BDMC gap on {out['bdmc']['n']} simulated images (S = {out['bdmc']['chains']}) "
                     f"| {gaps} | | {out['bdmc']['seconds']:.0f} s in all |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--images", type=int, default=500, help="the first N test images")
    parser.add_argument("--budgets", nargs="+", default=["100x4", "500x4"], help="AIS budgets TxS")
    parser.add_argument("--leapfrog", type=int, default=10)
    parser.add_argument("--bdmc", type=int, default=100, help="simulated images (0: no BDMC)")
    parser.add_argument("--bdmc-steps", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--bdmc-chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the study's JSON")
    args = parser.parse_args()
    print(rows(study(args)))


if __name__ == "__main__":
    main()
