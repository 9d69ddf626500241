"""Where the runs of the published protocol stand, as a record the docs cite (docs/records/).

    python experiments/protocol_status.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--out docs/records/protocol_status.json]

For each run (``experiment=vampprior_protocol``, continued in pieces with ``trainer.max_time``):
the epochs trained, the best validation ELBO and its epoch, the training seconds so far, whether
it finished (``report.json``) and then its test IWAE-5000 ± s.e., ELBO, the share of images with
k̂ > 0.7 and the IWAE at K = 1000 (``eval.json``), the minutes the final
evaluation took (one thread, all 10,000 test images, K = 5000), and the paired difference of each
finished run's per-image IWAE against the standard prior's (``compare``'s pairing), all read from the run
directory (``metrics.jsonl``, ``last.pt``'s progress via ``timings.jsonl``, ``report.json``). The
record also holds the command that trained each run (``environment.json``), the release and git
commit, the date and the machine, which docs/_ext/check_records.py requires. It prints the status
table of docs/results.md, each number with its record marker.
"""

import argparse
import json
import sys
from pathlib import Path

from records import minus, region, write_record

from pyro_mvae.evaluation.compare import load_aligned, paired_difference


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
        scored = json.loads((run_dir / "eval.json").read_text())
        status["khat_share"] = scored["khat_share_above_0.7"]
        if "1000" in scored["k_sweep"]:  # an evaluation with K >= 1000
            status["test_iwae_k1000"] = scored["k_sweep"]["1000"]["mean"]
    return status


def paired_deltas(runs: dict[str, Path], status: dict[str, dict], baseline: str = "standard") -> None:
    """Add to each finished run's status its paired difference in test IWAE against ``baseline``
    (mean and s.e. over the images both scored, nats; ``compare``'s pairing)."""
    if not status.get(baseline, {}).get("finished"):
        return
    for name, run_dir in runs.items():
        if name != baseline and status[name]["finished"]:
            base, run = load_aligned([runs[baseline], run_dir])
            delta, se = paired_difference(run.per_image, base.per_image)
            status[name] |= {"paired_delta": delta, "paired_delta_se": se}


PUBLISHED = {"standard": (-84.45, 0.12), "vamp": (-82.43, 0.06)}
"""Test log-likelihood ± s.e. (nats), dynamic MNIST, IWAE-5000, one stochastic layer of 40 units, gated
300-300 nets: Norouzi et al. 2020 (Exemplar VAE), Table 1 (Tomczak & Welling 2018 report the same
setting). The record carries them beside the runs' numbers (``published_iwae``, ``published_iwae_se``)."""


def table(record: dict, labels: dict) -> str:
    """The docs' status table of the runs as a records region, every number followed by its record marker."""
    lines = ["| prior | epochs trained | best validation ELBO (nats) | at epoch | training so far | median epoch "
             "| test IWAE-5000 (nats) | paired Δ vs standard (nats) | published |", "|---" * 9 + "|"]
    for name, v in record["values"].items():
        ref = f"<!-- rec:{record['id']}.{name}"
        iwae = (f"{minus(v['test_iwae'], '.2f')} {ref}.test_iwae --> ± {v['test_iwae_se']:.2f} "
                f"{ref}.test_iwae_se --> "
                f"(scored in {v['eval_minutes']:.0f} min {ref}.eval_minutes -->)" if v["finished"] else "not finished")
        delta = (f"{v['paired_delta']:+.2f} {ref}.paired_delta --> ± {v['paired_delta_se']:.2f} "
                 f"{ref}.paired_delta_se -->" if "paired_delta" in v else "—")
        published = (f"{minus(v['published_iwae'], '.2f')} {ref}.published_iwae --> ± {v['published_iwae_se']:.2f} "
                     f"{ref}.published_iwae_se -->" if "published_iwae" in v else "—")
        lines.append(f"| {labels.get(name, name)} | {v['epochs']} {ref}.epochs --> "
                     f"| {minus(v['best_val_elbo'], '.2f')} {ref}.best_val_elbo --> | {v['best_epoch']} "
                     f"{ref}.best_epoch --> | {v['train_hours']:.2f} h {ref}.train_hours --> "
                     f"| {v['median_epoch_seconds']:.1f} s {ref}.median_epoch_seconds --> "
                     f"| {iwae} | {delta} | {published} |")
    return region(lines)


LABELS = {"standard": "standard N(0, I)", "vamp": "VampPrior, 500 pseudo-inputs",
          "fm3": "seed's per-dimension mixture, N = 3", "fm5": "seed's per-dimension mixture, N = 5",
          "mix10": "mixture, C = 10", "flow": "Real-NVP flow prior"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--out", default="docs/records/protocol_status.json")
    args = parser.parse_args()
    runs = dict(spec.split("=", 1) for spec in args.runs)
    commands = {name: " ".join(["pyro-mvae", *json.loads((Path(d) / "environment.json").read_text())["command"][1:]])
                for name, d in runs.items()}
    runs = {name: Path(d) for name, d in runs.items()}
    status = {name: run_status(d) for name, d in runs.items()}
    paired_deltas(runs, status)
    for name in status:
        if name in PUBLISHED:
            status[name] |= dict(zip(("published_iwae", "published_iwae_se"), PUBLISHED[name]))
    record = write_record(args.out, status,
                          "one torch thread per run, two runs side by side",
                          " ; ".join(commands.values()) + " ; python " + " ".join(sys.argv))
    print(table(record, LABELS))


if __name__ == "__main__":
    main()
