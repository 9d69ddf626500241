"""Likelihood densities against scipy, and the learned Gaussian scale."""

import numpy as np
import pyro
import pytest
import torch
from scipy.stats import bernoulli, norm

from pyro_mvae.data import load_digits
from pyro_mvae.models.likelihoods import BernoulliImage, BernoulliLikelihood, GaussianLikelihood
from pyro_mvae.models.registry import build_vae
from pyro_mvae.training.report import evaluate_elbo
from pyro_mvae.training.train import TrainerConfig, fit


def test_bernoulli_log_prob_matches_scipy():
    logits = torch.randn(3, 6)
    x = torch.bernoulli(torch.full((3, 6), 0.4))
    expected = bernoulli.logpmf(x.numpy(), torch.sigmoid(logits).numpy()).sum(-1)
    np.testing.assert_allclose(BernoulliLikelihood()(logits).log_prob(x).numpy(), expected, rtol=1e-5)


def test_fused_bernoulli_is_pyros_bernoulli_in_a_plate():
    """BernoulliImage is Bernoulli(logits).to_event(1): same log_prob after plate broadcasting."""
    logits, x = torch.randn(5, 6), torch.bernoulli(torch.full((2, 5, 6), 0.5))
    with pyro.plate("particles", 2, dim=-2), pyro.plate("data", 5, dim=-1):
        reference = pyro.distributions.Bernoulli(logits=logits).to_event(1)
        trace = pyro.poutine.trace(lambda: (pyro.sample("a", BernoulliImage(logits), obs=x),
                                            pyro.sample("b", reference, obs=x))).get_trace()
    trace.compute_log_prob()
    assert trace.nodes["a"]["fn"].batch_shape == (2, 5)
    torch.testing.assert_close(trace.nodes["a"]["log_prob"], trace.nodes["b"]["log_prob"])
    with pytest.raises(ValueError):
        BernoulliImage(logits, validate_args=True).log_prob(torch.full((5, 6), 0.5))


@pytest.mark.parametrize("learn", [False, True])
def test_gaussian_log_prob_matches_scipy(learn):
    lik = GaussianLikelihood(scale=0.3, learn_scale=learn)
    loc, x = torch.randn(4, 5), torch.randn(4, 5)
    expected = norm.logpdf(x.numpy(), loc.numpy(), 0.3).sum(-1)
    np.testing.assert_allclose(lik(loc).log_prob(x).detach().numpy(), expected, rtol=1e-5)
    assert (lik.scale_raw.requires_grad if learn else not list(lik.parameters()))


def test_learned_gaussian_scale_trains_on_grey_level_digits(tmp_path):
    data = load_digits(binarize=False)
    torch.manual_seed(0)
    vae = build_vae(data.event_shape, {"name": "mixture"}, {"name": "gaussian"},
                    {"name": "gaussian", "scale": 1.0, "learn_scale": True},
                    {"name": "mlp", "hidden": [64], "latent_dim": 8})
    pyro.set_rng_seed(0)
    before = evaluate_elbo(vae, data.val, 100)["elbo"]
    fit(vae, data, TrainerConfig(epochs=4, batch_size=50, lr=3e-3, warmup_epochs=0,
                                 eval_samples=20, progress=False),
        {"name": "trace"}, tmp_path / "run", {})
    assert evaluate_elbo(vae, data.val, 100)["elbo"] > before + 5.0
    assert vae.likelihood.scale.item() < 0.9  # pixels in [0, 1] are fitted far better than σ = 1


def test_sample_and_reconstruct_shapes():
    vae = build_vae((1, 8, 8), {"name": "factorized_mixture"}, {"name": "relaxed_mixture"},
                    {"name": "bernoulli"}, {"name": "mlp", "hidden": [16], "latent_dim": 4})
    assert vae.latent_dim == 4
    images = vae.sample(5)
    assert images.shape == (5, 1, 8, 8) and 0 <= images.min() and images.max() <= 1
    assert vae.reconstruct(torch.bernoulli(torch.rand(3, 1, 8, 8))).shape == (3, 1, 8, 8)
