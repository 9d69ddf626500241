"""The marginal-mixture guide's pathwise gradients and densities, against exact oracles.

Oracles: scipy's densities and CDFs; E[z²] = Σ w (μ² + σ²) and E[sin z] = Σ w sin μ e^{−σ²/2}
in closed form (their gradients by autograd); for a decoder's log-likelihood, the component sum
done exactly with per-component reparameterisation.
"""

import math

import numpy as np
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from scipy import stats

from pyro_mvae.compose import compose_config, resolve_objective
from pyro_mvae.distributions.mixtures import ReparameterizedDiagNormalMixture, ReparameterizedNormalMixture
from pyro_mvae.errors import ConfigError, PairingError
from pyro_mvae.infer.objectives import build_objective, resolve_for
from pyro_mvae.models.layouts import WholeVectorLayout
from pyro_mvae.models.registry import build_vae

N = 3  # components


def scalar_params(d: int = 2):
    """logits, loc, scale ``(d, N)``, each a leaf that needs its gradient."""
    logits = torch.tensor([[0.3, -0.5, 0.9], [1.2, 0.0, -1.0]])[:d]
    loc = torch.tensor([[-2.0, 0.5, 2.5], [0.0, -1.5, 1.0]])[:d]
    scale = torch.tensor([[0.5, 1.0, 0.7], [1.3, 0.4, 0.8]])[:d]
    return [t.clone().requires_grad_() for t in (logits, loc, scale)]


def replicate_gradients(fn, params, replicates: int = 20):
    """Mean and standard error over ``replicates`` of the gradient of fn(params) w.r.t. params."""
    grads = []
    for _ in range(replicates):
        g = torch.autograd.grad(fn(*params), params)
        grads.append(torch.cat([t.flatten() for t in g]))
    grads = torch.stack(grads)  # (R, P)
    return grads.mean(0), grads.std(0) / math.sqrt(replicates)


def exact_gradient(fn, params):
    return torch.cat([t.flatten() for t in torch.autograd.grad(fn(*params), params)])


def assert_within_mc_error(mean, se, exact):
    assert torch.all((mean - exact).abs() < 5 * se + 1e-4), (mean, exact, se)


def weights(logits):
    return torch.softmax(logits, -1)


EXACT = {  # E[f(z)] summed over dimensions, in closed form
    "square": lambda logits, loc, scale: (weights(logits) * (loc ** 2 + scale ** 2)).sum(),
    "sin": lambda logits, loc, scale: (weights(logits) * torch.sin(loc) * torch.exp(-scale ** 2 / 2)).sum(),
}
F = {"square": torch.square, "sin": torch.sin}


@pytest.mark.parametrize("f", ["square", "sin"])
def test_implicit_gradient_matches_the_closed_form(f):
    params = scalar_params()
    def pathwise(*p):
        return F[f](ReparameterizedNormalMixture(*p).rsample((20000,))).sum(-1).mean()
    assert_within_mc_error(*replicate_gradients(pathwise, params), exact_gradient(EXACT[f], params))


def _decoder():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))


def test_implicit_gradient_of_a_decoder_likelihood_matches_the_component_sum():
    decoder, x = _decoder(), torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    def log_lik(z):
        return dist.Bernoulli(logits=decoder(z)).to_event(1).log_prob(x)  # (...,)

    def pathwise(logits, loc, scale):
        return log_lik(ReparameterizedNormalMixture(logits, loc, scale).rsample((5000,))).mean()

    def component_sum(logits, loc, scale):  # Σ over the N^2 joint components, reparameterised within
        eps = torch.randn(5000, 1, 1, 2)
        n = torch.cartesian_prod(torch.arange(N), torch.arange(N))  # (N², 2)
        dims = torch.arange(2)
        z = loc[dims, n] + scale[dims, n] * eps.squeeze(1)  # (S, N², 2)
        w = weights(logits)[dims, n].prod(-1)  # (N²,)
        return (w * log_lik(z).mean(0)).sum()

    params = scalar_params()
    mean, se = replicate_gradients(pathwise, params)
    exact, exact_se = replicate_gradients(component_sum, params)
    assert torch.all((mean - exact).abs() < 5 * (se ** 2 + exact_se ** 2).sqrt() + 1e-4), (mean, exact)


