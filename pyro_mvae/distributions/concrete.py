"""The Concrete (Gumbel-softmax) choice of a component, scored in log space.

A Concrete sample y = softmax((logits + G)/τ) over K categories underflows in float32: at τ ≤ 1
with K = 10 most y_k of a confident q are exactly 0, and Pyro's straight-through variant clamps
them to ~1.2e-7 before scoring y with the Concrete density. That clamped point is not a draw of
q, and there log q(y) − log p(y) is no longer a sample of the KL: with a mixture prior of C = 10
components the guide learned to push its losing logits to −7e7, where log q(y_clamped) is −3e8,
and the "ELBO" rose without bound (README, the route study's C = 10 straight-through row).

Maddison, Mnih & Teh 2017 ("The Concrete Distribution", appendix C) advise working with
s = log y, whose density ExpConcrete(s; τ, logits) has no underflow. y = exp(s) is an invertible
map, so log q(s) − log p(s) = log q(y) − log p(y) exactly (the Jacobian Π y_k cancels between
guide and model): the same KL term, computed where it is finite.
"""

import torch
import torch.nn.functional as F
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical


class LogSpaceConcrete(TorchDistribution):
    """Relaxed one-hot choice over K categories whose ``log_prob`` is the ExpConcrete density of
    s = log y (Maddison et al. 2017, eq. 13 / appendix C), in nats.

    ``rsample``: s ~ ExpConcrete(τ, logits) (torch's ``ExpRelaxedCategorical``, the same Gumbel
    draw as Pyro's Concrete classes), y = exp(s); returns y, or with ``straight_through`` the
    one-hot argmax of y in the forward pass with y's gradient. The value carries s, and
    ``log_prob`` scores that s; a value that does not carry it (given from outside) is scored as
    a soft sample, s = log value. Batch ``(...)``, event ``(K,)``.

    Args:
        temperature: τ > 0 (a tensor on the logits' device).
        logits: ``(..., K)``, unnormalised.
        straight_through: one-hot forward values (the seed's matrix D), relaxed gradients.
    """

    arg_constraints = {"temperature": constraints.positive, "logits": constraints.real_vector}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, temperature: torch.Tensor, logits: torch.Tensor, straight_through: bool = False,
                 validate_args=None):
        self.log_space = ExpRelaxedCategorical(temperature, logits=logits, validate_args=False)
        self.temperature, self.logits = temperature, self.log_space.logits
        self.straight_through = straight_through
        super().__init__(self.log_space.batch_shape, self.log_space.event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> "LogSpaceConcrete":
        """The same choice with its logits broadcast to ``batch_shape + (K,)``."""
        logits = self.logits.expand(*batch_shape, *self.event_shape)  # (*batch_shape, K)
        return LogSpaceConcrete(self.temperature, logits, self.straight_through, validate_args=self._validate_args)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """y ``(*sample_shape, ..., K)`` on the simplex (one-hot with ``straight_through``)."""
        s = self.log_space.rsample(sample_shape)  # (..., K), log y: finite where y underflows
        y = s.exp()
        if self.straight_through:  # exactly one-hot forward (adding a zero), y's gradient backward
            y = F.one_hot(y.argmax(-1), y.shape[-1]).to(y) + (y - y.detach())
        y._log_concrete = s
        return y

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log ExpConcrete(s; τ, logits) in nats, s the log of the relaxed sample behind
        ``value`` ``(..., K)`` -> ``(...)``."""
        if self._validate_args:
            self._validate_sample(value)
        s = getattr(value, "_log_concrete", None)
        return self.log_space.log_prob(value.log() if s is None else s)
