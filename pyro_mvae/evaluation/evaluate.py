"""``pyro-mvae evaluate RUN_DIR``: the numbers and figures a results section needs, from a run directory.

Writes into RUN_DIR: ``eval.json`` (summary), ``per_datapoint_<split>.csv`` (index, label, IWAE
log p(x) for each K of the sweep, AIS log p(x) when asked, ELBO, Pareto k̂ of every image, for
paired comparisons between models), each also kept under ``evaluations/``
(:mod:`pyro_mvae.evaluation.store`), and ``figures/*.png``. Every draw is seeded.
"""

import math
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from pyro_mvae.data.splits import binarize_fixed, dequantize_fixed, dequantized_bits_per_dim
from pyro_mvae.evaluation import diagnostics, figures, store
from pyro_mvae.evaluation.annealed import ais_section, bdmc_section
from pyro_mvae.infer.ais import AISSettings
from pyro_mvae.infer.iwae import (
    chunk_size_for,
    default_chunk_size,
    density_note,
    joint_for,
    log_weight_matrix,
    mean_and_stderr,
)
from pyro_mvae.models.modes import evaluates
from pyro_mvae.runs import load_run, resolve_device
from pyro_mvae.tracking import mlflow_runs as tracking

K_SWEEP = (1, 10, 100, 1000, 5000)
"""The numbers of particles k of the K sweep (those below K = ``num_samples``, then K itself)."""


