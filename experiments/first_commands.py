"""The wall time of the first commands a new user runs on the digits, as one record the docs cite.

    python experiments/first_commands.py [--ais] [--beside WHAT] [--out docs/records/first_commands.json]

Runs, each as its own ``pyro-mvae`` process in a fresh temporary folder (the README's and the
getting-started page's commands, as written, nothing downloaded):

- ``train``: ``pyro-mvae train run_dir=runs/first`` (the seed's model on scikit-learn's digits,
  100 epochs at most, IWAE-5000 on the 297 test images);
- ``train_marginal``: ``pyro-mvae train prior=mixture guide=marginal_mixture run_dir=runs/marginal``;
- ``evaluate``: ``pyro-mvae evaluate runs/first`` (IWAE-5000, k̂, the figures);
- ``evaluate_ais`` (with ``--ais``): ``pyro-mvae evaluate runs/first --estimator ais`` (T = 500,
  S = 16 chains on the 297 images: minutes).

The record holds each command's seconds (start-up, data, training, evaluation, figures: what the
user waits for) and the first run's numbers: those it prints (``report.json``: IWAE ± s.e., ELBO,
its best epoch counted from 0, the epochs trained) and its evaluation's IWAE-ELBO gap, K sweep and
Pareto k̂ (the evaluation ``train`` kept, before ``evaluate`` adds its own).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from records import write_record

COMMANDS = {
    "train": ["train", "run_dir=runs/first"],
    "train_marginal": ["train", "prior=mixture", "guide=marginal_mixture", "run_dir=runs/marginal"],
    "evaluate": ["evaluate", "runs/first"],
    "evaluate_ais": ["evaluate", "runs/first", "--estimator", "ais"],
}


def timed(args: list[str], cwd: Path) -> float:
    """Seconds of ``pyro-mvae ARGS`` in ``cwd`` (it must succeed)."""
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyro_mvae.cli", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - tic


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ais", action="store_true", help="also time `evaluate --estimator ais` (minutes)")
    parser.add_argument("--out", default="docs/records/first_commands.json")
    parser.add_argument("--beside", default="nothing", help="what ran beside the commands, for the record")
    args = parser.parse_args()
    names = [name for name in COMMANDS if args.ais or name != "evaluate_ais"]
    with tempfile.TemporaryDirectory() as folder:
        seconds = {name: timed(COMMANDS[name], Path(folder)) for name in names}
        first = Path(folder) / "runs" / "first"
        report = json.loads((first / "report.json").read_text())
        scored = json.loads((first / "evaluations" / "test-297-K5000-iwae-seed0.json").read_text())  # train's own
        epochs = len((first / "metrics.jsonl").read_text().splitlines())  # one line per epoch trained
    values = {"seconds": seconds,
              "first_run": {k: report[k] for k in ("test_iwae_ll", "test_iwae_ll_se", "test_elbo", "test_elbo_se",
                                                   "best_epoch", "eval_seconds")}
              | {"epochs": epochs, "gap": scored["gap"], "khat_share_above_0.7": scored["khat_share_above_0.7"],
                 "khat_max": scored["khat_max"], "k_sweep": {k: v["mean"] for k, v in scored["k_sweep"].items()}}}
    for name in names:
        print(f"pyro-mvae {' '.join(COMMANDS[name])}: {seconds[name]:.1f} s")
    write_record(args.out, values, f"one command at a time, one torch thread (the default), {args.beside} beside")


if __name__ == "__main__":
    main()
