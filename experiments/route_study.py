"""The route study: every way to train the seed's per-dimension mixture (and the C = 10 mixture),
same budget, scored on the same test images (README, "Which route for the seed's model").

    python experiments/route_study.py run [ROUTE ...] --root ../shared/data --jobs 2
    python experiments/route_study.py table [ROUTE ...]
    python experiments/route_study.py list
    python experiments/route_study.py run --data omniglot --root ~/data      # another data set
    python experiments/route_study.py run --data folder --set data.path=~/my_images

``--data`` names the data set (default mnist; any of ``pyro-mvae train``'s ``data=`` options),
``--root`` the folder holding its files (for the data sets that take ``data.root``), ``--set``
more data overrides; runs go to ``runs/route_study`` for MNIST, ``runs/route_study_<data>``
otherwise (``--out``). ``run`` trains each route (experiment=core: MLP 784-300-300-40, B = 100,
Adam 1e-3, β warm-up over 10 epochs, ``--epochs`` 100, early stopping, best validation
checkpoint), ``--jobs`` at a time with
one thread each, then scores the best checkpoint with ``pyro-mvae evaluate`` at K = 5000 on the
first ``--limit`` test images (per-image estimates, k̂, active units, perplexities, figures).
A route whose report or evaluation exists is skipped, and one stopped mid-training is resumed,
so the command can be repeated until everything is done. ``table`` prints the Markdown table:
IWAE mean ± s.e., the paired Δ against ``--baseline`` (``standard_gaussian``) on the same images, k̂ > 0.7 share,
active units, the per-dimension perplexity of the prior's weights, the best epoch and the median
seconds per training epoch (comparable only between runs that shared the machine alike).
"""

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyro_mvae.training.datasets import DATASETS

FM = ["prior=factorized_mixture"]
MIX = ["prior=mixture", "prior.components=10"]
ROUTES = {
    "standard_gaussian": ["prior=standard", "guide=gaussian"],
    "fm3_straight_through": FM + ["guide=relaxed_mixture", "guide.straight_through=true"],
    "fm3_marginal": FM + ["guide=marginal_mixture"],
    "fm3_gumbel_rao": FM + ["guide=relaxed_mixture", "guide.estimator=gumbel_rao"],
    "fm3_gaussian": FM + ["guide=gaussian"],
    "fm3_concrete": FM + ["guide=relaxed_mixture", "guide.straight_through=false"],
    "fm3_score_neural": FM + ["guide=discrete_mixture", "guide.baseline=neural", "objective=tracegraph"],
    "mix10_marginal": MIX + ["guide=marginal_mixture"],  # objective=auto: stratified
    "mix10_marginal_implicit": MIX + ["guide=marginal_mixture", "guide.estimator=implicit"],
    "mix10_enum": MIX + ["guide=discrete_mixture", "objective=enum"],
    "mix10_gumbel_rao": MIX + ["guide=relaxed_mixture", "guide.estimator=gumbel_rao"],
    "mix10_straight_through": MIX + ["guide=relaxed_mixture"],
    "fm5_marginal": ["prior=factorized_mixture", "prior.components=5", "guide=marginal_mixture"],
    "fm10_marginal": ["prior=factorized_mixture", "prior.components=10", "guide=marginal_mixture"],
    "fm5_gaussian": ["prior=factorized_mixture", "prior.components=5", "guide=gaussian"],
    "fm10_gaussian": ["prior=factorized_mixture", "prior.components=10", "guide=gaussian"],
    "fm5_gumbel_rao": ["prior=factorized_mixture", "prior.components=5", "guide=relaxed_mixture",
                       "guide.estimator=gumbel_rao"],
    "fm10_gumbel_rao": ["prior=factorized_mixture", "prior.components=10", "guide=relaxed_mixture",
                        "guide.estimator=gumbel_rao"],
}


def _train_command(route: str, args) -> list[str]:
    run_dir = args.out / route
    if (run_dir / "last.pt").exists():
        return ["pyro-mvae", "train", f"resume={run_dir}", "trainer.progress=false"]
    return ["pyro-mvae", "train", "experiment=core", *data_overrides(args),
            f"trainer.epochs={args.epochs}", f"trainer.eval_limit={args.limit}",
            "trainer.eval_samples=100", f"run_dir={run_dir}", *ROUTES[route]]


def data_overrides(args) -> list[str]:
    """``data=NAME``, ``data.root=ROOT`` when the data set takes a root, and the ``--set`` ones."""
    root = [f"data.root={args.root}"] if "root" in DATASETS[args.data].Config.keys() else []
    return [f"data={args.data}", *root, *args.set]


