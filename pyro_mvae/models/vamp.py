"""The VampPrior: a mixture of the guide's own posteriors at learned pseudo-inputs.

    p(z) = (1/C) Σ_c q_φ(z | u_c),    u_c = sigmoid(w_c) ∈ (0, 1)^(C×H×W), the data's shape

(Tomczak & Welling 2018, eq. 9). The encoder is shared with the guide, so the prior changes
whenever the encoder does; the pseudo-inputs are trained with everything else and stay in the
data range by construction. With C = 500 the mixture's log-density is computed by matrix
products, not broadcasting (DESIGN.md §2; :mod:`pyro_mvae.distributions.mixtures`).
"""

import math
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from torch import nn

from pyro_mvae.config import option
from pyro_mvae.distributions.mixtures import DiagonalGaussianMixture
from pyro_mvae.models.base import Prior, PriorConfig


@dataclass
class VampConfig(PriorConfig):
    """Options of the VampPrior."""

    components: int = option(500, "C, the number of pseudo-inputs")

    def check(self):
        self.at_least("components", 1)


class VampPrior(Prior):
    """VampPrior with ``components`` = C pseudo-inputs (default 500). Its log-density is exact: a
    uniform mixture of the encoder's Gaussians ``base_posterior(u_c)`` (batch ``(C,)``, event
    ``(d,)``).

    The pseudo-inputs exist once :meth:`attach` has given the prior its encoder and the data's
    event shape (:func:`pyro_mvae.models.registry.build_vae` does this).

    It needs a guide that ``has_base_posterior`` (gaussian, flow).

    Raises:
        ConfigError: for ``components`` < 1.
    """

    name = "vamp"
    Config = VampConfig
    guide_needs = ("has_base_posterior",)

    def __init__(self, latent_dim: int, **options):
        super().__init__()
        self.latent_dim, self.components = latent_dim, self.configure(options).components
        self.__dict__["_encoder"] = None  # shared with the VAE, not a submodule of the prior

    def attach(self, guide, event_shape: tuple[int, ...]) -> None:
        """Share ``guide``'s encoder and create the C pseudo-inputs, initialised as sigmoid(N(0, 1))
        (spread over (0.27, 0.73) at ±1σ). Their logits are stored flat, ``(C, D)``, as 0.1.0
        saved them, so its checkpoints and optimiser states still load."""
        self.__dict__["_encoder"] = guide
        self.event_shape = tuple(event_shape)
        flat = torch.randn(self.components, math.prod(event_shape))  # device: moved with the VAE; (C, D)
        self.pseudo_logits = nn.Parameter(flat)

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        """u ``(C, *event)`` (images ``(C, channels, H, W)``), each value in (0, 1)."""
        return torch.sigmoid(self.pseudo_logits).unflatten(-1, self.event_shape)  # (C, D) -> (C, *event)

    def _components(self):
        return self._encoder.base_posterior(self.pseudo_inputs)  # batch (C,), event (d,)

    def marginal(self):
        """(1/C) Σ_c q(z | u_c): batch shape ``()``, event shape ``(d,)``; its log-density by
        matrix products (:class:`~pyro_mvae.distributions.mixtures.DiagonalGaussianMixture`)."""
        q = self._components().base_dist  # Normal, batch (C, d)
        weights = torch.zeros(self.components, device=self.pseudo_logits.device)
        return DiagonalGaussianMixture(weights, q.loc, q.scale)

    def marginal_per_dim(self):
        """Each z_j's marginal (1/C) Σ_c q(z_j | u_c): batch shape ``(d,)``."""
        q = self._components().base_dist  # Normal, batch (C, d)
        weights = torch.zeros(self.latent_dim, self.components, device=self.pseudo_logits.device)
        return dist.MixtureSameFamily(dist.Categorical(logits=weights), dist.Normal(q.loc.T, q.scale.T))
