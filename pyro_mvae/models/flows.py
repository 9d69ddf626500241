"""Normalising flows from Pyro's transforms: a Real-NVP prior and a conditional-flow guide.

Real-NVP (Dinh et al. 2017; seed 002): each layer is an affine coupling, y_a = x_a,
y_b = x_b ⊙ exp(s(x_a)) + t(x_a), log|det J| = Σ s(x_a), exactly invertible; the dimensions are
reversed between layers (a fixed permutation, log|det| = 0). The couplings are
``pyro.distributions.transforms.AffineCoupling`` (guide: ``ConditionalAffineCoupling``, whose s
and t also see a context vector computed from x).
"""

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn

from pyro_mvae.config import option
from pyro_mvae.errors import ConfigError
from pyro_mvae.models.base import Guide, Prior
from pyro_mvae.models.guides import GuideConfig, guide_scale
from pyro_mvae.models.priors import MixtureConfig, MixturePrior, StandardPrior


def _reversal(n: int) -> torch.Tensor:
    return torch.arange(n - 1, -1, -1)  # device: a buffer, moved with its module


@dataclass
class FlowPriorConfig(MixtureConfig):
    """Options of the Real-NVP prior (``components`` and ``init_spread``: its mixture base)."""

    layers: int = option(4, "affine couplings")
    hidden: list[int] = option([64, 64], "hidden sizes of each coupling's network")
    base: str = option("standard", "standard: N(0, I) | mixture: a learned mixture of `components` Gaussians")

    def check(self):
        super().check()
        self.at_least("layers", 1)
        self.each_at_least("hidden", 1)
        self.one_of("base", ("standard", "mixture"))


class FlowPrior(Prior):
    """p(z): a base distribution pushed through ``layers`` Real-NVP affine couplings.

    ``base="standard"``: N(0, I); ``base="mixture"``: a learned mixture of ``components``
    diagonal Gaussians (a multimodal base with a flexible shape). ``hidden``: hidden sizes of
    each coupling's network. The log-density is exact (change of variables).

    Raises:
        ConfigError: for a bad option, or ``latent_dim`` < 2.
    """

    name = "flow"
    Config = FlowPriorConfig

    def __init__(self, latent_dim: int, **options):
        super().__init__()
        cfg = self.configure(options)
        _check_splittable("prior", latent_dim)
        self.base = (StandardPrior(latent_dim) if cfg.base == "standard"
                     else MixturePrior(latent_dim, components=cfg.components, init_spread=cfg.init_spread))
        self.couplings = nn.ModuleList(T.affine_coupling(latent_dim, hidden_dims=list(cfg.hidden))
                                       for _ in range(cfg.layers))
        self.register_buffer("reversal", _reversal(latent_dim))

    def transforms(self) -> list:
        """[coupling, reversal, coupling, reversal, ...]: base -> z."""
        out = []
        for coupling in self.couplings:
            out += [coupling, T.Permute(self.reversal)]
        return out

    def marginal(self):
        """The flow's density over z: batch shape ``()``, event shape ``(d,)``."""
        return dist.TransformedDistribution(self.base.marginal(), self.transforms())


def _check_splittable(group: str, latent_dim: int) -> None:
    if latent_dim < 2:
        raise ConfigError(f"{group} 'flow' needs net.latent_dim >= 2 (a coupling splits z in two), "
                          f"got {latent_dim}")


@dataclass
class FlowGuideConfig(GuideConfig):
    """Options of the conditional-flow guide."""

    layers: int = option(2, "conditional affine couplings")
    flow_hidden: list[int] = option([64, 64], "hidden sizes of each coupling's network")
    context_dim: int = option(32, "size of the context h(x) the couplings see")

    def check(self):
        super().check()
        self.at_least("layers", 1)
        self.each_at_least("flow_hidden", 1)
        self.at_least("context_dim", 1)


class FlowGuide(Guide):
    """q(z | x): N(μ_φ(x), diag σ_φ(x)²) pushed through ``layers`` conditional affine couplings
    whose networks (``flow_hidden``) also see a context h_φ(x) of ``context_dim`` values, so
    q(z | x) is no longer diagonal. Reparameterised; the model marginalises any mixture
    component exactly, as with the Gaussian guide.
    """

    name = "flow"
    Config = FlowGuideConfig
    has_base_posterior = True

    def __init__(self, body: nn.Module, features: int, latent_dim: int, layout=None, event_shape=None,
                 **options):
        super().__init__()
        cfg = self.config = self.configure(options)
        _check_splittable("guide", latent_dim)
        self.latent_dim, self.context_dim = latent_dim, cfg.context_dim
        self.init_encoder(body, features, 2 * latent_dim + cfg.context_dim)
        self.couplings = nn.ModuleList(
            T.conditional_affine_coupling(latent_dim, cfg.context_dim, hidden_dims=list(cfg.flow_hidden))
            for _ in range(cfg.layers))
        self.register_buffer("reversal", _reversal(latent_dim))

    def _encode(self, x: torch.Tensor):
        """x ``(B, *event)`` -> q0 = N(μ, diag σ²) (batch ``(B,)``, event ``(d,)``), context ``(B, c)``."""
        loc, scale_raw, context = self.encode(x).split([self.latent_dim, self.latent_dim, self.context_dim], -1)
        return dist.Normal(loc, guide_scale(scale_raw, self.config)).to_event(1), context

    def base_posterior(self, x: torch.Tensor):
        """The Gaussian q0(z0 | x) before the flow (shared by the VampPrior)."""
        return self._encode(x)[0]

    def posterior(self, x: torch.Tensor):
        """q(z | x), batch ``(B,)``, event ``(d,)``; its log-density is exact."""
        base, context = self._encode(x)
        transforms = []
        for coupling in self.couplings:
            transforms += [coupling.condition(context), T.Permute(self.reversal)]
        return dist.TransformedDistribution(base, transforms)

    @torch.no_grad()
    def mean(self, x: torch.Tensor, num_samples: int = 64) -> torch.Tensor:
        """E_q[z | x] ``(B, d)`` by Monte Carlo (a flow has no closed-form mean)."""
        return self.posterior(x).sample((num_samples,)).mean(0)

    def sample_sites(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Site ``"z"`` ~ q(z | x); returns z ``(B, d)``. τ is unused."""
        return pyro.sample("z", self.posterior(x))
