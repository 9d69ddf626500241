"""``pyro-mvae compare PATH...``: one table from any set of evaluated runs.

A path is a run directory or a sweep directory (every run under it). Runs are grouped into rows
by what differs between them: the overrides Hydra recorded for each job of a sweep
(``.hydra/overrides.yaml``), or else the run configurations (a component's setting counts only
between runs of the same component), the seed aside. A row's seeds are aggregated: its IWAE
log-likelihood is the mean over seeds with the standard error over images (of the per-image
mean over seeds) and over seeds; the paired per-image Δ is taken against the baseline row.
Every run of a table must have been scored on the same images with the same K: when their latest
evaluations differ, each run's kept evaluations (``evaluations/``, :mod:`pyro_mvae.evaluation.store`)
are searched for a scope they all have; or they are cut to their first N images with ``--limit N``
(a run scored on the whole test set next to one scored on its first N images).
"""

import csv
import io
import json
import math
import re
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from pyro_mvae.errors import RunError
from pyro_mvae.evaluation import store
from pyro_mvae.training.checkpoints import holds_run

NOT_A_DIFFERENCE = ("seed", "run_dir", "resume", "device", "skip_invalid", "search_metric", "trainer.progress",
                    "trainer.threads", "trainer.logger", "trainer.eval_chunk_size", "trainer.eval_batch_size",
                    "trainer.eval_samples", "trainer.eval_limit",
                    "data.root", "data.download")
"""Settings that change neither the model nor its training (or are the seed, which is
aggregated, or what was scored, which must be the same for every run)."""

FORMATS = ("markdown", "csv", "latex")


@dataclass
class EvaluatedRun:
    """One run directory's configuration (flattened ``key -> value``), the overrides of its sweep
    job (or None), ``eval.json``, ``report.json`` (``{}`` if absent), its per-image scores (the
    columns of ``per_datapoint_<split>.csv``, ``(N,)`` each, nats), its per-image IWAE estimates
    ``(N,)`` (the column of K) and its median seconds per training epoch (None if unknown)."""

    path: Path
    config: dict
    overrides: list[str] | None
    evaluation: dict
    report: dict
    scores: dict
    per_image: np.ndarray
    epoch_seconds: float | None

    def first(self, n: int) -> "EvaluatedRun":
        """This run cut to its first ``n`` scored images: their IWAE estimates, mean ELBO and k̂
        share (from the per-image scores; active units and perplexities stay the whole evaluation's).

        Raises:
            RunError: a run scored on fewer than ``n`` images.
        """
        if n > self.evaluation["n"]:
            raise RunError(f"{self.path} was scored on {self.evaluation['n']} images, fewer than --limit {n}")
        khat = self.scores["khat"][:n]
        evaluation = self.evaluation | {"n": n, "elbo": float(self.scores["elbo"][:n].mean()),
                                        "khat_share_above_0.7": None if np.isnan(khat).all() else
                                        float(np.mean(khat > 0.7))}
        return replace(self, evaluation=evaluation, per_image=self.per_image[:n])

    @property
    def images(self) -> tuple:
        """What was scored, ``(data set, split, number of images, of how many in the split)``."""
        ev = self.evaluation
        return ev["data"], ev["split"], ev["n"], ev.get("n_split")


def run_dirs(paths) -> tuple[list[Path], list[Path]]:
    """The run directories of ``paths`` to compare: each one that holds a run, and every
    evaluated run under a sweep directory (one level down, sorted by name); and the runs of the
    sweeps that have no ``eval.json`` yet (still training, or failed), left out.

    Raises:
        RunError: a path that is neither.
    """
    found, pending = [], []
    for path in map(Path, paths):
        if holds_run(path):
            found.append(path)
            continue
        runs = sorted(p for p in path.glob("*") if p.is_dir() and holds_run(p))
        if not runs:
            raise RunError(f"{path} is neither a run directory nor a sweep directory holding runs")
        found += [run for run in runs if (run / "eval.json").is_file()]
        pending += [run for run in runs if not (run / "eval.json").is_file()]
    if not found:
        raise RunError(f"no run of {', '.join(map(str, paths))} has been evaluated yet")
    return found, pending


