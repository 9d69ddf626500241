"""A mixture of diagonal Gaussians whose log-density costs matrix products, not a broadcast.

log Σ_c π_c N(z; μ_c, diag σ_c²) by broadcasting (``MixtureSameFamily``) builds an ``(N, C, d)``
tensor: with C = 500 pseudo-inputs, d = 40 and N = K·B = 5000·100 particles that dominates an
IWAE-5000 evaluation (DESIGN.md §2). Expanding the quadratic,

    Σ_j (z_j − μ_cj)² / σ_cj² = Σ_j z_j² / σ_cj² − 2 Σ_j z_j μ_cj / σ_cj² + Σ_j μ_cj² / σ_cj²,

turns it into two ``(N, d) × (d, C)`` matrix products. They run in float64, because the three
terms can be large (σ down to 10⁻³) and nearly cancel. Every constant is kept: the result is the
normalised density, checked against ``MixtureSameFamily`` in the tests, and measured against it
by experiments/bench_mixture.py.
"""

import math

import pyro.distributions as dist
import torch
from pyro.distributions import constraints


class DiagonalGaussianMixture(dist.TorchDistribution):
    """Σ_c softmax(logits)_c N(z; loc_c, diag scale_c²): batch shape ``()``, event shape ``(d,)``.

    logits ``(C,)``, loc and scale ``(C, d)``. Sampling, mean and variance are those of the
    equal ``MixtureSameFamily``; only ``log_prob`` differs in how it computes.
    """

    arg_constraints = {"logits": constraints.real_vector, "loc": constraints.real,
                       "scale": constraints.positive}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        self.logits, self.loc, self.scale = logits, loc, scale
        super().__init__(torch.Size(), loc.shape[-1:], validate_args=validate_args)

    def as_mixture_same_family(self):
        """The same distribution as Pyro's broadcasting ``MixtureSameFamily``."""
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits),
                                      dist.Normal(self.loc, self.scale).to_event(1))

    def sample(self, sample_shape=torch.Size()):
        return self.as_mixture_same_family().sample(sample_shape)

    @property
    def mean(self):
        return self.as_mixture_same_family().mean

    @property
    def variance(self):
        return self.as_mixture_same_family().variance

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log p(z) in nats: z ``(..., d)`` -> ``(...)``."""
        d = self.loc.shape[-1]
        z = value.reshape(-1, d).double()  # (N, d)
        precision = self.scale.double().pow(-2)  # (C, d)
        loc = self.loc.double()
        quad = (z.pow(2) @ precision.T - 2 * z @ (loc * precision).T
                + (loc.pow(2) * precision).sum(-1))  # (N, C)
        log_det = self.scale.double().log().sum(-1)  # (C,)
        log_normal = -0.5 * quad - log_det - 0.5 * d * math.log(2 * math.pi)  # (N, C)
        log_mix = torch.logsumexp(log_normal + torch.log_softmax(self.logits.double(), -1), dim=-1)  # (N,)
        return log_mix.to(value.dtype).reshape(value.shape[:-1])
