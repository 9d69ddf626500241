"""Gradient estimators for the component choice, checked against enumeration (the exact sum over c)."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from linear_gaussian import SIGMA, D, d, linear_decoder, mlp_guide, sample_data
from pyro_mvae.errors import PairingError
from pyro_mvae.infer.iwae import iwae_batch
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.models.guides import DiscreteMixtureGuide, RelaxedMixtureGuide
from pyro_mvae.models.likelihoods import GaussianLikelihood
from pyro_mvae.models.priors import MixturePrior
from pyro_mvae.models.registry import build_vae
from pyro_mvae.models.vae import VAE

C = 3


def discrete_vae(guide_cls=DiscreteMixtureGuide, **guide_opts) -> VAE:
    torch.manual_seed(0)
    prior = MixturePrior(d, components=C)
    with torch.no_grad():
        prior.loc.copy_(torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]))
    guide = mlp_guide(guide_cls, (8,), layout=prior.layout, event_shape=(D,), **guide_opts)
    return VAE(prior, guide, GaussianLikelihood(scale=SIGMA), linear_decoder(), D)


def logit_gradients(vae, objective: str, x, calls: int, particles: int = 50, warmup: int = 0):
    """Estimates of ∂(−ELBO)/∂(bias of the guide's logit outputs), each the mean of ``particles``
    vectorised draws: ``(calls, C)``. A single draw's variance is ``particles`` × their variance."""
    elbo = build_objective(objective, particles, vae=vae)
    head = vae.encoder.head  # its first C outputs are the component logits
    baseline_net = getattr(vae.encoder, "baseline_net", None)
    opt = None if baseline_net is None else torch.optim.Adam(baseline_net.parameters(), lr=0.01)
    out = []
    for i in range(warmup + calls):
        vae.zero_grad()
        elbo.loss_and_grads(vae.model, vae.svi_guide, x)
        if opt is not None:
            opt.step()  # the neural baseline learns to predict the cost; nothing else moves
        if i >= warmup:
            out.append(head.bias.grad[:C].clone())
    return torch.stack(out)


def mean_and_se(grads):
    return grads.mean(0), grads.std(0) / math.sqrt(len(grads))


@pytest.fixture(scope="module")
def x():
    return sample_data(discrete_vae(), 4, seed=3)


@pytest.fixture(scope="module")
def exact(x):
    return mean_and_se(logit_gradients(discrete_vae(), "enum", x, 40))


# The neural baseline takes one particle per step (its output has the data plate's shape).
PARTICLES = {"none": 50, "decaying_average": 50, "neural": 1}
CALLS = {"none": 40, "decaying_average": 40, "neural": 300}
WARMUP = {"none": 0, "decaying_average": 20, "neural": 150}


@pytest.fixture(scope="module")
def score_function_gradients(x):
    out = {}
    for baseline in PARTICLES:
        pyro.clear_param_store()  # the decaying average lives in Pyro's parameter store
        out[baseline] = logit_gradients(discrete_vae(baseline=baseline), "tracegraph", x,
                                        CALLS[baseline], PARTICLES[baseline], WARMUP[baseline])
    return out


@pytest.mark.parametrize("baseline", ["none", "decaying_average", "neural"])
def test_score_function_gradient_averages_to_the_enumerated_one(baseline, exact, score_function_gradients):
    mean, se = mean_and_se(score_function_gradients[baseline])
    assert torch.all((mean - exact[0]).abs() < 4 * (se ** 2 + exact[1] ** 2).sqrt()), (mean, exact[0])


def test_baselines_reduce_the_score_function_variance(score_function_gradients):
    variances = {name: grads.var(0).sum().item() * PARTICLES[name]  # one draw's variance
                 for name, grads in score_function_gradients.items()}
    assert variances["decaying_average"] < variances["none"]
    assert variances["neural"] < variances["none"]


def test_relaxed_gradient_bias_shrinks_as_tau_falls(x, exact):
    """Concrete relaxation at the same parameters as the discrete guide: its logit gradient
    approaches the exact (enumerated) one as τ → 0."""
    bias = {}
    for tau in (3.0, 0.3):
        vae = discrete_vae(RelaxedMixtureGuide, straight_through=False)
        vae.tau = tau
        grads = logit_gradients(vae, "trace", x, 40)
        bias[tau] = (grads.mean(0) - exact[0]).norm().item()
    assert bias[0.3] < bias[3.0], bias


def test_enumerated_loss_equals_the_sum_over_components_by_hand():
    vae = discrete_vae()
    x = sample_data(vae, 5, seed=4)
    elbo = build_objective("enum", vae=vae)
    pyro.set_rng_seed(11)
    loss = elbo.loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(11)
    with torch.no_grad():
        logits, loc, scale = vae.encoder.component_params(x)  # (B, C), (B, C, d), (B, C, d)
        z = torch.distributions.Normal(loc.transpose(0, 1), scale.transpose(0, 1)).rsample()  # (C, B, d)
        log_q_c = torch.log_softmax(logits, -1).T  # (C, B)
        log_pi = torch.log_softmax(vae.prior.logits, -1)[:, None]  # (C, 1)
        normal = torch.distributions.Normal
        log_p_z = normal(vae.prior.loc[:, None], vae.prior.scale[:, None]).log_prob(z).sum(-1)
        log_q_z = normal(loc.transpose(0, 1), scale.transpose(0, 1)).log_prob(z).sum(-1)
        log_p_x = normal(vae.decode(z), SIGMA).log_prob(x).sum(-1)  # (C, B)
        per_c = log_pi - log_q_c + log_p_z - log_q_z + log_p_x  # (C, B)
        by_hand = -(log_q_c.exp() * per_c).sum()
    assert loss == pytest.approx(by_hand.item(), rel=1e-5)


def test_iwae_objective_k1_is_the_elbo_and_matches_the_estimator():
    vae = build_vae(D, {"name": "standard"}, {"name": "gaussian"},
                    {"name": "gaussian", "scale": SIGMA}, {"name": "mlp", "hidden": [8], "latent_dim": d})
    x = sample_data(vae, 6, seed=5)
    pyro.set_rng_seed(1)
    one = build_objective("iwae", 1, vae=vae).loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(1)
    assert one == pytest.approx(Trace_ELBO(max_plate_nesting=1).loss(vae.model, vae.guide, x), rel=1e-5)
    for k in (10, 100):
        pyro.set_rng_seed(2)
        objective = build_objective("iwae", k, vae=vae).loss(vae.model, vae.guide, x)
        pyro.set_rng_seed(2)
        estimate = iwae_batch(vae, x, k, chunk_size=k).sum().item()  # the same K draws
        assert objective == pytest.approx(-estimate, rel=1e-4)


def test_iwae_objective_rises_with_k():
    vae = discrete_vae(RelaxedMixtureGuide)
    x = sample_data(vae, 6, seed=6)
    means = []
    for k in (1, 5, 50):
        pyro.set_rng_seed(0)
        objective = build_objective("iwae", k, vae=vae)
        means.append(-sum(objective.loss(vae.model, vae.guide, x) for _ in range(40)) / 40)
    assert means[0] < means[1] < means[2], means


@pytest.mark.parametrize("prior,guide,objective,needle", [
    ("factorized_mixture", {"name": "discrete_mixture"}, "enum", r"guide with `enumerable`.*N\^d"),
    ("mixture", {"name": "relaxed_mixture"}, "enum", "guide with `enumerable`"),
    ("mixture", {"name": "discrete_mixture"}, "iwae", "guide with `reparameterized`.*guides with it: flow, gaussian"),
    ("mixture", {"name": "discrete_mixture", "baseline": "neural"}, "trace",
     "objective with `score_baselines`.*objectives with it: tracegraph"),
    ("mixture", {"name": "gaussian"}, "meanfield", "prior with `analytic_kl`.*priors with it: standard"),
    ("mixture", {"name": "gaussian"}, "enum", "guide with `chooses_component`.*discrete_mixture, relaxed_mixture"),
    ("mixture", {"name": "relaxed_mixture", "estimator": "gumbel_rao"}, "enum", "guide with `enumerable`"),
])
def test_invalid_pairings_are_refused(prior, guide, objective, needle):
    """Each message is derived from the objective's declared requirements and names the capability."""
    vae = build_vae(64, {"name": prior}, guide, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [8], "latent_dim": 3})
    with pytest.raises(PairingError, match=needle):
        build_objective(objective, vae=vae)