def _evaluated(run_dir: Path, limit: int) -> bool:
    path = run_dir / "eval.json"
    return path.exists() and json.loads(path.read_text())["n"] == limit


def run_route(route: str, args) -> str:
    """Train (or resume) and evaluate one route; returns a one-line status."""
    run_dir = args.out / route
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(args.out / f"{route}.log", "a") as log:
        if not (run_dir / "report.json").exists():
            if subprocess.run(_train_command(route, args), env=env, stdout=log, stderr=log).returncode:
                return f"{route}: training failed, see {args.out / route}.log"
        if not _evaluated(run_dir, args.limit):
            evaluate = ["pyro-mvae", "evaluate", str(run_dir), "-K", str(args.k), "--limit", str(args.limit)]
            if subprocess.run(evaluate, env=env, stdout=log, stderr=log).returncode:
                return f"{route}: evaluation failed, see {args.out / route}.log"
    return f"{route}: done"


def _per_image(run_dir: Path, n: int) -> tuple[list[float], list[float]]:
    with open(run_dir / "per_datapoint_test.csv") as f:
        rows = list(csv.DictReader(f))[:n]
    k = max(int(c.split("_")[1]) for c in rows[0] if c.startswith("iwae_"))
    return [float(r[f"iwae_{k}"]) for r in rows], [float(r["khat"]) for r in rows]


def _mean_se(values: list[float], sign: str = "") -> str:
    m = statistics.fmean(values)
    return f"{m:{sign}.2f} ± {statistics.stdev(values) / math.sqrt(len(values)):.2f}"


def _row(route: str, run_dir: Path, base: list[float] | None, n: int, baseline: str) -> str:
    ll, khat = _per_image(run_dir, n)
    ev = json.loads((run_dir / "eval.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    seconds = [json.loads(line)["seconds"] for line in (run_dir / "timings.jsonl").read_text().splitlines()]
    delta = "—" if base is None or route == baseline else _mean_se([a - b for a, b in zip(ll, base)], "+")
    perplexity = ev.get("prior_weights_perplexity")
    return (f"| {route} | {' '.join(ROUTES[route])} | {_mean_se(ll)} | {delta} "
            f"| {100 * sum(h > 0.7 for h in khat) / n:.1f}% | {ev['active_units']}/{ev['latent_dim']} "
            f"| {'—' if perplexity is None else f'{perplexity:.2f}'} "
            f"| {report['best_epoch'] + 1} / {report['epochs_run']} | {statistics.median(seconds):.1f} |")


def table(routes: list[str], args) -> None:
    done = [r for r in routes if _evaluated(args.out / r, args.limit)]
    base = _per_image(args.out / args.baseline, args.limit)[0] if _evaluated(args.out / args.baseline, args.limit) else None
    print(f"| route | overrides | IWAE log p(x), first {args.limit} test images, K = {args.k} (nats) "
          f"| paired Δ vs {args.baseline} | k̂ > 0.7 | active units | prior perplexity per dim "
          "| best epoch / epochs | s per epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for route in done:
        print(_row(route, args.out / route, base, args.limit, args.baseline))
    missing = sorted(set(routes) - set(done))
    if missing:
        print(f"\nnot evaluated yet: {', '.join(missing)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "table", "list"])
    parser.add_argument("routes", nargs="*", help=f"route names (default: all): {', '.join(ROUTES)}")
    parser.add_argument("--data", default="mnist", choices=sorted(DATASETS), help="the data set (default mnist)")
    parser.add_argument("--root", default="../shared/data", help="folder holding the data set's files (MNIST/raw/)")
    parser.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                        help="a data override, e.g. data.path=FILE for arrays or folder (repeatable)")
    parser.add_argument("--out", type=Path, help="run folder (default runs/route_study[_<data>])")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--limit", type=int, default=2000, help="test images scored")
    parser.add_argument("-K", dest="k", type=int, default=5000)
    parser.add_argument("--baseline", default="standard_gaussian", help="table: the route of the paired Δ")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    args = parser.parse_args()
    unknown = set(args.routes) - set(ROUTES)
    if unknown:
        parser.error(f"unknown routes {sorted(unknown)}; valid: {', '.join(ROUTES)}")
    routes = args.routes or list(ROUTES)
    args.out = args.out or Path("runs/route_study" + ("" if args.data == "mnist" else f"_{args.data}"))
    if args.action == "list":
        for name, overrides in ROUTES.items():
            print(f"{name}: {' '.join(overrides)}")
    elif args.action == "table":
        table(routes, args)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            for status in pool.map(lambda r: run_route(r, args), routes):
                print(status, flush=True)


if __name__ == "__main__":
    main()