@pytest.mark.parametrize("d,spread", [(1, 1.0), (3, 1.0), (40, 4.0)])
def test_whole_vector_gradient_matches_the_closed_form(d, spread):
    """E[Σ sin(z/4)] = Σ_c w_c Σ_i sin(μ_ci/4) e^{−σ_ci²/32}; at d = 40 with scales near 4 each
    component's density is far below float32's range (log q ≈ −110), where Pyro's
    MixtureOfDiagNormals gave NaN in float32 and a weight gradient of ~0 in float64."""
    torch.manual_seed(0)
    logits = torch.tensor([0.3, -0.2, 0.1]).requires_grad_()
    loc = torch.randn(3, d).requires_grad_()
    scale = (spread * (1 + 0.2 * torch.rand(3, d))).requires_grad_()
    params = [logits, loc, scale]
    def pathwise(lg, lc, sc):
        return torch.sin(ReparameterizedDiagNormalMixture(lg, lc, sc).rsample((4000,)) / 4).sum(-1).mean()
    def closed(lg, lc, sc):
        return (weights(lg) * (torch.sin(lc / 4) * torch.exp(-sc ** 2 / 32)).sum(-1)).sum()
    mean, se = replicate_gradients(pathwise, params)
    assert_within_mc_error(mean, se, exact_gradient(closed, params))


def test_second_moment_and_samples_follow_the_mixture():
    logits, loc, scale = (t.detach() for t in scalar_params(1))
    z = ReparameterizedNormalMixture(logits, loc, scale).rsample((20000,)).squeeze(-1).double()  # (S,)
    w, mu, sd = (t[0].double().numpy() for t in (weights(logits), loc, scale))
    second = float((w * (mu ** 2 + sd ** 2)).sum())
    assert abs(z.pow(2).mean().item() - second) < 4 * z.pow(2).std().item() / math.sqrt(z.numel())
    def cdf(v):
        return (w * stats.norm.cdf((np.asarray(v)[..., None] - mu) / sd)).sum(-1)
    assert stats.kstest(z.numpy(), cdf).pvalue > 1e-3


def test_log_prob_equals_scipys_mixture_density():
    logits, loc, scale = (t.detach() for t in scalar_params())
    z = torch.linspace(-4, 4, 17).unsqueeze(-1).expand(17, 2)  # (17, d)
    ours = ReparameterizedNormalMixture(logits, loc, scale).log_prob(z)  # (17, d)
    w, mu, sd = (t.double().numpy() for t in (weights(logits), loc, scale))
    ref = np.log((w * stats.norm.pdf(z.double().numpy()[..., None], mu, sd)).sum(-1))
    np.testing.assert_allclose(ours.double().numpy(), ref, rtol=1e-5, atol=1e-5)


def test_whole_vector_guide_density_equals_scipys():
    torch.manual_seed(0)
    layout = WholeVectorLayout(latent_dim=3, components=2)
    logits, loc, scale = torch.randn(2), torch.randn(2, 3), torch.rand(2, 3) + 0.3
    z = torch.randn(5, 3)
    ours = layout.reparameterized_marginal(logits, loc, scale).log_prob(z)
    w = weights(logits).numpy()
    ref = np.log(sum(w[c] * stats.multivariate_normal(loc[c].numpy(), np.diag(scale[c].numpy() ** 2)).pdf(z.numpy())
                     for c in range(2)))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5)


def small_vae(prior: str, latent_dim: int = 4, **guide):
    return build_vae(64, {"name": prior, "components": N}, {"name": "marginal_mixture", **guide},
                     {"name": "bernoulli"}, {"name": "mlp", "hidden": [16], "latent_dim": latent_dim})


@pytest.mark.parametrize("prior,estimator,pathwise", [
    ("factorized_mixture", "auto", True), ("mixture", "implicit", True),
    ("mixture", "auto", False), ("factorized_mixture", "score_weights", False)])
