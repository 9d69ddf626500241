"""The VampPrior: a mixture of the guide's own posteriors at learned pseudo-inputs.

    p(z) = (1/C) Σ_c q_φ(z | u_c),    u_c = sigmoid(w_c) ∈ (0, 1)^(C×H×W), the data's shape

(Tomczak & Welling 2018, eq. 9), or u_c = hardtanh(w_c, 0, 1) ∈ [0, 1], the paper's code. The
encoder is shared with the guide, so the prior changes whenever the encoder does; the
pseudo-inputs are trained with everything else and stay in the data range by construction.
With C = 500 the mixture's log-density is computed by matrix products, not broadcasting
(DESIGN.md §2; :mod:`pyro_mvae.distributions.mixtures`).
"""

import math
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from torch import nn

from pyro_mvae.config import option
from pyro_mvae.distributions.mixtures import DiagonalGaussianMixture
from pyro_mvae.models.base import Prior, PriorConfig
from pyro_mvae.models.modes import evaluation_scope


@dataclass
class VampConfig(PriorConfig):
    """Options of the VampPrior."""

    components: int = option(500, "C, the number of pseudo-inputs")
    pseudo_inputs: str = option("sigmoid", "u = sigmoid(w) | hardtanh: u = w clipped to [0, 1] (the paper's code; "
                                           "no gradient where w is outside)")
    init_mean: float = option(0.0, "w ~ N(init_mean, init_std²) at the start (the paper's code: hardtanh with "
                                   "0.05 and 0.01)")
    init_std: float = option(1.0, "the spread of the starting w")

    def check(self):
        self.at_least("components", 1)
        self.one_of("pseudo_inputs", ("sigmoid", "hardtanh"))
        self.positive("init_std")


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
        self.config = self.configure(options)
        self.latent_dim, self.components = latent_dim, self.config.components
        self.__dict__["_encoder"] = None  # shared with the VAE, not a submodule of the prior
        self.__dict__["_kept"] = None  # (evaluation scope, components): see _components

    def attach(self, guide, event_shape: tuple[int, ...]) -> None:
        """Share ``guide``'s encoder and create the C pseudo-inputs' parameters w ~ N(init_mean,
        init_std²) (by default sigmoid(N(0, 1)), spread over (0.27, 0.73) at ±1σ). They are stored
        flat, ``(C, D)``, as 0.1.0 saved them, so its checkpoints and optimiser states still load."""
        self.__dict__["_encoder"] = guide
        self.event_shape = tuple(event_shape)
        flat = torch.randn(self.components, math.prod(event_shape))  # device: moved with the VAE; (C, D)
        self.pseudo_logits = nn.Parameter(flat * self.config.init_std + self.config.init_mean)

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        """u ``(C, *event)`` (images ``(C, channels, H, W)``), each value in [0, 1]."""
        w = self.pseudo_logits
        u = torch.sigmoid(w) if self.config.pseudo_inputs == "sigmoid" else nn.functional.hardtanh(w, 0.0, 1.0)
        return u.unflatten(-1, self.event_shape)  # (C, D) -> (C, *event)

    def _components(self):
        """q(z | u_c) for the C pseudo-inputs: batch ``(C,)``, event ``(d,)``.

        Within one evaluation (an :func:`~pyro_mvae.models.modes.eval_mode` block, gradients off,
        not under ``torch.compile``) they are computed once and kept to the end of the block, so a
        validation pass or an IWAE evaluation encodes the C pseudo-inputs once instead of at every
        batch and chunk of particles; the values are the same. Outside such a block they are
        computed at every call (parameters may change between calls: an optimiser's in-place step
        does not always advance a tensor's version counter, so no key on the tensors would do)."""
        scope = evaluation_scope()
        if scope is None or torch.is_grad_enabled() or self._encoder.training or torch.compiler.is_compiling():
            return self._encoder.base_posterior(self.pseudo_inputs)
        if self._kept is None or self._kept[0] != scope:
            self.__dict__["_kept"] = (scope, self._encoder.base_posterior(self.pseudo_inputs))
        return self._kept[1]

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
