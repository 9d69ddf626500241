"""Normalising flows from Pyro's transforms: a Real-NVP prior and a conditional-flow guide.

Real-NVP (Dinh et al. 2017; seed 002): each layer is an affine coupling, y_a = x_a,
y_b = x_b ⊙ exp(s(x_a)) + t(x_a), log|det J| = Σ s(x_a), exactly invertible; the dimensions are
reversed between layers (a fixed permutation, log|det| = 0). The couplings are
``pyro.distributions.transforms.AffineCoupling`` (guide: ``ConditionalAffineCoupling``, whose s
and t also see a context vector computed from x).
"""

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn

from pyro_mvae.nets import encoder_net, positive
from pyro_mvae.priors import MixturePrior, StandardPrior


def _reversal(n: int) -> torch.Tensor:
    return torch.arange(n - 1, -1, -1)  # device: a buffer, moved with its module


class FlowPrior(nn.Module):
    """p(z): a base distribution pushed through ``layers`` Real-NVP affine couplings.

    ``base="standard"``: N(0, I); ``base="mixture"``: a learned mixture of ``components``
    diagonal Gaussians (a multimodal base with a flexible shape). ``hidden``: hidden sizes of
    each coupling's network. The log-density is exact (change of variables).

    Raises:
        ValueError: for an unknown base or ``layers`` < 1.
    """

    layout = None
    analytic_kl = False
    BASES = ("standard", "mixture")

    def __init__(self, latent_dim: int, layers: int = 4, hidden=(64, 64), base: str = "standard",
                 components: int = 10, init_spread: float = 1.0):
        super().__init__()
        if base not in self.BASES:
            raise ValueError(f"prior.base must be one of {', '.join(self.BASES)}, got '{base}'")
        if layers < 1 or latent_dim < 2:
            raise ValueError(f"prior 'flow' needs prior.layers >= 1 and net.latent_dim >= 2 (a coupling "
                             f"splits z in two), got {layers} and {latent_dim}")
        self.base = (StandardPrior(latent_dim) if base == "standard"
                     else MixturePrior(latent_dim, components, init_spread))
        self.couplings = nn.ModuleList(T.affine_coupling(latent_dim, hidden_dims=list(hidden))
                                       for _ in range(layers))
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


class FlowGuide(nn.Module):
    """q(z | x): N(μ_φ(x), diag σ_φ(x)²) pushed through ``layers`` conditional affine couplings
    whose networks (``flow_hidden``) also see a context h_φ(x) of ``context_dim`` values, so
    q(z | x) is no longer diagonal. Reparameterised; the model marginalises any mixture
    component exactly, as with the Gaussian guide.
    """

    name = "flow"
    chooses_component = False
    reparameterized = True
    enumerable = False
    elbo_bounds_discrete_model = True
    analytic_kl = False

    def __init__(self, data_dim: int, latent_dim: int, hidden=(300, 300), layout=None, layers: int = 2,
                 flow_hidden=(64, 64), context_dim: int = 32, net: str = "mlp"):
        super().__init__()
        if layers < 1 or latent_dim < 2 or context_dim < 1:
            raise ValueError(f"guide 'flow' needs guide.layers >= 1, guide.context_dim >= 1 and "
                             f"net.latent_dim >= 2, got {layers}, {context_dim} and {latent_dim}")
        self.latent_dim, self.context_dim = latent_dim, context_dim
        self.net = encoder_net(net, data_dim, hidden, 2 * latent_dim + context_dim)
        self.couplings = nn.ModuleList(
            T.conditional_affine_coupling(latent_dim, context_dim, hidden_dims=list(flow_hidden))
            for _ in range(layers))
        self.register_buffer("reversal", _reversal(latent_dim))

    def _encode(self, x: torch.Tensor):
        """x ``(B, D)`` -> q0 = N(μ, diag σ²) (batch ``(B,)``, event ``(d,)``), context ``(B, c)``."""
        loc, scale_raw, context = self.net(x).split([self.latent_dim, self.latent_dim, self.context_dim], -1)
        return dist.Normal(loc, positive(scale_raw)).to_event(1), context

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
