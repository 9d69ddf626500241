"""The overhead of running a grid on Hydra's joblib launcher, against the same runs started by hand.

    python experiments/bench_sweep.py [--epochs 30] [--rounds 2] [--runs-dir /tmp/bench_sweep] [--out RECORD]
    python experiments/bench_sweep.py --table RECORD      # the docs' table of a record

The grid is four runs on digits (``prior=standard,mixture seed=0,1``, ``--epochs`` epochs each,
the final IWAE with K = 1000, no figures). Each round times, one after the other on an otherwise
idle machine:

- by hand: ``pyro-mvae train`` started for two of the runs side by side, waited for, then the
  other two (four processes, one torch thread each), as a user would from a shell;
- the sweep: ``pyro-mvae train -m ... hydra/launcher=joblib hydra.launcher.n_jobs=2`` (one
  command; it checks the four jobs, then Hydra's joblib plugin runs them two at a time).

Both are timed as whole commands, from start to the last process's exit (process start,
imports, data loading and every file written included); the ratio sweep / by hand is printed
per round and as the median. This script starts the processes it times (that is what it
measures); nothing in the package or the studies does.

``--out``: also write the rounds' seconds (``round_<r>.by_hand_s``, ``sweep_s``, ``ratio``) and
the ``median_ratio`` as a record the docs cite (``experiments/records.py``); ``--table RECORD``
prints the docs' table of such a record, measuring nothing.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from records import region, write_record

GRID = [("standard", 0), ("standard", 1), ("mixture", 0), ("mixture", 1)]


def settings(epochs: int) -> list[str]:
    return [f"trainer.epochs={epochs}", "trainer.patience=1000", "trainer.eval_samples=1000", "trainer.figures=false",
            "trainer.progress=false"]


def by_hand(out: Path, epochs: int) -> float:
    """Seconds for the four runs, two ``pyro-mvae train`` processes at a time."""
    tic = time.perf_counter()
    for pair in (GRID[:2], GRID[2:]):
        processes = [subprocess.Popen(["pyro-mvae", "train", f"prior={prior}", f"seed={seed}", *settings(epochs),
                                       f"run_dir={out / f'{prior}_{seed}'}"], stdout=subprocess.DEVNULL)
                     for prior, seed in pair]
        if any(p.wait() for p in processes):
            raise SystemExit("a run by hand failed")
    return time.perf_counter() - tic


def swept(out: Path, epochs: int) -> float:
    """Seconds for the same four runs as one sweep on the joblib launcher, two at a time."""
    tic = time.perf_counter()
    done = subprocess.run(["pyro-mvae", "train", "-m", "prior=standard,mixture", "seed=0,1", *settings(epochs),
                           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={out}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode:
        raise SystemExit("the sweep failed")
    return time.perf_counter() - tic


def table(record: dict) -> str:
    """The docs' table of an ``--out`` record as a records region, every number with its marker."""
    lines = ["| round | by hand, 2 at a time (s) | joblib sweep, n_jobs=2 (s) | sweep / by hand |", "|---|---|---|---|"]
    rounds = {k: v for k, v in record["values"].items() if k.startswith("round_")}
    for key, v in rounds.items():
        ref = f"<!-- rec:{record['id']}.{key}"
        lines.append(f"| {int(key.removeprefix('round_')) + 1} | {v['by_hand_s']:.1f} {ref}.by_hand_s --> "
                     f"| {v['sweep_s']:.1f} {ref}.sweep_s --> | {v['ratio']:.2f} {ref}.ratio --> |")
    return region(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/bench_sweep"), help="where the runs are written")
    parser.add_argument("--out", help="also write the numbers as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        return print(table(json.loads(Path(args.table).read_text())))
    print("| round | by hand, 2 at a time (s) | joblib sweep, n_jobs=2 (s) | sweep / by hand |\n|---|---|---|---|")
    ratios, values = [], {}
    for r in range(args.rounds):
        shutil.rmtree(args.runs_dir, ignore_errors=True)
        hand = by_hand(args.runs_dir / "by_hand", args.epochs)
        sweep = swept(args.runs_dir / "sweep", args.epochs)
        ratios.append(sweep / hand)
        values[f"round_{r}"] = {"by_hand_s": hand, "sweep_s": sweep, "ratio": sweep / hand}
        print(f"| {r} | {hand:.1f} | {sweep:.1f} | {sweep / hand:.3f} |", flush=True)
    values["median_ratio"] = statistics.median(ratios)
    print(f"\nmedian sweep / by hand over {args.rounds} rounds: {values['median_ratio']:.3f}")
    if args.out:
        write_record(args.out, values, f"{os.cpu_count()} cores, nothing else running; {args.epochs} epochs per run")


if __name__ == "__main__":
    main()
