"""VampPrior, Real-NVP flow prior and flow guide against hand computations; every pair trains."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from scipy.stats import chisquare, multivariate_normal

from pyro_mvae.data import load_digits
from pyro_mvae.errors import PairingError
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.models.nets import MIN_SCALE
from pyro_mvae.models.registry import GUIDES, PRIORS, build_vae
from pyro_mvae.training.train import TrainerConfig, fit

NET = {"name": "mlp", "hidden": [16], "latent_dim": 2}


def test_vamp_log_density_is_the_mixture_of_the_encoder_gaussians_at_the_pseudo_inputs():
    torch.manual_seed(0)
    vae = build_vae(64, {"name": "vamp", "components": 7}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [16], "latent_dim": 3})
    u = vae.prior.pseudo_inputs.detach()
    assert u.shape == (7, 64) and 0 < u.min() and u.max() < 1
    loc, raw = vae.encoder.encode(u).detach().split(3, dim=-1)  # the encoder, by hand: (7, 3) each
    scale = (F.softplus(raw) + MIN_SCALE).numpy()
    z = torch.randn(5, 3)
    per_component = np.stack([multivariate_normal(loc[c].numpy(), np.diag(scale[c] ** 2)).logpdf(z.numpy())
                              for c in range(7)])  # (7, 5)
    expected = logsumexp(per_component, axis=0) - math.log(7)
    np.testing.assert_allclose(vae.prior.marginal().log_prob(z).detach().numpy(), expected, rtol=1e-5)
    assert vae.prior.marginal().sample((10,)).shape == (10, 3)
    assert "prior.pseudo_logits" in dict(vae.named_parameters())


def _flow_prior(layers=2):
    torch.manual_seed(1)
    return build_vae(64, {"name": "flow", "layers": layers, "hidden": [8]}, {"name": "gaussian"},
                     {"name": "bernoulli"}, NET).prior


def test_flow_prior_log_density_is_the_change_of_variables_by_hand():
    prior = _flow_prior()
    z = torch.randn(6, 2) * 2
    with torch.no_grad():
        x, log_det = z.clone(), torch.zeros(6)
        for coupling in reversed(list(prior.couplings)):  # invert: reversal, then the coupling
            x = x.flip(-1)
            mean, log_scale = coupling.nn(x[:, :1])  # t and s of the kept half, (6, 1) each
            log_scale = log_scale.clamp(coupling.log_scale_min_clip, coupling.log_scale_max_clip)
            x = torch.cat([x[:, :1], (x[:, 1:] - mean) * torch.exp(-log_scale)], dim=-1)
            log_det -= log_scale.sum(-1)
        expected = multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x.numpy()) + log_det.numpy()
        np.testing.assert_allclose(prior.marginal().log_prob(z).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_flow_prior_samples_have_the_density_it_reports():
    """Chi-square of 20,000 samples in a 8 × 8 grid against the reported density integrated
    over each cell (20 × 20 midpoints per cell)."""
    prior = _flow_prior(layers=3)
    torch.manual_seed(2)
    with torch.no_grad():
        samples = prior.marginal().sample((20000,)).numpy()
        lo, hi = np.quantile(samples, 0.02, axis=0), np.quantile(samples, 0.98, axis=0)
        edges = [np.linspace(lo[i], hi[i], 9) for i in range(2)]
        observed = np.histogram2d(samples[:, 0], samples[:, 1], bins=edges)[0].ravel()
        fine = [np.linspace(lo[i], hi[i], 161) for i in range(2)]
        mids = [(f[1:] + f[:-1]) / 2 for f in fine]
        grid = torch.tensor(np.stack(np.meshgrid(*mids, indexing="ij"), -1), dtype=torch.float32)
        density = prior.marginal().log_prob(grid.reshape(-1, 2)).exp().numpy().reshape(160, 160)
        cell = np.diff(fine[0])[0] * np.diff(fine[1])[0]
        probs = density.reshape(8, 20, 8, 20).sum(axis=(1, 3)).ravel() * cell
    expected = 20000 * probs.astype(np.float64)
    outside = (20000 - observed.sum(), 20000 - expected.sum())
    stat = chisquare(np.append(observed, outside[0]), np.append(expected, outside[1]))
    assert stat.pvalue > 1e-3, stat


def test_flow_guide_log_density_integrates_to_one():
    torch.manual_seed(3)
    vae = build_vae(64, {"name": "standard"}, {"name": "flow", "layers": 2, "flow_hidden": [8], "context_dim": 4},
                    {"name": "bernoulli"}, NET)
    x = torch.bernoulli(torch.full((1, 64), 0.3))
    with torch.no_grad():
        q = vae.encoder.posterior(x)
        draws = q.sample((20000,))[:, 0]  # (S, 2)
        lo, hi = draws.min(0).values - 3, draws.max(0).values + 3
        axes = [torch.linspace(lo[i], hi[i], 801) for i in range(2)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 1, 2)  # (M, 1, 2)
        mass = q.log_prob(grid).exp().sum() * (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    assert mass.item() == pytest.approx(1.0, abs=0.01)


REFUSED = {(p, g) for p in ("standard", "vamp", "flow")
           for g in ("relaxed_mixture", "discrete_mixture", "marginal_mixture")}


def test_every_allowed_pair_trains_and_every_refused_pair_says_why(tmp_path):
    data = load_digits(limit=300, val_size=100)
    refused = set()
    for prior, guide in itertools.product(PRIORS, GUIDES):
        torch.manual_seed(0)
        try:
            vae = build_vae(data.event_shape, {"name": prior}, {"name": guide}, {"name": "bernoulli"},
                            {"name": "mlp", "hidden": [16], "latent_dim": 4})
            build_objective("trace", vae=vae)
        except PairingError as err:
            assert "with it: " in str(err), err  # the message names the components that would pair
            refused.add((prior, guide))
            continue
        trainer = TrainerConfig(epochs=2, batch_size=50, eval_samples=30, eval_chunk_size=10,
                                progress=False, validate=True)
        report = fit(vae, data, trainer, {"name": "trace"}, tmp_path / f"{prior}_{guide}", {})
        assert math.isfinite(report["test_iwae_ll"]) and report["skipped_steps"] == 0, (prior, guide)
    assert refused == REFUSED


def test_matrix_mixture_density_equals_the_broadcasting_one():
    """DiagonalGaussianMixture (two matrix products, float64) against Pyro's MixtureSameFamily,
    in float64, with scales down to the 1e-3 floor and particle × batch leading shapes."""
    from pyro_mvae.distributions.mixtures import DiagonalGaussianMixture

    torch.manual_seed(4)
    C, d = 50, 6
    logits, loc = torch.randn(C, dtype=torch.float64), torch.randn(C, d, dtype=torch.float64)
    scale = torch.rand(C, d, dtype=torch.float64) * 2 + 1e-3
    mixture = DiagonalGaussianMixture(logits, loc, scale)
    z = torch.cat([loc[:3] + 1e-3 * torch.randn(3, d, dtype=torch.float64),  # at a narrow component
                   3 * torch.randn(7, d, dtype=torch.float64)]).reshape(2, 5, d)  # (K, B, d)
    torch.testing.assert_close(mixture.log_prob(z), mixture.as_mixture_same_family().log_prob(z),
                               rtol=1e-9, atol=1e-9)
    assert mixture.sample((4,)).shape == (4, d)
