"""One-hot categorical choices whose sample carries the Gumbel-Rao gradient (Paulus, Maddison &
Krause 2021, "Rao-Blackwellizing the Straight-Through Gumbel-Softmax Gradient Estimator").

Forward: c is an exact one-hot draw from Categorical(logits), drawn from the same Gumbel noise
as Pyro's straight-through Concrete (same seed, same c). Backward: the straight-through
gradient ∂softmax((logits + G)/τ)/∂logits is averaged over M Gumbel vectors G drawn *given*
that argmax(logits + G) = c, a Monte Carlo estimate of its conditional expectation:

    ∇ ≈ (1/M) Σ_m ∂ softmax((logits + G_m)/τ) / ∂logits,    G_m ~ Gumbel | argmax = c.

Its mean is the straight-through gradient's (the draw of c is unchanged), its variance lower.

The model's ``"c"`` site scores c with :class:`OneHotCategoricalLinear`, the categorical
log-probability c · log π written as a function that is linear in c, so the gradient through c
reaches every term of the ELBO, log p(c) included; the guide's log q(c | x) is the same function
of c with its zero-mean score term left out (:meth:`GumbelRaoOneHotCategorical.log_prob`).
"""

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch.distributions.utils import clamp_probs


class OneHotCategoricalLinear(dist.OneHotCategorical):
    """Categorical over one-hot vectors whose ``log_prob(c) = Σ_k c_k log π_k``.

    The same normalised probability mass as ``OneHotCategorical`` on one-hot values (torch's
    reads the index of c and so has no gradient in c); batch ``(...)``, event ``(K,)``.
    """

    def expand(self, batch_shape, _instance=None):
        """The same categorical broadcast to ``batch_shape``, still a :class:`OneHotCategoricalLinear`."""
        new = self._get_checked_instance(OneHotCategoricalLinear, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log π_c in nats for one-hot c ``(..., K)`` -> ``(...)``."""
        if self._validate_args:
            self._validate_sample(value)
        return (value * self.logits).sum(-1)  # logits are normalised: log π


class GumbelRaoOneHotCategorical(OneHotCategoricalLinear):
    """Exact one-hot draw c ~ Categorical(logits) with the Gumbel-Rao gradient at temperature τ.

    Args:
        temperature: τ > 0 of the relaxation whose gradient is averaged.
        logits: ``(..., K)``, unnormalised.
        rao_samples: M ≥ 1, conditional Gumbel draws per sample.
    """

    has_rsample = True

    def __init__(self, temperature: torch.Tensor, logits: torch.Tensor, rao_samples: int = 10,
                 validate_args=None):
        if rao_samples < 1:
            raise ValueError(f"guide.rao_samples must be >= 1, got {rao_samples}")
        self.temperature = temperature
        self.rao_samples = rao_samples
        super().__init__(logits=logits, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same categorical broadcast to ``batch_shape``, with the same temperature and
        ``rao_samples``."""
        new = self._get_checked_instance(GumbelRaoOneHotCategorical, _instance)
        new.temperature, new.rao_samples = self.temperature, self.rao_samples
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log q(c) in nats, ``(...)``; its gradient flows through c only.

        The score ∇_θ log q(c; θ) at fixed c has expectation zero under q and only adds variance,
        so it is left out ("sticking the landing", Roeder, Wu & Duvenaud 2017); the value is the
        exact normalised log-probability.
        """
        if self._validate_args:
            self._validate_sample(value)
        return (value * self.logits.detach()).sum(-1)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """One-hot c ``sample_shape + batch_shape + (K,)``; gradient: the Gumbel-Rao estimate."""
        shape = self._extended_shape(sample_shape)
        logits = self.logits.expand(shape)
        with torch.no_grad():  # the Gumbel draw of torch's ExpRelaxedCategorical.rsample
            uniforms = clamp_probs(torch.rand(shape, dtype=logits.dtype, device=logits.device))
            gumbels = -(-uniforms.log()).log()
            hard = F.one_hot((logits + gumbels).argmax(-1), shape[-1]).to(logits.dtype)
        relaxed = self._conditional_relaxed(logits, hard)
        return hard + (relaxed - relaxed.detach())

    def _conditional_relaxed(self, logits: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
        """(1/M) Σ_m softmax((logits + G_m)/τ) ``(..., K)``, G_m ~ Gumbel given argmax = hard.

        Top-down sampling (Maddison et al. 2014): with normalised logits θ and E ~ Exp(1), the
        maximum is θ_c + G_c = −log E_c and every other θ_k + G_k = −log(E_k e^{−θ_k} + E_c).
        The noise G_m is held fixed; the gradient flows through θ, as in the Gumbel-softmax.
        """
        with torch.no_grad():
            exp = torch.empty((self.rao_samples, *logits.shape), dtype=logits.dtype,
                              device=logits.device).exponential_()  # (M, ..., K)
            log_e = exp.clamp_min(torch.finfo(logits.dtype).tiny).log()
            log_e_top = (hard * log_e).sum(-1, keepdim=True)  # (M, ..., 1)
            others = -torch.logaddexp(log_e - logits, log_e_top)  # (M, ..., K)
            noise = hard * (-log_e_top) + (1 - hard) * others - logits  # G_m, (M, ..., K)
        return torch.softmax((logits + noise) / self.temperature, -1).mean(0)
