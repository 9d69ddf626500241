"""Where the runs of the published protocol stand, as a record the docs cite (docs/records/).

    python experiments/protocol_status.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--out docs/records/protocol_status.json]

For each run (``experiment=vampprior_protocol``, continued in pieces with ``trainer.max_time``):
the epochs trained, the best validation ELBO and its epoch, the training seconds so far, whether
it finished (``report.json``) and then its test IWAE-5000 ± s.e., ELBO and the minutes the final
evaluation took (one thread, all 10,000 test images, K = 5000), all read from the run
directory (``metrics.jsonl``, ``last.pt``'s progress via ``timings.jsonl``, ``report.json``). The
record also holds the command that trained each run (``environment.json``), the release and git
commit, the date and the machine, which docs/_ext/check_records.py requires. It prints the status
table of docs/results.md, each number with its record marker.
"""

import argparse
import json
import sys
from pathlib import Path

from records import write_record


def run_status(run_dir: Path) -> dict:
    """The numbers of one run directory (nats per image, seconds)."""
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    timings = [json.loads(line) for line in (run_dir / "timings.jsonl").read_text().splitlines() if line]
    best = max(metrics, key=lambda r: r["val_elbo"])
    status = {"epochs": len(metrics), "best_val_elbo": best["val_elbo"], "best_epoch": best["epoch"],
              "train_hours": sum(t["seconds"] for t in timings) / 3600,
              "median_epoch_seconds": sorted(t["seconds"] for t in timings)[len(timings) // 2],
              "finished": int((run_dir / "report.json").exists())}
    if status["finished"]:
        report = json.loads((run_dir / "report.json").read_text())
        status |= {"test_iwae": report["test_iwae_ll"], "test_iwae_se": report["test_iwae_ll_se"],
                   "test_elbo": report["test_elbo"], "eval_minutes": report["eval_seconds"] / 60}
    return status


def minus(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals and a typographic minus, as the docs write numbers."""
    return f"{value:.{decimals}f}".replace("-", "−")


def table(record: dict, labels: dict) -> str:
    """The docs' status table of the runs, every number followed by its record marker."""
    lines = ["| prior | epochs trained | best validation ELBO (nats) | at epoch | training so far | median epoch "
             "| test IWAE-5000 (nats) |", "|---|---|---|---|---|---|---|"]
    for name, v in record["values"].items():
        ref = f"<!-- rec:{record['id']}.{name}"
        iwae = (f"{minus(v['test_iwae'], 2)} {ref}.test_iwae --> ± {v['test_iwae_se']:.2f} {ref}.test_iwae_se --> "
                f"(scored in {v['eval_minutes']:.0f} min {ref}.eval_minutes -->)" if v["finished"] else "not finished")
        lines.append(f"| {labels.get(name, name)} | {v['epochs']} {ref}.epochs --> | {minus(v['best_val_elbo'], 2)} "
                     f"{ref}.best_val_elbo --> | {v['best_epoch']} {ref}.best_epoch --> | {v['train_hours']:.2f} h "
                     f"{ref}.train_hours --> | {v['median_epoch_seconds']:.1f} s {ref}.median_epoch_seconds --> "
                     f"| {iwae} |")
    return "\n".join(lines)


LABELS = {"standard": "standard N(0, I)", "vamp": "VampPrior, 500 pseudo-inputs",
          "fm3": "seed's per-dimension mixture, N = 3", "mix10": "mixture, C = 10", "flow": "Real-NVP flow prior"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--out", default="docs/records/protocol_status.json")
    args = parser.parse_args()
    runs = dict(spec.split("=", 1) for spec in args.runs)
    commands = {name: " ".join(["pyro-mvae", *json.loads((Path(d) / "environment.json").read_text())["command"][1:]])
                for name, d in runs.items()}
    record = write_record(args.out, {name: run_status(Path(d)) for name, d in runs.items()},
                          "one torch thread per run, two runs side by side",
                          " ; ".join(commands.values()) + " ; python " + " ".join(sys.argv))
    print(table(record, LABELS))


if __name__ == "__main__":
    main()
