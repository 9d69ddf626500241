"""``pyro-mvae compare RUN_DIR...``: one table of evaluated runs, and paired differences against the first."""

import csv
import json
import math
from pathlib import Path

import numpy as np

from pyro_mvae.errors import RunError


def _load(run_dir: Path) -> tuple[dict, dict, np.ndarray]:
    eval_path = run_dir / "eval.json"
    if not eval_path.is_file():
        raise RunError(f"{run_dir} has no eval.json: run `pyro-mvae evaluate {run_dir}` first")
    evaluation = json.loads(eval_path.read_text())
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    with open(run_dir / f"per_datapoint_{evaluation['split']}.csv") as f:
        rows = list(csv.DictReader(f))
    per_image = np.array([float(r[f"iwae_{evaluation['K']}"]) for r in rows])  # (N,)
    return evaluation, report, per_image


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the per-image difference a − b (``(N,)`` each), in nats."""
    diff = np.asarray(a) - np.asarray(b)
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))


def compare_table(run_dirs) -> str:
    """A Markdown table of the runs; Δ is the paired IWAE difference against the first run.

    Raises:
        pyro_mvae.training.runs.RunError: a run without ``eval.json``, or runs scored on different images.
    """
    loaded = [(Path(d), *_load(Path(d))) for d in run_dirs]
    base_dir, base_eval, _, base_ll = loaded[0]
    lines = ["| run | data | prior | guide | IWAE LL (nats) | ELBO | Δ vs first (paired) "
             "| active units | k̂ > 0.7 | epochs | train min |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run_dir, ev, report, ll in loaded:
        if (ev["split"], ev["n"], ev["data"]) != (base_eval["split"], base_eval["n"], base_eval["data"]):
            raise RunError(f"{run_dir} was scored on {ev['n']} {ev['data']} {ev['split']} images, "
                           f"{base_dir} on {base_eval['n']} {base_eval['data']} {base_eval['split']}: "
                           "evaluate both on the same split and number of images")
        delta = "—" if run_dir == base_dir else "{:+.2f} ± {:.2f}".format(*paired_difference(ll, base_ll))
        minutes = f"{report['train_seconds'] / 60:.1f}" if "train_seconds" in report else "?"
        share = ev["khat_share_above_0.7"]  # None when K was too small for k̂
        khat = "?" if share is None else f"{100 * share:.1f}%"
        lines.append(
            f"| {run_dir.name} | {ev['data']} | {ev['prior']} | {ev['guide']} "
            f"| {ev['iwae_ll']:.2f} ± {ev['iwae_ll_se']:.2f} | {ev['elbo']:.2f} | {delta} "
            f"| {ev['active_units']}/{ev['latent_dim']} | {khat} "
            f"| {report.get('epochs_run', '?')} | {minutes} |")
    return "\n".join(lines)