def test_guide_site_is_the_exact_mixture_posterior(prior, estimator, pathwise):
    """No "c" site; the guide's "z" density is the posterior that the IWAE estimator scores. The
    implicit estimator is pathwise; score_weights (prior=mixture's default) hands Pyro a score
    function for the weights."""
    vae = small_vae(prior, estimator=estimator)
    x = torch.bernoulli(torch.full((6, 64), 0.3))
    trace = poutine.trace(vae.guide).get_trace(x)
    site = trace.nodes["z"]
    assert "c" not in trace.nodes and site["fn"].has_rsample == pathwise == vae.encoder.reparameterized
    z = site["value"]
    torch.testing.assert_close(site["fn"].log_prob(z), vae.encoder.posterior(x).log_prob(z))
    score = site["fn"].score_parts(z).score_function
    assert isinstance(score, int) if pathwise else score.shape == (6,)


@pytest.mark.parametrize("prior,guide,objective", [
    ("mixture", {}, "stratified"), ("mixture", {"estimator": "score_weights"}, "stratified"),
    ("mixture", {"estimator": "implicit"}, "trace"), ("factorized_mixture", {}, "trace"),
    ("factorized_mixture", {"estimator": "score_weights"}, "trace")])
def test_auto_objective_is_stratified_for_the_whole_vector_mixture(prior, guide, objective):
    vae = small_vae(prior, **guide)
    assert resolve_for("auto", vae) == objective
    expected = {"stratified": "StratifiedELBO", "trace": "Trace_ELBO"}[objective]
    assert type(build_objective("auto", vae=vae)).__name__ == expected
    config = compose_config([f"prior={prior}", "guide=marginal_mixture", *(f"guide.{k}={v}" for k, v in guide.items())])
    resolve_objective(config)
    assert config["objective"]["name"] == objective


def test_gaussian_guide_keeps_trace_under_auto():
    vae = build_vae(64, {"name": "mixture", "components": N}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [16], "latent_dim": 4})
    assert resolve_for("auto", vae) == "trace"


@pytest.mark.parametrize("prior,guide,reason", [
    ("factorized_mixture", {}, "guide with `stratifiable`.*guides with it: marginal_mixture"),
    ("mixture", {"estimator": "implicit"}, "guide with `stratifiable`")])
def test_stratified_objective_needs_one_draw_per_component(prior, guide, reason):
    with pytest.raises(PairingError, match=reason):
        build_objective("stratified", vae=small_vae(prior, **guide))


def test_iwae_objective_needs_the_implicit_estimator():
    with pytest.raises(PairingError, match="guide with `reparameterized`"):
        build_objective("iwae", 5, vae=small_vae("mixture"))
    build_objective("iwae", 5, vae=small_vae("mixture", estimator="implicit"))


def test_baseline_needs_a_score_term_and_tracegraph():
    with pytest.raises(ConfigError, match="guide.baseline must be none with the implicit estimator"):
        small_vae("factorized_mixture", baseline="decaying_average")
    vae = small_vae("mixture", baseline="neural")
    with pytest.raises(PairingError, match="objectives with it: tracegraph"):
        build_objective("trace", vae=vae)
    build_objective("tracegraph", vae=vae)


@pytest.mark.parametrize("objective,reason", [("enum", "guide with `chooses_component`"),
                                              ("meanfield", "guide with `analytic_kl`")])
def test_other_objectives_are_refused(objective, reason):
    with pytest.raises(PairingError, match=reason):
        build_objective(objective, vae=small_vae("factorized_mixture"))


def test_guide_refuses_a_prior_without_components():
    needs = "needs a prior with `has_components`.*priors with it: factorized_mixture, mixture"
    with pytest.raises(PairingError, match=needs):
        build_vae(64, {"name": "standard"}, {"name": "marginal_mixture"}, {"name": "bernoulli"},
                  {"name": "mlp", "hidden": [16], "latent_dim": 4})

