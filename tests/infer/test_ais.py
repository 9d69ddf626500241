"""AIS and BDMC against closed forms: linear-Gaussian VAEs (exact log p(x) and posterior), the
IWAE estimator on the same draws (T = 1), and the BDMC sandwich around the exact value."""

import numpy as np
import pytest
import torch

from linear_gaussian import (
    SIGMA,
    D,
    exact_log_marginal,
    mixture_vae,
    orthogonal_standard_vae_with_exact_guide,
    overconfident_on,
    sample_data,
    standard_vae,
)
from pyro_mvae.data import load_digits
from pyro_mvae.errors import ConfigError
from pyro_mvae.evaluation.annealed import ais_section
from pyro_mvae.infer import ais
from pyro_mvae.infer.bdmc import bdmc, bounds
from pyro_mvae.infer.iwae import iwae_batch
from pyro_mvae.models.registry import build_vae


def test_sigmoid_schedule_runs_from_zero_to_one_and_rises():
    betas = ais.sigmoid_schedule(100)
    assert betas[0] == 0 and betas[-1] == 1 and torch.all(betas.diff() > 0) and len(betas) == 101
    assert ais.sigmoid_schedule(1).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="at least 1"):
        ais.sigmoid_schedule(0)


@pytest.mark.parametrize("name,init", [("standard", "guide"), ("mixture", "prior"), ("mixture", "guide")])
def test_ais_matches_the_closed_form_marginal_likelihood(name, init, device):
    torch.manual_seed(0)
    vae = standard_vae(guide_hidden=(16,)) if name == "standard" else mixture_vae("gaussian")  # guide untrained
    x = sample_data(vae, 8)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)
    vae, x = vae.to(device), x.to(device)
    runs = torch.stack([ais.ais_log_likelihood(vae, x, steps=100, chains=8, leapfrog=5, init=init)[0].cpu()
                        for _ in range(4)])  # (R, N)
    mean, se = runs.mean(0), runs.std(0) / 2
    assert torch.all((mean - exact).abs() < 4 * se + 0.03), (mean - exact, se)


def test_one_annealing_step_is_importance_sampling_with_the_initial_distribution():
    data = load_digits()
    torch.manual_seed(0)
    digits_vae = build_vae(data.event_shape, {"name": "factorized_mixture"}, {"name": "relaxed_mixture"},
                           {"name": "bernoulli"}, {"name": "mlp", "hidden": [32], "latent_dim": 4})
    for vae, x in ((digits_vae, data.test.x[:10]), (mixture_vae("gaussian"), None)):
        x = sample_data(vae, 10) if x is None else x
        torch.manual_seed(5)
        estimate, stats = ais.ais_log_likelihood(vae, x, steps=1, chains=300, max_particles=3000,
                                                 init="guide")  # one batch
        torch.manual_seed(5)
        expected = iwae_batch(vae, x, num_samples=300, chunk_size=300)  # the same 300 draws per image
        torch.testing.assert_close(estimate, expected, rtol=0, atol=1e-4)
        assert stats["acceptance_rate"] is None  # no transition was made


def test_hmc_leaves_the_exact_gaussian_posterior_invariant():
    """Linear-Gaussian model, d = 2: p(z | x) = N(Σ Wᵀ(x − b)/σ², Σ), Σ = (I + WᵀW/σ²)⁻¹."""
    torch.manual_seed(1)
    vae = standard_vae()
    x = sample_data(vae, 1)  # (1, D)
    w, b = vae.decoder.weight.detach(), vae.decoder.bias.detach()
    cov = torch.linalg.inv(torch.eye(2) + w.T @ w / SIGMA ** 2)  # (2, 2)
    mean = cov @ w.T @ (x[0] - b) / SIGMA ** 2  # (2,)
    n = 4000
    z = torch.distributions.MultivariateNormal(mean, cov).sample((n, 1))  # (S, 1, 2)
    path = ais._Path(vae, x, vae.prior.marginal())
    path.beta = 1.0
    accepted = []
    for _ in range(15):
        grads, _ = ais.potential_grad(path.potential, {"z": z})
        z, accept = ais._hmc(path, z, grads, torch.tensor([0.15]), leapfrog=5)
        accepted.append(accept.mean().item())
    z = z[:, 0].double()  # (S, 2)
    se = (torch.diag(cov).double() / n).sqrt()
    assert torch.all((z.mean(0) - mean.double()).abs() < 5 * se), (z.mean(0), mean)
    torch.testing.assert_close(torch.cov(z.T), cov.double(), atol=0.1 * cov.abs().max().item(), rtol=0.1)
    assert 0.3 < np.mean(accepted) <= 1.0


