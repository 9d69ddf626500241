"""Diagnostics of a trained VAE: PSIS k̂, active units, KL per dimension, component usage, clustering.

Everything here is computed on a split of images ``x (N, *event)`` by :mod:`pyro_mvae.evaluation.evaluate`.
"""

import importlib.util
import math
import warnings

import numpy as np
import torch

from pyro_mvae.models.guides import MixtureGuide
from pyro_mvae.models.modes import evaluates

KHAT_THRESHOLD = 0.7
"""Pareto k̂ above which importance-sampling estimates are unreliable (Vehtari et al. 2024)."""

MIN_PSIS_SAMPLES = 25
"""Fewest weights per row for k̂ (PSIS fits the largest min(K/5, 3√K) weights, and needs ≥ 5)."""

ACTIVE_UNIT_THRESHOLD = 0.01
"""A latent dimension is active when Cov_x(E_q[z_j | x]) > 0.01 (Burda et al. 2016, §5.2)."""


def pareto_khat(log_weights: np.ndarray, backend: str = "auto") -> np.ndarray:
    """Pareto k̂ of each row's importance weights (PSIS; Vehtari et al. 2024), via ArviZ.

    log_weights ``(N, K)`` (natural log, unnormalised) -> ``(N,)``. Large k̂ (> 0.7) means the
    weights' tail is too heavy for the estimate to be trusted; k̂ is estimated from the largest
    ~3√K weights, so K should be ≥ 100. A row whose weights are all equal (proposal =
    posterior) has no tail: its k̂ is −inf; a row with a non-finite weight, or whose largest
    weights tie so that no tail can be fitted, gets +inf (not to be trusted).

    ``backend``: ``"arviz_stats"`` (ArviZ 1.x, Python ≥ 3.12; its ``psislw`` takes
    log-likelihoods, i.e. the negated log-weights, as in PSIS-LOO), ``"arviz"`` (ArviZ 0.x
    ``az.psislw``, which takes the log-weights themselves), or ``"auto"``: the first installed.

    Raises:
        ValueError: for an unknown backend, or fewer than :data:`MIN_PSIS_SAMPLES` weights per row.
        ImportError: when the requested backend is not installed.
    """
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.shape[-1] < MIN_PSIS_SAMPLES:
        raise ValueError(f"Pareto k̂ needs at least {MIN_PSIS_SAMPLES} importance weights per row "
                         f"(its tail fit uses the largest ~3√K), got K = {log_weights.shape[-1]}")
    if backend not in PSIS_BACKENDS:
        raise ValueError(f"unknown PSIS backend {backend!r}; choose one of {sorted(PSIS_BACKENDS)}")
    if backend == "auto":
        backend = "arviz_stats" if importlib.util.find_spec("arviz_stats") else "arviz"
    finite = np.isfinite(log_weights).all(-1)  # (N,)
    flat = finite & (np.ptp(np.where(finite[:, None], log_weights, 0.0), axis=-1) == 0)  # no tail to fit
    khat = np.where(flat, -np.inf, np.inf)  # non-finite weights: no trust
    tailed = finite & ~flat
    if tailed.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ArviZ warns on every k̂ > 0.7; the report says it once
            khat[tailed] = _khat_rows(PSIS_BACKENDS[backend], log_weights[tailed])
    return khat


def _khat_rows(fit, log_weights: np.ndarray) -> np.ndarray:
    """k̂ of each row; rows whose largest weights are all equal (ArviZ: "All tail values are the
    same", seen with a degenerate model's float32 weights of magnitude 1e9) get k̂ = inf."""
    try:
        return fit(log_weights)
    except ValueError:
        out = np.full(log_weights.shape[0], np.inf)
        for i, row in enumerate(log_weights):
            try:
                out[i] = fit(row[None])[0]
            except ValueError:
                pass
        return out


def _khat_arviz_stats(log_weights: np.ndarray) -> np.ndarray:
    from arviz_stats.base import array_stats

    return array_stats.psislw(-log_weights, axis=-1)[1]  # psislw negates its input


def _khat_arviz(log_weights: np.ndarray) -> np.ndarray:
    import arviz as az

    return az.psislw(log_weights)[1]


PSIS_BACKENDS = {"auto": None, "arviz_stats": _khat_arviz_stats, "arviz": _khat_arviz}