def load_run(path: Path, summary: Path | None = None) -> EvaluatedRun:
    """Read what :func:`compare_table` needs from one run directory: its latest evaluation, or
    the one ``summary`` holds (a file of ``evaluations/``).

    Raises:
        RunError: a run without ``eval.json`` (it names the command that makes one).
    """
    eval_path = summary or path / "eval.json"
    if not eval_path.is_file():
        raise RunError(f"{path} has no eval.json (its training has not finished, or a release that did not "
                       f"write one trained it): run `pyro-mvae evaluate {path}` first")
    evaluation = json.loads(eval_path.read_text())
    report = json.loads((path / "report.json").read_text()) if (path / "report.json").is_file() else {}
    with open(store.per_image_path(eval_path, evaluation)) as f:
        table = list(csv.DictReader(f))
    scores = {key: np.array([float(r[key]) for r in table]) for key in table[0] if key not in ("index", "label")}
    overrides = path / ".hydra" / "overrides.yaml"
    return EvaluatedRun(path, _flatten(_yaml(path / "config.yaml")), _yaml(overrides) if overrides.is_file() else None,
                        evaluation, report, scores, scores[f"iwae_{evaluation['K']}"], _epoch_seconds(path))


def load_aligned(paths: list[Path]) -> list[EvaluatedRun]:
    """The runs of ``paths``, each with its latest evaluation; when those scored different images
    or used another K, each with its kept evaluation of a scope every run has (the most images,
    then the largest K; :mod:`pyro_mvae.evaluation.store`), or else the latest ones (which
    :func:`rows` refuses to pair, naming what each scored)."""
    runs = [load_run(path) for path in paths]
    if len({store.scope(run.evaluation) for run in runs}) == 1:
        return runs
    kept = [store.kept_evaluations(path) for path in paths]
    common = set.intersection(*(set(scopes) for scopes in kept))
    if not common:
        return runs
    chosen = max(common, key=lambda scope: (scope[2], scope[3]))
    return [load_run(path, scopes[chosen]) for path, scopes in zip(paths, kept)]


def _yaml(path: Path):
    return OmegaConf.to_container(OmegaConf.load(path))


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        out |= _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def _epoch_seconds(path: Path) -> float | None:
    timings = path / "timings.jsonl"
    if not timings.is_file():
        return None
    seconds = [json.loads(line)["seconds"] for line in timings.read_text().splitlines() if line]
    return statistics.median(seconds) if seconds else None


def _ignored(key: str) -> bool:
    return key in NOT_A_DIFFERENCE or key.startswith("hydra")


def labels(runs: list[EvaluatedRun]) -> list[str]:
    """Each run's row label: the overrides in which the runs differ (when every run is a job of
    a sweep with the same keys overridden), or else the settings, seed aside."""
    overrides = [None if run.overrides is None else {o.split("=", 1)[0].lstrip("+~"): o for o in run.overrides}
                 for run in runs]
    if None not in overrides and len({tuple(sorted(item)) for item in overrides}) == 1:
        items = overrides
    else:
        items = [{k: f"{k.removesuffix('.name')}={v}" for k, v in run.config.items()} for run in runs]
    keys = sorted({k for item in items for k in item if not _ignored(k)})
    differ = [k for k in keys if _differs(k, items, runs)]
    return [" ".join(item[k] for k in differ if k in item) or "(all runs alike)" for item in items]