@pytest.mark.parametrize("prior", ["mixture", "factorized_mixture"])
def test_gumbel_rao_draws_the_straight_through_one_hot_sample(prior):
    """Same seed, same c: the forward pass is the exact one-hot draw of straight-through."""
    vae = build_vae(64, {"name": prior}, {"name": "relaxed_mixture"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [8], "latent_dim": 3})
    logits = vae.encoder.component_params(torch.rand(50, 64))[0]
    layout = vae.encoder.layout
    pyro.set_rng_seed(3)
    straight_through = layout.choice(logits, 0.5, straight_through=True).rsample()
    pyro.set_rng_seed(3)
    gumbel_rao = layout.gumbel_rao_choice(logits, 0.5, rao_samples=10).rsample()
    assert torch.equal(gumbel_rao, straight_through)
    assert torch.equal(gumbel_rao.sum(-1), torch.ones_like(gumbel_rao.sum(-1)))


def test_conditional_gumbels_keep_the_drawn_argmax():
    """At τ → 0 each conditional relaxation is the one-hot of its argmax: all M must be c (one
    draw of 20 elsewhere would leave c at most 0.95; near-ties keep it above 0.97)."""
    from pyro_mvae.models.layouts import gumbel_rao_one_hot

    logits = torch.randn(200, 5)
    choice = gumbel_rao_one_hot(1e-4, logits, rao_samples=20)
    hard = choice.rsample()
    mass_on_c = (choice._conditional_relaxed(choice.logits, hard) * hard).sum(-1)  # (200,)
    assert mass_on_c.min() > 0.97, mass_on_c.min()