def active_units(posterior_means: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Number of active latent dimensions and each dimension's Cov_x(E_q[z_j | x]).

    posterior_means ``(N, d)`` -> (count, variances ``(d,)``).
    """
    variances = posterior_means.var(dim=0, unbiased=True)  # (d,)
    return int((variances > ACTIVE_UNIT_THRESHOLD).sum()), variances


@evaluates
@torch.no_grad()
def kl_per_dimension(vae, x: torch.Tensor, num_samples: int = 64) -> torch.Tensor | None:
    """E_x KL(q(z_j | x) ‖ p(z_j)) for each dimension j, ``(d,)`` in nats, by Monte Carlo.

    Uses each dimension's marginal densities (mixtures where the prior or guide is one), with
    ``num_samples`` draws per image. For a factorised guide and prior these sum to the full KL.
    ``None`` when the guide or the prior is a flow (no per-dimension marginal density).
    """
    q, p = vae.encoder.posterior_per_dim(x), vae.prior.marginal_per_dim()  # batch (N, d), (d,)
    if q is None or p is None:
        return None
    z = q.sample((num_samples,))  # (S, N, d)
    log_ratio = q.log_prob(z) - p.log_prob(z)  # (S, N, d)
    return log_ratio.mean(dim=(0, 1))


def perplexity(probs: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of distributions along the last axis: ``(..., C)`` -> ``(...)``.

    1 when one component takes all the mass, C when all are used equally.
    """
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(-1)
    return entropy.exp()


@evaluates
@torch.no_grad()
def component_probabilities(vae, x: torch.Tensor) -> torch.Tensor | None:
    """Per-image probabilities of each mixture component, ``(N, C)`` or ``(N, d, N_c)``.

    q(c | x) when the guide is a mixture over the components (whether it samples c or sums it
    out); otherwise the prior's responsibilities p(c | z) at the guide's posterior mean. ``None``
    when the prior is not a mixture.
    """
    if vae.prior.layout is None:
        return None
    if isinstance(vae.encoder, MixtureGuide):
        return vae.encoder.component_probs(x)
    return vae.prior.responsibilities(vae.encoder.mean(x))


def _checked(clusters, labels) -> tuple[np.ndarray, np.ndarray]:
    clusters, labels = np.asarray(clusters), np.asarray(labels)
    if clusters.shape != labels.shape or clusters.ndim != 1 or clusters.size == 0:
        raise ValueError(f"clusters {clusters.shape} and labels {labels.shape} must be equal, one-dimensional, "
                         "non-empty")
    return clusters, labels


def cluster_matching(clusters: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The contingency table of labels × clusters, its columns ordered by the best one-to-one
    matching of clusters to labels (the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``,
    maximising the images matched): ``(table (L, K), label values (L,), cluster values (K,), images
    matched)``. The matched clusters come first, in the order of their labels (with K ≥ L, column i
    is the cluster matched to label i), the unmatched ones last. clusters, labels ``(N,)`` integers.

    Raises:
        ValueError: for arrays of different or empty shapes.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    clusters, labels = _checked(clusters, labels)
    table = contingency_matrix(labels, clusters)  # (L, K): images of label l in cluster k
    label_values, cluster_values = np.unique(labels), np.unique(clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    order = [*cols[np.argsort(rows)], *(k for k in range(table.shape[1]) if k not in set(cols))]
    return table[:, order], label_values, cluster_values[order], int(table[rows, cols].sum())


def clustering_scores(clusters: np.ndarray, labels: np.ndarray) -> dict:
    """How well clusters (e.g. argmax q(c | x)) recover labels, for images with clusters, labels ``(N,)``:

    - ``cluster_accuracy``: unsupervised accuracy, the share of images whose cluster the best
      one-to-one matching maps to their label (:func:`cluster_matching`; Xie et al. 2016, DEC, the
      measure VaDE's 94.46% on MNIST uses); a cluster left without a label (more clusters than
      labels) counts as wrong;
    - ``cluster_purity``: the share of images whose cluster's most frequent label is theirs (each
      cluster to its majority label, many to one; GMVAE's measure, Dilokthanakul et al. 2016);
    - ``nmi``: normalised mutual information (arithmetic normalisation, scikit-learn's default);
    - ``ari``: adjusted Rand index (Hubert & Arabie 1985), 0 for chance and 1 for the labels;
    - ``clusters_used``: how many different clusters the images fall in.

    Raises:
        ValueError: for arrays of different or empty shapes.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    clusters, labels = _checked(clusters, labels)
    table, _, _, matched = cluster_matching(clusters, labels)
    return {"cluster_accuracy": matched / labels.size, "cluster_purity": table.max(0).sum() / labels.size,
            "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters)), "clusters_used": int(np.unique(clusters).size)}


def per_dimension_nmi(choices: np.ndarray, labels: np.ndarray) -> dict:
    """How much each latent dimension's own component choice (the per-dimension layout, seed 001
    §5) says about the labels, for choices ``(N, d)`` (argmax q(c_j | x)) and labels ``(N,)``:
    ``nmi_per_dim`` (d values, :func:`clustering_scores`' NMI of each column) and ``nmi_best_dim``
    (the largest). A dimension chooses among N components, not among the classes, so the one-to-one
    accuracy has no meaning here and is not given.

    Raises:
        ValueError: for shapes that do not match.
    """
    from sklearn.metrics import normalized_mutual_info_score

    choices = np.asarray(choices)
    if choices.ndim != 2:
        raise ValueError(f"choices must be (N, d), got {choices.shape}")
    scores = [float(normalized_mutual_info_score(*_checked(labels, column))) for column in choices.T]
    return {"nmi_per_dim": scores, "nmi_best_dim": max(scores)}


def bits_per_dim(log_likelihood_nats: float, data_dim: int) -> float:
    """−log p(x) / (D ln 2): nats per image -> bits per dimension."""
    return -log_likelihood_nats / (data_dim * math.log(2))
