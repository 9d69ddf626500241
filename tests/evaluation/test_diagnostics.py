"""Diagnostics with known answers: PSIS k̂, active units, KL per dimension, clustering scores."""

import importlib.util
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from pyro_mvae.evaluation.compare import paired_difference
from pyro_mvae.evaluation.diagnostics import (
    active_units,
    bits_per_dim,
    clustering_scores,
    kl_per_dimension,
    pareto_khat,
    per_dimension_nmi,
    perplexity,
)
from pyro_mvae.models.registry import build_vae


def _log_weights(proposal_scale, n=8, k=4000, seed=0):
    """Importance weights N(0, 1) / N(0, s²) for draws from the proposal: ``(n, k)``."""
    z = np.random.default_rng(seed).normal(0.0, proposal_scale, size=(n, k))
    return norm.logpdf(z) - norm.logpdf(z, 0.0, proposal_scale)


INSTALLED_PSIS = ["auto"] + [name for name in ("arviz", "arviz_stats") if importlib.util.find_spec(name)]


@pytest.mark.parametrize("backend", INSTALLED_PSIS)
def test_khat_large_for_a_proposal_much_narrower_than_the_target(backend):
    # weights ∝ exp(z²(1/s² − 1)/2) for z ~ N(0, s²): a Pareto tail with k = 1 − s² (s < 1);
    # a backend fed the wrong sign fits the light left tail instead and returns k̂ < 0
    assert np.median(pareto_khat(_log_weights(0.3), backend)) > 0.7


@pytest.mark.parametrize("backend", INSTALLED_PSIS)
def test_khat_small_for_a_proposal_matching_the_target(backend):
    assert np.all(pareto_khat(_log_weights(1.0), backend) == -np.inf)  # every weight is 1: no tail
    assert np.all(pareto_khat(_log_weights(1.2), backend) < 0.5)  # wider proposal: bounded weights


@pytest.mark.parametrize("backend", INSTALLED_PSIS)
def test_khat_of_degenerate_weights_is_infinite_not_an_error(backend):
    """A diverged model's float32 log-weights of magnitude 1e9 tie in their tail (ArviZ refuses
    to fit it: "All tail values are the same"), or hold -inf: such rows get k̂ = inf, the others
    their own k̂."""
    good = _log_weights(0.3, n=2)
    tied = np.float32(-1.18e9) + np.float32(128.0) * (np.arange(4000) % 7 == 0)  # two float32 neighbours
    broken = good[0].copy()
    broken[5] = -np.inf
    khat = pareto_khat(np.stack([good[0], tied, broken, good[1]]), backend)
    assert np.isinf(khat[1]) and khat[1] > 0 and np.isinf(khat[2]) and khat[2] > 0
    np.testing.assert_allclose(khat[[0, 3]], pareto_khat(good, backend))


def test_khat_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="arviz_stats"):
        pareto_khat(_log_weights(1.2), "psis")


def test_active_units_known_by_construction():
    torch.manual_seed(0)
    vae = build_vae(64, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [], "latent_dim": 6})
    head = vae.encoder.head  # Linear(64, 12) on x itself: rows 0..5 are the posterior means
    with torch.no_grad():
        head.weight[:6] = 0.0
        head.weight[[1, 4], :] = torch.randn(2, 64)  # only dimensions 1 and 4 depend on x
    x = torch.bernoulli(torch.full((500, 64), 0.5))
    count, variances = active_units(vae.encoder.posterior(x).mean)
    assert count == 2
    assert variances[[0, 2, 3, 5]].max() < 1e-10 and variances[[1, 4]].min() > 1.0


def test_kl_per_dimension_matches_the_gaussian_closed_form():
    torch.manual_seed(1)
    vae = build_vae(16, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [8], "latent_dim": 3})
    x = torch.bernoulli(torch.full((200, 16), 0.3))
    q = vae.encoder.posterior(x).base_dist
    exact = (0.5 * (q.scale ** 2 + q.loc ** 2 - 1) - q.scale.log()).mean(0)  # KL(N(μ,σ²) ‖ N(0,1)), (d,)
    estimate = kl_per_dimension(vae, x, num_samples=2000)
    torch.testing.assert_close(estimate, exact.detach(), atol=0.01, rtol=0.02)


