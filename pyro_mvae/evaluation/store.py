"""Where a run's evaluations are kept: every evaluation, and the latest one where it always was.

``RUN_DIR/evaluations/<split>-<n>-K<K>-<estimator>-seed<seed>.json`` and ``.csv`` (one file pair
per evaluation: what was scored, with how many particles, by which estimator and seed); ``eval.json``
and ``per_datapoint_<split>.csv`` are copies of the latest, which the other commands read.
``<estimator>`` is ``iwae``, or ``ais-T<steps>-S<chains>-<init>`` when AIS was run as well. A
second evaluation of the same images adds its sections (AIS, BDMC) to the latest instead of
replacing them. Every file is written atomically.
"""

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from pyro_mvae.storage import write_bytes_atomic, write_json_atomic

FOLDER = "evaluations"


def evaluation_name(report: dict) -> str:
    """``<split>-<n>-K<K>-<estimator>-seed<seed>`` of an evaluation's summary (``seed`` unknown
    for one written before evaluations were seeded)."""
    ais = report.get("ais")
    estimator = f"ais-T{ais['steps']}-S{ais['chains']}-{ais['init']}" if ais else "iwae"
    return f"{report['split']}-{report['n']}-K{report['K']}-{estimator}-seed{report.get('seed', 'unknown')}"


def scope(report: dict) -> tuple:
    """What an evaluation scored, ``(data set, split, images, K)``: evaluations of the same scope
    can be paired image by image."""
    return report["data"], report["split"], report["n"], report["K"]


def write_evaluation(run_dir: Path, labels, scores: dict, report: dict) -> Path:
    """Keep the evaluation (``report``, the summary; ``scores``, per-image ``(N,)`` arrays;
    ``labels (N,)``) in ``run_dir/evaluations/`` and make it the latest (``eval.json``,
    ``per_datapoint_<split>.csv``, with the sections of the latest evaluation of the same images
    that this one did not compute added to ``report`` and ``scores``); returns the kept summary's
    path, also recorded as ``report["kept"]`` (relative to ``run_dir``). An ``eval.json`` of an
    earlier release, not yet kept there, is kept first."""
    run_dir = Path(run_dir)
    _keep_legacy(run_dir)
    kept = run_dir / FOLDER / f"{evaluation_name(report)}.json"
    kept.parent.mkdir(exist_ok=True)
    report["kept"] = str(kept.relative_to(run_dir))
    write_bytes_atomic(kept.with_suffix(".csv"), _per_datapoint(labels, scores))
    write_json_atomic(kept, report)  # this evaluation alone
    _add_earlier_sections(run_dir, scores, report)
    write_bytes_atomic(run_dir / f"per_datapoint_{report['split']}.csv", _per_datapoint(labels, scores))
    write_json_atomic(run_dir / "eval.json", report)
    return kept


def kept_evaluations(run_dir: Path) -> dict[tuple, Path]:
    """``{scope: summary path}`` of the evaluations kept in ``run_dir`` (and the latest), the
    newest of each scope."""
    paths = sorted((Path(run_dir) / FOLDER).glob("*.json"), key=lambda p: p.stat().st_mtime)
    latest = Path(run_dir) / "eval.json"
    found = {}
    for path in [*paths, *([latest] if latest.is_file() else [])]:
        found[scope(json.loads(path.read_text()))] = path
    return found


def per_image_path(summary: Path, report: dict) -> Path:
    """The per-image table that goes with a summary file (kept, or the latest)."""
    return summary.with_suffix(".csv") if summary.parent.name == FOLDER else \
        summary.parent / f"per_datapoint_{report['split']}.csv"


def _keep_legacy(run_dir: Path) -> None:
    """Copy an ``eval.json`` that is not in ``evaluations/`` (written by an earlier release) there."""
    latest = run_dir / "eval.json"
    if not latest.is_file():
        return
    report = json.loads(latest.read_text())
    kept = run_dir / FOLDER / f"{evaluation_name(report)}.json"
    per_image = run_dir / f"per_datapoint_{report.get('split', 'test')}.csv"
    if kept.exists() or not per_image.is_file():
        return
    kept.parent.mkdir(exist_ok=True)
    write_bytes_atomic(kept.with_suffix(".csv"), per_image.read_bytes())
    write_bytes_atomic(kept, latest.read_bytes())
    print(f"note: the earlier evaluation in {latest} is kept as {kept}", file=sys.stderr)


def _add_earlier_sections(run_dir: Path, scores: dict, report: dict) -> None:
    """Carry the latest evaluation's AIS section over when it scored the same images (and its
    BDMC section, on simulated images, always), unless this evaluation computed its own."""
    path = run_dir / "eval.json"
    if not path.exists():
        return
    earlier = json.loads(path.read_text())
    if "bdmc" in earlier and "bdmc" not in report:  # simulated images: whatever was scored here
        report["bdmc"] = earlier["bdmc"]
    same_images = (earlier.get("split"), earlier.get("n")) == (report["split"], report["n"])
    if "ais" in earlier and "ais" not in report and same_images:
        with open(run_dir / f"per_datapoint_{report['split']}.csv") as f:
            table = list(csv.DictReader(f))
        for column in ("ais", "ais_guide", "ais_prior"):
            if column in table[0]:
                scores[column] = np.array([float(row[column]) for row in table])  # (N,)
        report["ais"] = earlier["ais"]


def _per_datapoint(labels, scores: dict) -> bytes:
    """The per-image table: index, label, IWAE for each K, AIS (and each start's), ELBO, k̂, cluster
    (CSV bytes)."""
    buffer = io.StringIO()
    sweep = sorted((k for k in scores if k.startswith("iwae_")), key=lambda k: int(k.split("_")[1]))
    columns = ["index", "label"] + sweep + [c for c in ("ais", "ais_guide", "ais_prior") if c in scores] \
        + ["elbo", "khat"] \
        + [c for c in ("cluster",) if c in scores]
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for i, label in enumerate(labels.tolist()):
        writer.writerow([i, label] + [str(int(scores[c][i])) if c == "cluster" else repr(float(scores[c][i]))
                                      for c in columns[2:]])
    return buffer.getvalue().encode()
