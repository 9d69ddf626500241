"""Mixture log-densities against brute-force sums over components with scipy."""

import itertools

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm

from pyro_mvae.models.guides import RelaxedMixtureGuide
from pyro_mvae.models.nets import MLPBody
from pyro_mvae.models.priors import FactorizedMixturePrior, MixturePrior, StandardPrior


def _randomise(prior):
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_()
    return prior


def _np(t):
    return t.detach().double().numpy()


def test_standard_prior_is_standard_normal():
    z = torch.randn(7, 4)
    expected = norm.logpdf(z.numpy()).sum(-1)
    np.testing.assert_allclose(StandardPrior(4).marginal().log_prob(z).numpy(), expected, rtol=1e-5)


def test_mixture_prior_equals_explicit_sum_over_components():
    prior = _randomise(MixturePrior(latent_dim=3, components=4))
    z = 2 * torch.randn(6, 3)
    log_pi = _np(torch.log_softmax(prior.logits, -1))
    mu, s = _np(prior.loc), _np(prior.scale)
    brute = np.array([logsumexp([log_pi[c] + norm.logpdf(zi, mu[c], s[c]).sum() for c in range(4)])
                      for zi in z.double().numpy()])
    np.testing.assert_allclose(prior.marginal().log_prob(z).detach().numpy(), brute, rtol=1e-5)


def test_factorized_prior_equals_sum_over_all_joint_choices():
    """p(z) = Σ over all N^d one-hot matrices D of Π_j π_{j,D_j} N(z_j; μ_{j,D_j}, σ_{j,D_j}²)."""
    d, N = 3, 2
    prior = _randomise(FactorizedMixturePrior(latent_dim=d, components=N))
    z = torch.randn(5, d)
    log_pi = _np(torch.log_softmax(prior.logits, -1))
    mu, s = _np(prior.loc), _np(prior.scale)
    brute = []
    for zi in z.double().numpy():
        terms = [sum(log_pi[j, n] + norm.logpdf(zi[j], mu[j, n], s[j, n]) for j, n in enumerate(choice))
                 for choice in itertools.product(range(N), repeat=d)]  # N^d joint choices
        brute.append(logsumexp(terms))
    np.testing.assert_allclose(prior.marginal().log_prob(z).detach().numpy(), brute, rtol=1e-5)


@pytest.mark.parametrize("prior_cls", [MixturePrior, FactorizedMixturePrior])
def test_one_hot_choice_selects_one_gaussian(prior_cls):
    prior = _randomise(prior_cls(latent_dim=3, components=2))
    c = torch.zeros(prior.layout.logits_shape)
    c[..., 1] = 1.0  # component 1 (in every dimension, for the factorized prior)
    z = torch.randn(3)
    loc = prior.loc[1] if prior_cls is MixturePrior else prior.loc[:, 1]
    scale = prior.scale[1] if prior_cls is MixturePrior else prior.scale[:, 1]
    expected = norm.logpdf(z.numpy(), _np(loc), _np(scale)).sum()
    assert prior.conditional(c).log_prob(z).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("prior_cls", [MixturePrior, FactorizedMixturePrior])
def test_relaxed_guide_posterior_is_the_discrete_mixture_of_its_components(prior_cls):
    prior = prior_cls(latent_dim=2, components=3)
    guide = RelaxedMixtureGuide(MLPBody((5,), [8]), 8, latent_dim=2, layout=prior.layout)
    x = torch.rand(4, 5)
    logits, loc, scale = (_np(t) for t in guide.component_params(x))
    z = torch.randn(4, 2)
    log_q = guide.posterior(x).log_prob(z).detach().numpy()
    zn = z.double().numpy()
    for b in range(4):
        log_w = logits[b] - logsumexp(logits[b], axis=-1, keepdims=True)
        if prior_cls is MixturePrior:  # Σ_c w_c Π_j N(z_j; loc_cj, scale_cj)
            expected = logsumexp(log_w + norm.logpdf(zn[b], loc[b], scale[b]).sum(-1))
        else:  # Π_j Σ_n w_jn N(z_j; loc_jn, scale_jn)
            expected = logsumexp(log_w + norm.logpdf(zn[b][:, None], loc[b], scale[b]), axis=-1).sum()
        assert log_q[b] == pytest.approx(expected, rel=1e-5)


def test_mixture_prior_samples_follow_its_weights():
    prior = MixturePrior(latent_dim=1, components=2)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.0, np.log(3.0)]))  # π = (1/4, 3/4)
        prior.loc.copy_(torch.tensor([[-10.0], [10.0]]))
    z = prior.marginal().sample((20000,))
    assert (z > 0).float().mean().item() == pytest.approx(0.75, abs=0.015)


def test_fit_to_recovers_the_mixture_that_drew_the_points():
    """The oracle: points drawn from a known 3-component mixture in 2-D, far apart; the fit
    (scikit-learn's EM) gives back its weights, means and standard deviations."""
    gen = torch.Generator().manual_seed(0)
    weights, means = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([[-6.0, 0.0], [6.0, 2.0], [0.0, 8.0]])
    stds = torch.tensor([[1.0, 0.5], [0.7, 1.2], [1.5, 1.0]])
    c = torch.multinomial(weights, 6000, replacement=True, generator=gen)  # (N,)
    z = means[c] + stds[c] * torch.randn(6000, 2, generator=gen)  # (N, 2)
    prior = MixturePrior(2, components=3)
    prior.fit_to(z, seed=0)
    order = prior.loc[:, 0].argsort()  # the fit's components in the order of the truth's first coordinate
    truth = means[:, 0].argsort()
    torch.testing.assert_close(prior.loc[order], means[truth], atol=0.1, rtol=0)
    torch.testing.assert_close(prior.scale[order], stds[truth], atol=0.06, rtol=0)
    torch.testing.assert_close(prior.weights[order], weights[truth], atol=0.02, rtol=0)


def test_fit_to_fits_each_dimension_of_the_factorized_prior_and_keeps_flat_weights():
    gen = torch.Generator().manual_seed(1)
    sign = torch.randint(0, 2, (4000, 3), generator=gen) * 2 - 1  # (N, 3): each z_j at -4 or +4
    z = 4.0 * sign + 0.5 * torch.randn(4000, 3, generator=gen)
    prior = FactorizedMixturePrior(3, components=2)
    prior.fit_to(z)
    torch.testing.assert_close(prior.loc.sort(-1).values, torch.tensor([[-4.0, 4.0]] * 3), atol=0.1, rtol=0)
    torch.testing.assert_close(prior.scale, torch.full((3, 2), 0.5), atol=0.05, rtol=0)
    flat = MixturePrior(3, components=2, learn_weights=False)
    assert "logits" not in dict(flat.named_parameters()) and "logits" in flat.state_dict()
    flat.fit_to(z)
    assert torch.equal(flat.weights, torch.full((2,), 0.5))  # π stays uniform: only μ and σ are fitted
    with pytest.raises(ValueError, match="cannot fit"):
        MixturePrior(3, components=10).fit_to(z[:5])
