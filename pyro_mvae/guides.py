"""Guides q(z[, c] | x): amortised encoders that define the guide's sample sites (DESIGN.md §1).

Each guide gives
- ``sample_sites(x, tau)``: the ``pyro.sample`` statements of the guide (called inside the
  ``"data"`` plate by :meth:`pyro_mvae.model.VAE.guide`);
- ``posterior(x)``: q(z | x) with any component summed out exactly, batch shape ``(B,)``,
  event shape ``(d,)``, used by the IWAE estimator.
"""

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_mvae.nets import MLP, positive


class PairingError(ValueError):
    """A prior/guide pair that does not form a valid ELBO."""


class GaussianGuide(nn.Module):
    """q(z | x) = N(μ_φ(x), diag σ_φ(x)²), reparameterised. Pairs with every prior.

    ``layout`` is accepted for a uniform constructor and unused: with this guide the model
    marginalises any mixture component exactly.
    """

    chooses_component = False
    straight_through = False

    def __init__(self, data_dim: int, latent_dim: int, hidden=(300, 300), layout=None):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = MLP(data_dim, hidden, 2 * latent_dim)

    def posterior(self, x: torch.Tensor):
        """x ``(B, D)`` -> N(μ, diag σ²) with batch ``(B,)``, event ``(d,)``."""
        loc, scale_raw = self.net(x).split(self.latent_dim, dim=-1)  # 2 × (B, d)
        return dist.Normal(loc, positive(scale_raw)).to_event(1)

    def posterior_per_dim(self, x: torch.Tensor):
        """q(z_j | x) for each dimension: batch ``(B, d)``."""
        return self.posterior(x).base_dist

    def sample_sites(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Site ``"z"`` ~ q(z | x); returns z ``(B, d)``. τ is unused."""
        return pyro.sample("z", self.posterior(x))


class RelaxedMixtureGuide(nn.Module):
    """q(c, z | x) = Concrete(c; τ, logits_φ(x)) · N(z; Σ c μ_φ(x), diag (Σ c σ_φ(x))²).

    Component choice by Gumbel-softmax (Jang et al. 2017) / Concrete (Maddison et al. 2017);
    ``straight_through=True`` makes c exactly one-hot in the forward pass (the seed's matrix D).
    Needs a mixture prior: its ``layout`` fixes the shapes (C components, or d × N).

    Raises:
        PairingError: when the prior has no component choice (``layout is None``).
    """

    chooses_component = True

    def __init__(self, data_dim: int, latent_dim: int, hidden=(300, 300), layout=None,
                 straight_through: bool = True):
        super().__init__()
        if layout is None:
            raise PairingError(
                "guide 'relaxed_mixture' chooses a mixture component, but the prior has none "
                "(prior 'standard'): use prior=mixture or prior=factorized_mixture with it, "
                "or guide=gaussian with the standard prior")
        self.latent_dim = latent_dim
        self.layout = layout
        self.straight_through = straight_through
        self._n_logits = math.prod(layout.logits_shape)
        self._n_table = math.prod(layout.table_shape)
        self.net = MLP(data_dim, hidden, self._n_logits + 2 * self._n_table)

    def component_params(self, x: torch.Tensor):
        """x ``(B, D)`` -> logits ``(B, *logits_shape)``, loc and scale ``(B, *table_shape)``."""
        B = x.shape[0]
        out = self.net(x)  # (B, n_logits + 2 n_table)
        logits, loc, scale_raw = out.split([self._n_logits, self._n_table, self._n_table], -1)
        return (logits.reshape(B, *self.layout.logits_shape),
                loc.reshape(B, *self.layout.table_shape),
                positive(scale_raw).reshape(B, *self.layout.table_shape))

    def posterior(self, x: torch.Tensor):
        """The discrete mixture q(z | x) = Σ_c q(c | x) q(z | c, x), c summed out; event ``(d,)``."""
        return self.layout.marginal(*self.component_params(x))

    def posterior_per_dim(self, x: torch.Tensor):
        """q(z_j | x), each dimension's marginal mixture: batch ``(B, d)``."""
        return self.layout.marginal_per_dim(*self.component_params(x))

    def component_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(c | x) of the discrete choice: ``(B, C)`` or ``(B, d, N)``."""
        return torch.softmax(self.component_params(x)[0], -1)

    def sample_sites(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Sites ``"c"`` ~ Concrete(τ, logits) and ``"z"`` ~ q(z | c, x); returns z ``(B, d)``."""
        logits, loc, scale = self.component_params(x)
        c = pyro.sample("c", self.layout.choice(logits, tau, self.straight_through))
        return pyro.sample("z", self.layout.conditional(c, loc, scale))