def test_gumbel_rao_has_the_straight_through_mean_and_less_variance():
    """For f(c) = a · c both estimate ∇ E[a · softmax((θ + G)/τ)]; Rao-Blackwellising over the
    Gumbels given c keeps the mean and lowers the variance (Paulus et al. 2021, Theorem 1)."""
    from pyro_mvae.models.layouts import gumbel_rao_one_hot, relaxed_one_hot

    a, draws = torch.tensor([1.0, -2.0, 0.5, 3.0]), 4000
    theta = torch.tensor([0.2, -0.3, 0.8, 0.0]).expand(draws, 4).clone().requires_grad_()
    grads = {}
    for name, make in (("st", lambda: relaxed_one_hot(0.5, theta, True)),
                       ("gr", lambda: gumbel_rao_one_hot(0.5, theta, 10))):
        (grads[name],) = torch.autograd.grad((make().rsample() * a).sum(), theta)  # (draws, 4)
    se = (grads["st"].var(0) / draws + grads["gr"].var(0) / draws).sqrt()
    assert torch.all((grads["st"].mean(0) - grads["gr"].mean(0)).abs() < 4 * se)
    assert torch.all(grads["gr"].var(0) < 0.5 * grads["st"].var(0))


def test_gumbel_rao_cuts_the_variance_on_the_small_model(x):
    """One draw's variance of the logit gradient, 300 estimates of 5 draws each (a variance
    estimate good to ~8%): measured 88 for Gumbel-Rao (M = 10) against 138 for straight-through."""
    variance = {}
    for name, opts in (("st", {}), ("gr", {"estimator": "gumbel_rao", "rao_samples": 10})):
        grads = logit_gradients(discrete_vae(RelaxedMixtureGuide, **opts), "trace", x, 300, particles=5)
        variance[name] = grads.var(0).sum().item() * 5
    assert variance["gr"] < 0.85 * variance["st"], variance


def test_gumbel_rao_elbo_scores_the_discrete_choice():
    """Model and guide score c as Categorical(π) and Categorical(q(c | x)): the ELBO's c terms
    are log π_c − log q(c | x) of the drawn component, a bound on the discrete mixture."""
    from pyro import poutine

    vae = discrete_vae(RelaxedMixtureGuide, estimator="gumbel_rao")
    x = sample_data(vae, 5, seed=7)
    guide = poutine.trace(vae.guide).get_trace(x)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
    c = guide.nodes["c"]["value"]  # (B, C) one-hot
    logits = vae.encoder.component_params(x)[0]
    torch.testing.assert_close(guide.nodes["c"]["fn"].log_prob(c), (c * torch.log_softmax(logits, -1)).sum(-1))
    torch.testing.assert_close(model.nodes["c"]["fn"].log_prob(c),
                               (c * torch.log_softmax(vae.prior.logits, -1)).sum(-1))
    assert vae.encoder.elbo_bounds_discrete_model
