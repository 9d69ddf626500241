"""IWAE log p(x) against the closed-form marginal likelihood of linear-Gaussian VAEs."""

import copy

import numpy as np
import pytest
import torch

from linear_gaussian import (
    exact_log_marginal,
    fit_guide,
    mixture_vae,
    orthogonal_standard_vae_with_exact_guide,
    sample_data,
    standard_vae,
)
from pyro_mvae.infer.iwae import iwae_log_likelihood, mean_and_stderr

BUILDERS = {
    "standard+gaussian": lambda: standard_vae(guide_hidden=(16,)),
    "mixture+gaussian": lambda: mixture_vae("gaussian"),
    "mixture+relaxed": lambda: mixture_vae("relaxed_mixture"),
}
_FITTED = {}


def fitted(name):
    """The model with its guide fitted by SVI on 200 of its own samples (cached per session)."""
    if name not in _FITTED:
        vae = BUILDERS[name]()
        fit_guide(vae, sample_data(vae, 200, seed=7))
        _FITTED[name] = vae
    return _FITTED[name]


def elbo_per_datapoint(vae, x, repeats=200):
    """Average of many one-sample ELBOs per datapoint: ``(N,)``, with its s.e."""
    draws = torch.stack([torch.sub(*vae.elbo_terms(x)) for _ in range(repeats)])  # (R, N)
    return draws.mean(0), draws.std(0) / repeats ** 0.5


@pytest.mark.parametrize("name", BUILDERS)
def test_iwae_matches_closed_form_within_monte_carlo_error(name, device):
    vae = fitted(name)
    x = sample_data(vae, 12)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)
    vae, x = copy.deepcopy(vae).to(device), x.to(device)
    runs = torch.stack([iwae_log_likelihood(vae, x, num_samples=2000, chunk_size=700) for _ in range(8)]).cpu()
    mean, se = runs.mean(0), runs.std(0) / 8 ** 0.5  # (N,)
    # IWAE is biased low by O(1/K); with an untrained (poor) guide allow that bias plus 4 s.e.
    assert torch.all(mean <= exact + 4 * se + 1e-3), (mean - exact)
    assert torch.all(exact - mean < 4 * se + 0.05), (mean - exact)


@pytest.mark.parametrize("name", BUILDERS)
def test_iwae_is_above_elbo_and_rises_with_k(name):
    vae = fitted(name)
    x = sample_data(vae, 12)
    elbo, _ = elbo_per_datapoint(vae, x)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)
    means = []
    for k in (1, 10, 100, 1000):
        est = torch.stack([iwae_log_likelihood(vae, x, num_samples=k, chunk_size=256) for _ in range(20)])
        means.append(est.mean().item())
    if vae.encoder.chooses_component:
        # K = 1 scores z with c summed out, a tighter bound than the ELBO over (c, z)
        assert elbo.mean().item() < means[0] + 0.1
    else:
        assert means[0] == pytest.approx(elbo.mean().item(), abs=0.1)  # K = 1 is the ELBO
    assert all(b > a - 0.02 for a, b in zip(means, means[1:])), means
    assert means[-1] >= elbo.mean().item() - 0.02
    assert elbo.mean().item() < exact.mean().item()  # the ELBO is a lower bound
    assert means[-1] <= exact.mean().item() + 0.02


def test_exact_posterior_gives_exact_likelihood_for_any_k_and_chunk():
    vae = orthogonal_standard_vae_with_exact_guide()
    x = sample_data(vae, 10)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)
    for k, chunk in ((1, 1), (1000, 1000), (1000, 333), (1000, 7)):
        torch.testing.assert_close(iwae_log_likelihood(vae, x, k, chunk), exact, rtol=0, atol=2e-4)


def test_chunk_size_agrees_within_error_for_mixture_guides():
    vae = fitted("mixture+relaxed")
    x = sample_data(vae, 10)
    big = torch.stack([iwae_log_likelihood(vae, x, 1000, chunk_size=1000) for _ in range(6)])
    small = torch.stack([iwae_log_likelihood(vae, x, 1000, chunk_size=13) for _ in range(6)])
    diff = big.mean(0) - small.mean(0)
    se = (big.var(0) / 6 + small.var(0) / 6).sqrt()
    assert torch.all(diff.abs() < 4 * se + 1e-3), diff


def test_straight_through_elbo_bounds_the_discrete_mixture_likelihood():
    """With straight-through c, the relaxed model's z-marginal is the discrete mixture itself
    (P(argmax of a Concrete sample = c) = π_c), so its ELBO lower-bounds that log p(x)."""
    vae = fitted("mixture+relaxed")  # straight-through by default
    assert vae.encoder.straight_through
    x = sample_data(vae, 12)
    elbo, se = elbo_per_datapoint(vae, x, repeats=400)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)
    assert torch.all(elbo < exact + 4 * se), elbo - exact


def test_mean_and_stderr():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mean, se = mean_and_stderr(values)
    assert mean == 2.5
    assert se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)


def test_bad_arguments_are_refused():
    vae = standard_vae()
    x = sample_data(vae, 2)
    with pytest.raises(ValueError, match="num_samples"):
        iwae_log_likelihood(vae, x, num_samples=0)
    with pytest.raises(ValueError, match="chunk_size"):
        iwae_log_likelihood(vae, x, num_samples=5, chunk_size=0)