def test_clustering_scores_hand_computed():
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    labels = np.array([7, 7, 1, 3, 3, 5, 5, 1, 5, 7])
    scores = clustering_scores(clusters, labels)
    # one to one (Hungarian): 0 -> 7 (2 right), 1 -> 3 (2), 2 -> 5 (3), 3 -> 1 (0): 7 of 10;
    # many to one (purity): 0 -> 7, 1 -> 3, 2 -> 5, 3 -> 7 (1): 8 of 10
    assert scores["cluster_accuracy"] == pytest.approx(0.7) and scores["cluster_purity"] == pytest.approx(0.8)
    assert scores["clusters_used"] == 4
    renamed = clustering_scores(np.array([4, 4, 9, 9, 2]), np.array([0, 0, 1, 1, 2]))  # the labels, renamed
    assert renamed["cluster_accuracy"] == renamed["nmi"] == renamed["ari"] == 1.0
    too_many = clustering_scores(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]))  # 4 clusters, 2 labels
    assert too_many["cluster_accuracy"] == 0.5 and too_many["cluster_purity"] == 1.0
    with pytest.raises(ValueError):
        clustering_scores(clusters[:3], labels)


def _pair_counts(table: np.ndarray) -> tuple[float, float, float, float]:
    comb = lambda n: n * (n - 1) / 2  # noqa: E731
    return comb(table).sum(), comb(table.sum(1)).sum(), comb(table.sum(0)).sum(), comb(table.sum())


def test_clustering_scores_against_brute_force_and_the_formulas():
    """Accuracy: the best of all 5! one-to-one mappings; NMI = 2 I(U; V) / (H(U) + H(V)); ARI from
    the pair counts (Hubert & Arabie 1985), each computed here from the contingency table."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 300)
    clusters = np.where(rng.random(300) < 0.6, (labels + 2) % 5, rng.integers(0, 5, 300))  # noisy relabelling
    table = np.zeros((5, 5))
    np.add.at(table, (labels, clusters), 1)  # (L, K)
    best = max(sum(table[label, k] for label, k in enumerate(perm)) for perm in itertools.permutations(range(5)))
    p = table / 300
    pu, pv = p.sum(1), p.sum(0)
    mi = np.nansum(p * np.log(p / np.outer(pu, pv)))
    nmi = 2 * mi / (-(pu * np.log(pu)).sum() - (pv * np.log(pv)).sum())
    index, rows, cols, pairs = _pair_counts(table)
    expected = rows * cols / pairs
    ari = (index - expected) / ((rows + cols) / 2 - expected)
    scores = clustering_scores(clusters, labels)
    assert scores["cluster_accuracy"] == pytest.approx(best / 300)
    assert scores["nmi"] == pytest.approx(nmi) and scores["ari"] == pytest.approx(ari)
    assert 0.3 < scores["ari"] < 0.9  # neither chance nor the labels: the comparison has power


def test_per_dimension_nmi_scores_each_dimension_alone():
    """A dimension that copies the label's parity carries log 2 of the label's log 5 bits; a
    constant dimension none; a relabelled copy of the labels all; each NMI = 2 I / (H(U) + H(V))."""
    labels = np.arange(500) % 5
    choices = np.stack([labels % 2, np.zeros(500, int), (labels + 1) % 5], 1)  # (500, 3)
    scores = per_dimension_nmi(choices, labels)
    h_labels, h_parity = np.log(5), -(0.6 * np.log(0.6) + 0.4 * np.log(0.4))
    assert scores["nmi_per_dim"] == pytest.approx([2 * h_parity / (h_labels + h_parity), 0.0, 1.0])
    assert scores["nmi_best_dim"] == 1.0
    with pytest.raises(ValueError, match="must be"):
        per_dimension_nmi(labels, labels)


def test_perplexity_and_bits_per_dim():
    assert perplexity(torch.tensor([0.25] * 4)).item() == pytest.approx(4.0)
    assert perplexity(torch.tensor([1.0, 0.0, 0.0])).item() == pytest.approx(1.0)
    assert bits_per_dim(-784 * math.log(2), 784) == pytest.approx(1.0)


def test_paired_difference():
    a, b = np.array([1.0, 2.0, 3.0, 5.0]), np.array([0.5, 1.5, 2.0, 5.0])
    mean, se = paired_difference(a, b)
    assert mean == pytest.approx(0.5)
    assert se == pytest.approx(np.std([0.5, 0.5, 1.0, 0.0], ddof=1) / 2)


def test_khat_refuses_too_few_weights():
    with pytest.raises(ValueError, match="at least 25"):
        pareto_khat(_log_weights(0.5, k=20))