def _differs(key: str, items: list[dict], runs: list[EvaluatedRun]) -> bool:
    """A component's setting differs only between runs of the same component."""
    if "." not in key or key.endswith(".name"):  # a component, or a top-level setting
        return len({item.get(key) for item in items}) > 1
    group = key.split(".", 1)[0]
    by_component = {}
    for item, run in zip(items, runs):
        by_component.setdefault(run.config.get(f"{group}.name"), set()).add(item.get(key))
    return any(len(values) > 1 for values in by_component.values())


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the per-image difference a − b (``(N,)`` each), in nats."""
    diff = np.asarray(a) - np.asarray(b)
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))


def _mean_se(values) -> tuple[float, float | None]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else None)


def rows(runs: list[EvaluatedRun], baseline: str | None = None) -> tuple[list[dict], str]:
    """The table's rows (one per label, seeds aggregated; numbers, not text) and a sentence
    saying which images every run was scored on.

    Raises:
        RunError: runs scored on different images, or a ``baseline`` (space-separated
            ``key=value``) that matches no row or several.
    """
    scored = {run.images[:3] + (run.evaluation["K"],): run.path for run in runs}  # one run of each kind
    if len(scored) > 1:
        raise RunError("the runs were scored on different images or with different K, so they cannot be "
                       "paired: " + "; ".join(f"{n} {data} {split} images with K = {k} ({path}, ...)"
                                             for (data, split, n, k), path in scored.items())
                       + ". Evaluate them alike: pyro-mvae evaluate RUN -K 5000 [--limit N]")
    grouped = {}
    for run, label in zip(runs, labels(runs)):
        grouped.setdefault(label, []).append(run)
    out = [_row(label, members) for label, members in grouped.items()]
    base = _baseline_row(out, baseline)
    for row in out:
        row["delta"] = None if row is base else paired_difference(row["per_image"], base["per_image"])
    data, split, n, n_split = runs[0].images
    of = f" of {n_split}" if n_split else ""
    scope = f"all {n} {split} images" if n == n_split else f"the first {n}{of} {split} images"
    return out, f"{data}, {scope}, K = {runs[0].evaluation['K']}; paired Δ against {base['label']}"


def _row(label: str, members: list[EvaluatedRun]) -> dict:
    per_image = np.mean([run.per_image for run in members], axis=0)  # (N,): the mean over seeds
    def mean(key, source="evaluation"):
        values = [getattr(run, source).get(key) for run in members]
        return None if any(v is None for v in values) else float(np.mean(values))
    seconds = [run.epoch_seconds for run in members]
    return {"label": label, "seeds": ",".join(str(run.config.get("seed", "?")) for run in members),
            "per_image": per_image,
            "iwae": float(per_image.mean()), "iwae_se_images": _mean_se(per_image)[1],
            "iwae_se_seeds": _mean_se([run.per_image.mean() for run in members])[1],
            "elbo": mean("elbo"), "active_units": mean("active_units"),
            "latent_dim": members[0].evaluation["latent_dim"],
            "khat_share": mean("khat_share_above_0.7"), "prior_perplexity": mean("prior_weights_perplexity"),
            "usage_perplexity": mean("usage_perplexity"), "cluster_accuracy": mean("cluster_accuracy"),
            "nmi": mean("nmi"), "ari": mean("ari"), "classification_error": mean("classification_error"),
            "tags": sorted({tag for run in members for tag in run.report.get("tags") or []}),
            "best_epoch": mean("best_epoch", "report"),  # counted from 0, as train and report.json count
            "epochs": mean("epochs_run", "report"),
            "epoch_seconds": None if None in seconds else float(np.mean(seconds))}


def _baseline_row(out: list[dict], baseline: str | None) -> dict:
    if baseline is None:
        return out[0]
    wanted = set(baseline.split())
    matches = [row for row in out if wanted <= set(row["label"].split())]
    if len(matches) != 1:
        raise RunError(f"--baseline {baseline!r} matches {len(matches)} rows; give overrides that pick one of: "
                       + "; ".join(row["label"] for row in out))
    return matches[0]


COLUMNS = ("row", "seeds", "IWAE log p(x) (nats)", "s.e. over seeds", "paired Δ (nats)", "ELBO (nats)",
           "active units", "k̂ > 0.7", "prior perplexity", "best epoch from 0 (of N run)", "s per epoch")
"""The columns of the markdown and LaTeX tables. The best epoch is numbered as ``pyro-mvae train``
numbers it (its final line, ``report.json``, ``metrics.jsonl``): from 0, so that the last of 6
epochs run is ``5 (of 6)``."""

CLUSTER_COLUMNS = ("usage perplexity", "cluster accuracy", "NMI", "ARI")
"""Added when a row's runs chose one component per image on labelled data (``eval.json``'s
clustering scores, :func:`~pyro_mvae.evaluation.diagnostics.clustering_scores`)."""


ERROR_COLUMN = "test error"
"""Added when a row's runs were semi-supervised (``data.labelled``): ``eval.json``'s
``classification_error``, the share of images whose argmax q(c | x) is not their label."""


TAGS_COLUMN = "tags"
"""Added when a row's runs have ``tags`` (their ``report.json``; the union over the row's seeds)."""


def _columns(table: list[dict]) -> tuple[str, ...]:
    clusters = CLUSTER_COLUMNS if any(row["cluster_accuracy"] is not None for row in table) else ()
    error = (ERROR_COLUMN,) if any(row["classification_error"] is not None for row in table) else ()
    tags = (TAGS_COLUMN,) if any(row["tags"] for row in table) else ()
    return COLUMNS + clusters + error + tags


def _cells(row: dict) -> dict[str, str]:
    """Column name -> the row's cell."""
    def num(value, spec):
        return "—" if value is None else format(value, spec)
    delta = "—" if row["delta"] is None else "{:+.2f} ± {:.2f}".format(*row["delta"])
    error = row["classification_error"]
    cells = [row["label"], row["seeds"], f"{row['iwae']:.2f} ± {row['iwae_se_images']:.2f}",
             num(row["iwae_se_seeds"], ".2f"), delta, num(row["elbo"], ".2f"),
             f"{num(row['active_units'], '.3g')}/{row['latent_dim']}",
             "—" if row["khat_share"] is None else f"{100 * row['khat_share']:.1f}%",
             num(row["prior_perplexity"], ".2f"), f"{num(row['best_epoch'], '.3g')} (of {num(row['epochs'], '.3g')})",
             num(row["epoch_seconds"], ".1f"),
             num(row["usage_perplexity"], ".2f"), num(row["cluster_accuracy"], ".3f"), num(row["nmi"], ".3f"),
             num(row["ari"], ".3f"), "—" if error is None else f"{100 * error:.2f}%", ", ".join(row["tags"]) or "—"]
    return dict(zip(COLUMNS + CLUSTER_COLUMNS + (ERROR_COLUMN, TAGS_COLUMN), cells))