def evaluate_run(run_dir, num_samples: int = 5000, split: str = "test", limit=None,
                 chunk_size: int | None = None, batch_size: int = 100, device: str = "auto",
                 progress: bool = True, make_figures: bool = True, memory_mib: float | None = None,
                 ais: AISSettings | None = None, bdmc: int = 0, bdmc_steps: tuple[int, ...] = (10, 100, 1000),
                 encoder=None, decoder=None, compile="auto", seed: int | None = None) -> dict:
    """Evaluate the best checkpoint of ``run_dir`` on one split; returns what ``eval.json`` holds
    (also kept in ``run_dir/evaluations/``, :mod:`pyro_mvae.evaluation.store`).

    ``seed``: seeds every draw of the evaluation (``pyro.set_rng_seed``), so the same call on the
    same machine gives the same numbers to the last digit; None: the run's own seed (its
    ``config.yaml``), with which the final evaluation of ``pyro-mvae train`` was drawn too. It is
    recorded in the summary (``seed``).

    ``ais``: also estimate log p(x) of the same images by annealed importance sampling with
    these settings (``eval.json`` key ``ais``, an ``ais`` column in the per-datapoint CSV).
    ``bdmc``: also run the BDMC sandwich on that many images simulated from the model, for each
    T in ``bdmc_steps`` (key ``bdmc``), with the chains, leapfrog steps and initial distribution
    of ``ais`` (or its defaults).

    ``chunk_size``: particles drawn at once (None: :func:`pyro_mvae.infer.iwae.default_chunk_size`).
    ``memory_mib``: a memory budget for the particle chunks; when given, the chunk size is the
    largest that fits it (:func:`pyro_mvae.infer.iwae.chunk_size_for`) and ``chunk_size`` is ignored.

    The K sweep uses nested subsets of the same K = ``num_samples`` draws per image (the first
    k weights for each k ≤ K in :data:`K_SWEEP`), so its points are correlated but consistent.

    ``compile``: ``auto``, ``true`` or ``false``, as in
    :func:`~pyro_mvae.infer.iwae.iwae_log_likelihood`.

    ``encoder``, ``decoder``: the user's own modules, for a run trained on them (``net: own``;
    :func:`~pyro_mvae.runs.load_run`).

    Raises:
        pyro_mvae.errors.RunError: missing or corrupted checkpoint, other major version.
        ValueError: unknown split, or K, chunk or batch size below 1.
        pyro_mvae.errors.ConfigError: an unknown ``compile``, or ``true`` without a C++ compiler.
    """
    run_dir = Path(run_dir)
    for name, value in (("num_samples", num_samples), ("chunk_size", chunk_size), ("batch_size", batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    device = resolve_device(device)
    vae, config, ckpt, data = load_run(run_dir, device, encoder, decoder)
    if split not in data.splits():
        raise ValueError(f"unknown split '{split}'; choose one of {', '.join(data.splits())}")
    part = data.splits()[split]
    x, labels = part.x[:limit], part.y[:limit]  # (N, *event), (N,)
    if part.dynamic:  # training images keep grey levels: score one fixed binarisation of them
        x = binarize_fixed(x)
    elif part.dequantize_levels:  # likewise one fixed dequantisation
        x = dequantize_fixed(x, part.dequantize_levels)
    vae.check_data(x)
    if memory_mib is not None:
        chunk_size = chunk_size_for(memory_mib, batch_size, data.data_dim)
    elif chunk_size is None:
        chunk_size = default_chunk_size(batch_size, device)
    seed = config["seed"] if seed is None else seed
    pyro.set_rng_seed(seed)
    tic = time.perf_counter()
    scores, report = score_images(vae, x, labels, num_samples, chunk_size, batch_size, progress, compile,
                                  classes=data.labelled is not None)
    iwae_seconds = (time.perf_counter() - tic) / x.shape[0]
    if ais is not None:
        columns, report["ais"] = ais_section(vae, x, ais, scores[f"iwae_{num_samples}"], iwae_seconds, progress)
        scores |= columns
    if bdmc:
        report["bdmc"] = bdmc_section(vae, bdmc, bdmc_steps, ais or AISSettings(), progress)
    report.update(run_dir=str(run_dir), split=split, n_split=len(part), epoch=ckpt["epoch"], tau=ckpt["tau"],
                  seed=seed, chunk_size=chunk_size, data=config["data"]["name"], prior=config["prior"]["name"],
                  guide=config["guide"]["name"])
    if make_figures:
        report["figures"] = _figures(vae, run_dir, x, labels, data.event_shape, report, scores["khat"],
                                     scores.get("cluster"))
    record_evaluation(run_dir, labels, scores, report, data)
    tracking.log_evaluation(run_dir, report)
    return report


@evaluates
def score_images(vae, x, labels, num_samples: int, chunk_size: int | None = None, batch_size: int = 100,
                 progress: bool = False, compile="auto", classes: bool = False) -> tuple[dict, dict]:
    """Score images x ``(N, *event)`` (labels ``(N,)``) with ``num_samples`` importance samples each:
    the per-image scores (``iwae_<k>`` for the K sweep, ``elbo``, ``khat``: ``(N,)`` arrays, nats)
    and the summary that ``eval.json`` holds (means ± s.e., k̂ share, active units, perplexities);
    ``chunk_size`` and ``compile`` as in :func:`~pyro_mvae.infer.iwae.iwae_log_likelihood`.
    ``classes``: the components are the classes (a semi-supervised run, ``data.labelled``), so the
    summary also gives ``classification_error``, the share of images whose argmax q(c | x) is not
    their label."""
    if chunk_size is None:
        chunk_size = default_chunk_size(batch_size, x.device)
    log_joint = joint_for(vae, x, num_samples, compile)
    scores = _score(vae, x, num_samples, chunk_size, batch_size, progress, log_joint)
    report = _summary(vae, x, labels, scores, num_samples, math.prod(x.shape[1:]))  # D values per image
    if classes and "cluster" in scores:
        report["classification_error"] = float(np.mean(scores["cluster"] != labels.cpu().numpy()))
    report["density"] = density_note(vae)
    report["compiled"] = log_joint is not None and log_joint.compiled is not None  # torch.compile ran it
    return scores, report


@evaluates
def evaluate_final(vae, data, test, trainer, best_epoch: int, config: dict) -> dict:
    """The final evaluation of a training run (``fit(..., evaluate=evaluate_final)``, as
    ``pyro-mvae train`` runs it): score the test images ``test`` (a
    :class:`~pyro_mvae.data.splits.Split`) with ``trainer.eval_samples`` particles, write
    ``eval.json`` and ``per_datapoint_test.csv`` into ``config["run_dir"]`` as
    ``pyro-mvae evaluate`` would (seeded with the run's seed, as its default), and return the
    summary with the mean test KL (nats) added."""
    chunk_size = trainer.eval_chunk_size
    if chunk_size is None:
        chunk_size = default_chunk_size(trainer.eval_batch_size, test.x.device)
    pyro.set_rng_seed(config["seed"])
    scores, summary = score_images(vae, test.x, test.y, trainer.eval_samples, chunk_size,
                                   trainer.eval_batch_size, trainer.progress, trainer.compile,
                                   classes=data.labelled is not None)
    summary.update(run_dir=config["run_dir"], split="test", n_split=len(data.test), epoch=best_epoch,
                   tau=vae.tau, seed=config["seed"], chunk_size=chunk_size, data=config["data"]["name"],
                   prior=config["prior"]["name"], guide=config["guide"]["name"])
    record_evaluation(Path(config["run_dir"]), test.y, scores, summary, data)
    with torch.no_grad():
        kl = torch.cat([vae.elbo_terms(xb)[1] for xb in test.batches(trainer.eval_batch_size)])  # (N,)
    return summary | {"kl": kl.mean().item()}


def record_evaluation(run_dir: Path, labels, scores: dict, report: dict, data) -> None:
    """Keep the evaluation and make it the latest (:func:`pyro_mvae.evaluation.store.write_evaluation`),
    with the bits per dimension of the grey levels themselves for dequantised data."""
    if data.levels:
        report["iwae_bits_per_dim_discrete"] = dequantized_bits_per_dim(report["iwae_ll"], data.data_dim, data.levels)
        report["units"] = (f"nats per image of the density on [0, 1]^D of dequantised {data.levels}-level "
                           "images; bits per dimension of that density, and (…_discrete) of the "
                           f"{data.levels}-level images themselves (an upper bound)")
    store.write_evaluation(run_dir, labels, scores, report)


@torch.no_grad()
def _score(vae, x, num_samples, chunk_size, batch_size, progress, log_joint) -> dict:
    """Per-image IWAE estimates for the K sweep, ELBO and k̂ (all ``(N,)`` numpy arrays)."""
    sweep = [k for k in K_SWEEP if k < num_samples] + [num_samples]
    out = {f"iwae_{k}": [] for k in sweep} | {"elbo": [], "khat": []}
    for start in tqdm(range(0, x.shape[0], batch_size), desc=f"evaluate K={num_samples}",
                      disable=not progress, leave=False):
        xb = x[start:start + batch_size]
        log_w = log_weight_matrix(vae, xb, num_samples, chunk_size, log_joint)  # (B, K)
        for k in sweep:
            out[f"iwae_{k}"].append((torch.logsumexp(log_w[:, :k], -1) - math.log(k)).cpu())
        out["khat"].append(torch.as_tensor(_khat(log_w.cpu().numpy())))  # device: host-side report
        log_lik, kl = vae.elbo_terms(xb)
        out["elbo"].append((log_lik - kl).cpu())
    return {key: torch.cat(values).double().numpy() for key, values in out.items()}


def _summary(vae, x, labels, scores, num_samples, data_dim) -> dict:
    ll = torch.as_tensor(scores[f"iwae_{num_samples}"])  # device: host-side numpy scores
    ll_mean, ll_se = mean_and_stderr(ll)
    elbo_mean, elbo_se = mean_and_stderr(torch.as_tensor(scores["elbo"]))  # device: host-side
    khat = scores["khat"]
    sweep = {k.split("_")[1]: dict(zip(("mean", "se"), mean_and_stderr(torch.as_tensor(v))))  # device: host-side
             for k, v in scores.items() if k.startswith("iwae_")}
    report = {
        "n": int(x.shape[0]), "K": num_samples, "units": "nats per image; bits per dimension",
        "iwae_ll": ll_mean, "iwae_ll_se": ll_se,
        "iwae_bits_per_dim": diagnostics.bits_per_dim(ll_mean, data_dim),
        "iwae_bits_per_dim_se": ll_se / (data_dim * math.log(2)),
        "elbo": elbo_mean, "elbo_se": elbo_se, "gap": ll_mean - elbo_mean,
        "k_sweep": sweep,
        "khat_share_above_0.7": float(np.mean(khat > diagnostics.KHAT_THRESHOLD)),
        "khat_max": float(np.max(khat)),
    }
    if num_samples < diagnostics.MIN_PSIS_SAMPLES:
        report["khat_share_above_0.7"] = report["khat_max"] = None
    report["warnings"] = _warnings(report)
    health, clusters = _posterior_health(vae, x, labels)
    if clusters is not None:
        scores["cluster"] = clusters  # (N,): argmax q(c | x), a column of the per-image file
    report.update(health)
    return report


def _khat(log_w: np.ndarray) -> np.ndarray:
    """k̂ per row of log-weights ``(B, K)``; NaN when K is too small for a tail fit."""
    if log_w.shape[-1] < diagnostics.MIN_PSIS_SAMPLES:
        return np.full(log_w.shape[0], np.nan)
    return diagnostics.pareto_khat(log_w)


def _warnings(report) -> list[str]:
    share = report["khat_share_above_0.7"]
    if share is None:
        return [f"K = {report['K']} < {diagnostics.MIN_PSIS_SAMPLES}: too few importance weights "
                "for a Pareto k̂, so the estimate's reliability is unchecked; use K >= 100"]
    if share <= 0.05:
        return []
    return [f"{100 * share:.1f}% of the images have Pareto k̂ > 0.7 (worst {report['khat_max']:.2f}): "
            "their IWAE estimates are unreliable; the guide's tails are too light for the posterior"]


@torch.no_grad()
def _posterior_health(vae, x, labels) -> tuple[dict, np.ndarray | None]:
    """Active units, KL per dimension, component usage and, with one component choice per image,
    its clusters ``(N,)`` and how they match the labels (when there are two labels or more)."""
    means = torch.cat([vae.encoder.mean(xb) for xb in x.split(500)])  # (N, d)
    count, variances = diagnostics.active_units(means)
    kl = [diagnostics.kl_per_dimension(vae, xb) for xb in x.split(500)]  # each (d,) or None
    health = {"active_units": count, "latent_dim": int(means.shape[1]),
              "active_unit_variances": variances.tolist(),
              "kl_per_dim": None if kl[0] is None else
              (sum(k * len(xb) for k, xb in zip(kl, x.split(500))) / x.shape[0]).tolist()}
    probs = diagnostics.component_probabilities(vae, x)  # (N, C) or (N, d, N_c), or None
    if probs is None:
        return health, None
    health["prior_weights_perplexity"] = diagnostics.perplexity(vae.prior.weights).mean().item()
    health["usage_perplexity"] = diagnostics.perplexity(probs.mean(0)).mean().item()
    choices, labels = probs.argmax(-1).cpu().numpy(), labels.cpu().numpy()  # (N,) or (N, d), and (N,)
    labelled = np.unique(labels).size > 1  # a data set with labels (an array file without 'y' has none)
    if choices.ndim == 2:  # a choice per dimension: no cluster per image, an NMI per dimension
        return health | (diagnostics.per_dimension_nmi(choices, labels) if labelled else {}), None
    if labelled:
        health |= diagnostics.clustering_scores(choices, labels)
    return health, choices


def _figures(vae, run_dir: Path, x, labels, event_shape, report, khat, clusters) -> dict:
    paths = model_figures(vae, run_dir, x, labels, event_shape)
    out = run_dir / "figures"
    ks = [int(k) for k in report["k_sweep"]]
    drawers = {"k_sweep": lambda p: figures.k_sweep(ks, [report["k_sweep"][str(k)]["mean"] for k in ks],
                                                    [report["k_sweep"][str(k)]["se"] for k in ks], report["elbo"], p,
                                                    report["n"]),
               "khat": lambda p: figures.khat_histogram(khat, diagnostics.KHAT_THRESHOLD, p)}
    if "cluster_accuracy" in report:
        drawers["clusters"] = lambda p: figures.confusion_matrix(clusters, labels.cpu().numpy(), p,
                                                                 as_classes="classification_error" in report)
    paths |= {name: out / f"{name}.png" for name, draw in drawers.items() if _drawn(name, draw, out / f"{name}.png")}
    return {name: str(p.relative_to(run_dir)) for name, p in paths.items()}


@evaluates
@torch.no_grad()
def model_figures(vae, run_dir: Path, x: torch.Tensor, labels: torch.Tensor, event_shape) -> dict:
    """The figures of a trained model in ``run_dir/figures/``: samples, reconstructions, latent
    map, latent marginals, interpolations and (when the run has metrics) training curves, from
    images x ``(N, *event)`` with labels ``(N,)``. Written at the end of ``pyro-mvae train`` and by
    ``evaluate``; returns ``{name: path}`` of those drawn. A figure that cannot be drawn is skipped
    with a one-line warning on stderr: figures never fail a finished run."""
    out = Path(run_dir) / "figures"
    out.mkdir(exist_ok=True)
    drawers = {"samples": lambda p: figures.samples(vae, event_shape, p),
               "reconstructions": lambda p: figures.reconstructions(vae, x, event_shape, p),
               "latent_map": lambda p: figures.latent_map(vae, x[:2000], labels[:2000], p),
               "latent_marginals": lambda p: figures.latent_marginals(vae, x, p),
               "interpolations": lambda p: figures.interpolations(vae, x, labels, event_shape, p)}
    if (Path(run_dir) / "metrics.jsonl").exists():
        title = f"training of prior={vae.prior.name}, guide={vae.encoder.name}"
        drawers["training_curves"] = lambda p: figures.training_curves(Path(run_dir) / "metrics.jsonl", p, title,
                                                                       vae.encoder.uses_temperature)
    return {name: out / f"{name}.png" for name, draw in drawers.items() if _drawn(name, draw, out / f"{name}.png")}


def _drawn(name: str, draw, path: Path) -> bool:
    """Draw one figure into ``path``; on any error, warn on stderr and say it was not drawn."""
    try:
        draw(path)
    except Exception as err:  # any error: a figure is never worth a failed run
        print(f"warning: figure {name} not drawn ({type(err).__name__}: {err}); the run's numbers are unaffected",
              file=sys.stderr)
        return False
    return True