@pytest.mark.parametrize("name,closed", [("standard", 0.15), ("mixture", 0.4)])
def test_bdmc_brackets_the_exact_value_and_closes_as_t_grows(name, closed):
    """Measured at T = 300: mean gaps of 0.01–0.07 nats (standard) and 0.14 (mixture: multimodal posteriors)."""
    torch.manual_seed(2)
    vae = standard_vae(guide_hidden=(16,)) if name == "standard" else mixture_vae("gaussian")  # guide untrained
    with torch.no_grad():
        z_true = vae.prior.marginal().sample((40,))  # (n, d)
        x = vae.likelihood(vae.decode(z_true)).sample()  # (n, D)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)
    gaps = {}
    for steps in (3, 300):
        lower, upper = bounds(vae, x, z_true, steps, chains=4, leapfrog=5)
        below, above = lower - exact, upper - exact  # (n,)
        assert below.mean() < 3 * below.std() / 40 ** 0.5 + 1e-3, (steps, below.mean())
        assert above.mean() > -3 * above.std() / 40 ** 0.5 - 1e-3, (steps, above.mean())
        gaps[steps] = (upper - lower).mean().item()
    assert gaps[300] < 0.25 * gaps[3] and gaps[300] < closed, gaps


def test_bdmc_report_names_its_bounds_and_the_steps_that_close_the_gap():
    torch.manual_seed(3)
    report = bdmc(standard_vae(guide_hidden=(16,)), n=6, steps=(1, 100), chains=2, leapfrog=5)
    assert set(report["by_steps"]) == {"1", "100"}
    row = report["by_steps"]["100"]
    assert {"lower", "upper", "gap", "lower_se", "upper_se", "gap_se"} <= set(row) and len(row["gap_per_image"]) == 6
    assert row["gap"] == pytest.approx(row["upper"] - row["lower"], abs=1e-5)
    small = [int(t) for t, r in report["by_steps"].items() if r["gap"] < 1]
    assert report["steps_for_gap_below_1_nat"] == (min(small) if small else None)


@pytest.mark.parametrize("options,needle", [({"steps": 0}, "ais.steps"), ({"chains": 0}, "ais.chains"),
                                            ({"init": "posterior"}, "ais.init"),
                                            ({"step_size": -1.0}, "ais.step_size")])
def test_bad_ais_settings_are_refused_by_name(options, needle):
    with pytest.raises(ConfigError, match=needle):
        ais.ais_log_likelihood(standard_vae(), torch.zeros(2, D), **options)


def test_memory_follows_max_particles_not_the_chain_count():
    """Chains beyond max_particles are annealed in chunks whose weights pool exactly: the estimate
    with S = 6 in chunks of 2 equals log-mean-exp of the three chunks' own weights."""
    vae = mixture_vae("gaussian")
    x = sample_data(vae, 1)
    torch.manual_seed(4)
    pooled, _ = ais.ais_log_likelihood(vae, x, steps=5, chains=6, leapfrog=2, max_particles=2)
    torch.manual_seed(4)
    parts = torch.stack([ais.ais_batch(vae, x, 5, 2, leapfrog=2) for _ in range(3)])  # (3, 1)
    torch.testing.assert_close(pooled, torch.logsumexp(parts, 0) - np.log(3), rtol=0, atol=1e-5)


def test_the_defensive_start_is_the_normalised_mixture_of_guide_and_prior():
    vae = standard_vae(guide_hidden=(8,))
    x = sample_data(vae, 3)
    torch.manual_seed(0)
    initial, z = ais.initial_distribution(vae, x, "both", chains=5)
    assert z.shape == (5, 3, 2)
    q, p = vae.encoder.posterior(x), vae.prior.marginal()
    expected = torch.log(0.6 * q.log_prob(z).exp() + 0.4 * p.log_prob(z).exp())  # 3 of 5 chains from the guide
    torch.testing.assert_close(initial.log_prob(z), expected)
    torch.manual_seed(0)
    guide_draws = q.sample((3,))  # the first three chains are the guide's draws, the others the prior's
    torch.testing.assert_close(z[:3], guide_draws)


DISAGREEMENT = ais.DISAGREEMENT_NATS


def test_an_overconfident_guide_cannot_fool_the_default_ais_and_is_reported():
    """Issue 45: on one image the guide's s.d. is 0.005 and its mean 4 posterior s.d. away. AIS from
    the guide alone is nats low there; the default (the defensive start) is within its error of the
    exact log p(x) on every image, and only that image is reported as one where the starts disagree."""
    vae = orthogonal_standard_vae_with_exact_guide()
    x = sample_data(vae, 6)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)
    overconfident_on(vae, x[0])
    torch.manual_seed(0)
    guide_only, _ = ais.ais_log_likelihood(vae, x, steps=200, chains=16, leapfrog=5, init="guide")
    assert guide_only[0] - exact[0] < -2 and (guide_only[1:] - exact[1:]).abs().max() < 0.05
    runs = []
    for seed in range(4):
        torch.manual_seed(seed)
        runs.append(ais.ais_log_likelihood(vae, x, steps=200, chains=16, leapfrog=5)[0])
    runs = torch.stack(runs)  # (R, N)
    mean, se = runs.mean(0), runs.std(0) / 2
    assert torch.all((mean - exact).abs() < 4 * se + 0.1), (mean - exact, se)
    torch.manual_seed(0)
    columns, section = ais_section(vae, x, ais.AISSettings(steps=200, chains=16, leapfrog=5), np.zeros(6), 1.0,
                                   progress=False)
    assert section["starts_disagree"]["images"] == [0] and section["init"] == "both"
    assert columns["ais_guide"][0] < columns["ais_prior"][0] - 2
    assert np.abs(columns["ais_guide"][1:] - columns["ais_prior"][1:]).max() < DISAGREEMENT  # 8 chains each: noisy