def compare_table(paths, baseline: str | None = None, fmt: str = "markdown", limit: int | None = None) -> str:
    """The table of the runs under ``paths`` (run or sweep directories) in ``fmt``
    (``markdown``, ``csv`` or ``latex``); see :func:`rows`. ``csv`` gives the numbers unrounded.
    ``limit``: compare every run on its first ``limit`` scored images (:meth:`EvaluatedRun.first`).

    Raises:
        RunError: see :func:`run_dirs`, :func:`load_run` and :func:`rows`.
        ValueError: an unknown format.

    The runs of a sweep without ``eval.json`` yet are left out, and the table says which.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    found, pending = run_dirs(paths)
    runs = load_aligned(found)
    table, scope = rows(runs if limit is None else [run.first(limit) for run in runs], baseline)
    if fmt == "csv":
        return _csv(table)
    if pending:
        scope += f" (not evaluated yet, left out: {', '.join(p.name for p in pending)})"
    columns = _columns(table)
    cells = [[_cells(row)[column] for column in columns] for row in table]
    if fmt == "latex":
        body = "\n".join(" & ".join(_latex(c) for c in line) + r" \\" for line in cells)
        header = " & ".join(_latex(c) for c in columns) + r" \\"
        return (f"% {scope}\n\\begin{{tabular}}{{l{'r' * (len(columns) - 1)}}}\n\\toprule\n{header}\n"
                f"\\midrule\n{body}\n\\bottomrule\n\\end{{tabular}}")
    lines = [f"Scored on {scope}.", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(line) + " |" for line in cells])


LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "{": r"\{", "}": r"\}",
         "$": r"\$", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$",
         "k̂": r"$\hat{k}$", "—": "--", "−": "-", ">": "$>$", "<": "$<$"}
"""The LaTeX that each character of a cell becomes; ``k̂`` is two characters, k and a combining
circumflex.

:meta hide-value:
"""


def _latex(text: str) -> str:
    """A cell in LaTeX: special characters escaped, symbols and comparisons in math mode, and the
    sign of a negative number a math minus (``$-$``, not a hyphen)."""
    text = re.sub("|".join(map(re.escape, LATEX)), lambda m: LATEX[m.group()], text)  # in one pass
    return re.sub(r"(?<![\w.])-(?=\.?\d)", "$-$", text)  # a minus sign: not a hyphen within a word


def _csv(table: list[dict]) -> str:
    buffer = io.StringIO()
    fields = ["label", "seeds", "iwae", "iwae_se_images", "iwae_se_seeds", "delta", "delta_se", "elbo",
              "active_units", "latent_dim", "khat_share", "prior_perplexity", "best_epoch", "epochs", "epoch_seconds",
              "usage_perplexity", "cluster_accuracy", "nmi", "ari", "classification_error", "tags"]
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in table:
        delta, delta_se = row["delta"] or (None, None)
        writer.writerow(row | {"delta": delta, "delta_se": delta_se, "tags": " ".join(row["tags"])})
    return buffer.getvalue().rstrip("\n")
