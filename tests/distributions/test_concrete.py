"""The Concrete choice scored in log space (LogSpaceConcrete) against Pyro's Concrete classes,
the closed-form binary Concrete density, and the clamping failure it replaces."""

import math

import pyro.distributions as dist
import pytest
import torch

from pyro_mvae.distributions import LogSpaceConcrete


def _binary_concrete_log_density(y1: torch.Tensor, tau: float, logits: torch.Tensor) -> torch.Tensor:
    """log density of y = (y1, 1 − y1) under Concrete(τ, softmax(logits)) w.r.t. dy1, by hand
    (Maddison et al. 2017, eq. 1 with K = 2): τ α1 α2 (y1 y2)^(−τ−1) / (α1 y1^−τ + α2 y2^−τ)²."""
    a1, a2 = torch.softmax(logits, -1).unbind(-1)
    y2 = 1 - y1
    return (math.log(tau) + a1.log() + a2.log() - (tau + 1) * (y1.log() + y2.log())
            - 2 * torch.log(a1 * y1 ** -tau + a2 * y2 ** -tau))


def test_log_density_is_the_concrete_density_times_its_jacobian():
    torch.manual_seed(0)
    logits = torch.randn(500, 5, dtype=torch.float64)
    q = LogSpaceConcrete(torch.tensor(0.7, dtype=torch.float64), logits)
    y = q.rsample()  # (500, 5)
    concrete = dist.RelaxedOneHotCategorical(torch.tensor(0.7, dtype=torch.float64), logits=logits)
    torch.testing.assert_close(q.log_prob(y), concrete.log_prob(y) + y.log().sum(-1))
    torch.testing.assert_close(q.log_prob(y.detach().clone()), q.log_prob(y))  # a value given from outside


def test_binary_case_matches_the_closed_form():
    torch.manual_seed(1)
    logits = torch.randn(300, 2, dtype=torch.float64)
    y = LogSpaceConcrete(torch.tensor(0.5, dtype=torch.float64), logits).rsample()  # (300, 2)
    expected = _binary_concrete_log_density(y[:, 0], 0.5, logits) + y.log().sum(-1)
    torch.testing.assert_close(LogSpaceConcrete(torch.tensor(0.5, dtype=torch.float64), logits).log_prob(y), expected)


@pytest.mark.parametrize("straight_through", [False, True])
def test_same_draws_and_gradients_as_pyros_concrete(straight_through):
    """Same Gumbel noise, same forward values; where nothing underflows, the same gradient."""
    logits = torch.randn(200, 4, requires_grad=True)
    weights = torch.randn(4)
    ours_cls = lambda: LogSpaceConcrete(torch.tensor(0.5), logits, straight_through)  # noqa: E731
    pyro_cls = dist.RelaxedOneHotCategoricalStraightThrough if straight_through else dist.RelaxedOneHotCategorical
    grads, values = [], []
    for make in (ours_cls, lambda: pyro_cls(torch.tensor(0.5), logits=logits)):
        torch.manual_seed(2)
        c = make().rsample()  # (200, 4)
        values.append(c.detach())
        grads.append(torch.autograd.grad((c * weights).sum(), logits)[0])
    torch.testing.assert_close(values[0], values[1], atol=1e-6, rtol=0)
    if straight_through:
        assert torch.equal(values[0].sum(-1), torch.ones(200)) and set(values[0].unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_a_confident_guide_gets_a_positive_kl_where_pyros_clamped_scoring_goes_negative():
    """The C = 10 failure: a guide sure of one component (losing logits −200, float32, τ = 0.5)
    against a uniform prior. Pyro's straight-through class clamps the underflowed y_k and scores
    the clamped point, a negative "KL" a guide can push without bound; the log-space score stays
    a sample of KL(q ‖ p) ≥ 0, equal to the float64 computation on the same draws."""
    logits_q = torch.full((1000, 10), -200.0)
    logits_q[:, 3] = 0.0
    tau = torch.tensor(0.5)
    torch.manual_seed(3)
    c = LogSpaceConcrete(tau, logits_q, straight_through=True).rsample()  # (1000, 10)
    kl = LogSpaceConcrete(tau, logits_q).log_prob(c) - LogSpaceConcrete(tau, torch.zeros(10)).log_prob(c)
    s64 = c._log_concrete.double()
    kl64 = (LogSpaceConcrete(tau.double(), logits_q.double()).log_prob(s64.exp())
            - LogSpaceConcrete(tau.double(), torch.zeros(10, dtype=torch.float64)).log_prob(s64.exp()))
    assert kl.mean() > 0 and torch.allclose(kl.double(), kl64, rtol=1e-3)
    torch.manual_seed(3)
    y = dist.RelaxedOneHotCategoricalStraightThrough(tau, logits=logits_q).rsample()
    pyro_kl = (dist.RelaxedOneHotCategoricalStraightThrough(tau, logits=logits_q).log_prob(y)
               - dist.RelaxedOneHotCategoricalStraightThrough(tau, logits=torch.zeros(10)).log_prob(y))
    assert pyro_kl.mean() < -1000  # the exploit the guide found on MNIST


def test_expand_keeps_the_straight_through_flag():
    d = LogSpaceConcrete(torch.tensor(1.0), torch.zeros(3), straight_through=True).expand((5,))
    c = d.rsample()
    assert d.batch_shape == (5,) and d.straight_through and set(c.unique().tolist()) == {0.0, 1.0}
    assert d.log_prob(c).shape == (5,)
