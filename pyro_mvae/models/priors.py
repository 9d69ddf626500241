"""Priors over the latent z: one class per prior (DESIGN.md §1).

Every prior gives ``marginal()``: the distribution of z with any component choice summed out
exactly (batch shape ``()``, event shape ``(d,)``). Mixture priors also have a ``layout`` and
give ``choice(tau, straight_through)`` and ``conditional(c)``, the explicit ``"c"`` and ``"z"``
sites used when the guide chooses a component.
"""

from dataclasses import dataclass

import numpy as np
import pyro.distributions as dist
import torch
from torch import nn

from pyro_mvae.config import option
from pyro_mvae.models.base import Prior, PriorConfig
from pyro_mvae.models.layouts import PerDimensionLayout, WholeVectorLayout
from pyro_mvae.models.nets import MIN_SCALE, UNIT_SCALE_RAW, inverse_positive, positive


class StandardPrior(Prior):
    """Fixed p(z) = N(0, I_d). Has no component choice; no options."""

    name = "standard"
    analytic_kl = True  # with the Gaussian guide: TraceMeanField_ELBO

    def __init__(self, latent_dim: int, **options):
        super().__init__()
        self.configure(options)
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def marginal(self):
        """N(0, I): batch shape ``()``, event shape ``(d,)``."""
        return dist.Normal(self.loc, self.scale).to_event(1)

    def marginal_per_dim(self):
        """N(0, 1) for each z_j: batch shape ``(d,)``."""
        return dist.Normal(self.loc, self.scale)


@dataclass
class MixtureConfig(PriorConfig):
    """Options of the learned mixtures."""

    components: int = option(10, "C (mixture) or N (factorized_mixture), the number of components")
    init_spread: float = option(1.0, "component means start as init_spread · N(0, I)")
    learn_weights: bool = option(True, "false: the weights π stay uniform (a flat prior on the component c)")

    def check(self):
        self.at_least("components", 1)
        self.positive("init_spread")


class LearnedMixturePrior(Prior):
    """Learned mixture with weights softmax(logits), locs and scales laid out by a layout
    (``LAYOUT(latent_dim, components)``)."""

    has_components = True
    LAYOUT: type

    def __init__(self, latent_dim: int, **options):
        super().__init__()
        self.config = self.configure(options)
        self.layout = layout = self.LAYOUT(latent_dim, self.config.components)
        init_spread = self.config.init_spread
        if self.config.learn_weights:
            self.logits = nn.Parameter(torch.zeros(layout.logits_shape))
        else:  # a buffer: in the state dict as before, never trained
            self.register_buffer("logits", torch.zeros(layout.logits_shape))
        self.loc = nn.Parameter(init_spread * torch.randn(layout.table_shape))
        self.scale_raw = nn.Parameter(torch.full(layout.table_shape, UNIT_SCALE_RAW))

    @property
    def scale(self) -> torch.Tensor:
        """The components' standard deviations, :func:`~pyro_mvae.models.nets.positive` of the raw
        parameter, in the layout's table shape."""
        return positive(self.scale_raw)

    def marginal(self):
        """p(z) with the component summed out exactly; event shape ``(d,)``."""
        return self.layout.marginal(self.logits, self.loc, self.scale)

    def marginal_per_dim(self):
        """Each z_j's own marginal mixture: batch shape ``(d,)``."""
        return self.layout.marginal_per_dim(self.logits, self.loc, self.scale)

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """p(c | z): z ``(..., d)`` -> ``(..., C)`` or ``(..., d, N)``."""
        return self.layout.responsibilities(self.logits, self.loc, self.scale, z)

    @torch.no_grad()
    def fit_to(self, z: torch.Tensor, seed: int = 0) -> None:
        """Start the mixture from a Gaussian mixture fitted by EM to points z ``(N, d)``
        (scikit-learn's ``GaussianMixture``, diagonal covariances, k-means start, ``seed``): C
        components in d dimensions for the whole-vector layout, N components to each z_j for the
        per-dimension one. π, μ and σ take the fit's weights, means and standard deviations (π stays
        uniform when the weights are not learned). VaDE's initialisation fits the guide's means after
        a warm-up (Jiang et al. 2017, §3.3); ``trainer.gmm_init_epoch`` fits draws z ~ q(z | x).

        Raises:
            ValueError: for fewer points than components.
        """
        from sklearn.mixture import GaussianMixture

        points = z.detach().cpu().double().numpy()  # device: scikit-learn fits on the host
        if len(points) < self.layout.components:
            raise ValueError(f"{len(points)} points cannot fit {self.layout.components} components")
        columns = [points] if self.layout.logits_shape == (self.layout.components,) \
            else [points[:, j:j + 1] for j in range(points.shape[1])]  # whole vector, or each z_j
        fits = [GaussianMixture(self.layout.components, covariance_type="diag", random_state=seed).fit(c)
                for c in columns]
        device, dtype = self.loc.device, self.loc.dtype
        weights = torch.tensor(np.stack([f.weights_ for f in fits]), device=device, dtype=dtype)  # (1, C) or (d, N)
        means = torch.tensor(np.stack([f.means_ for f in fits]), device=device, dtype=dtype)  # (1, C, d) or (d, N, 1)
        stds = torch.tensor(np.sqrt(np.stack([f.covariances_ for f in fits])), device=device, dtype=dtype)  # as means
        shape = self.layout.table_shape
        self.loc.copy_(means.reshape(shape))
        self.scale_raw.copy_(inverse_positive(stds.reshape(shape).clamp_min(2 * MIN_SCALE)))
        if self.config.learn_weights:
            self.logits.copy_(weights.log().reshape(self.layout.logits_shape))

    @property
    def weights(self) -> torch.Tensor:
        """π = softmax(logits), ``(C,)`` or ``(d, N)``."""
        return torch.softmax(self.logits, -1)

    def choice(self, tau: float, straight_through: bool):
        """Relaxed prior over c at temperature τ, with the learned weights π = softmax(logits)."""
        return self.layout.choice(self.logits, tau, straight_through)

    def one_hot_choice(self):
        """One-hot c ~ Categorical(π) whose log-probability is linear in c (Gumbel-Rao guides)."""
        return self.layout.one_hot_choice(self.logits)

    def discrete_choice(self):
        """c ~ Categorical(π): one index per datapoint (``mixture``) or per dimension."""
        return self.layout.discrete_choice(self.logits)

    def conditional(self, c: torch.Tensor):
        """p(z | c) for a (relaxed) one-hot c of shape ``(B,) + layout.logits_shape``."""
        return self.layout.conditional(c, self.loc, self.scale)


class MixturePrior(LearnedMixturePrior):
    """p(z) = Σ_c π_c N(z; μ_c, diag σ_c²), C = ``components`` learned full-vector components."""

    name = "mixture"
    LAYOUT = WholeVectorLayout
    Config = MixtureConfig
    labels_component = True  # one c per image: a class label can observe it (semi-supervised M2)


@dataclass
class FactorizedMixtureConfig(MixtureConfig):
    """The seed's prior: N = 3 Gaussians per dimension by default."""

    components: int = option(3, "N, the Gaussians each latent dimension chooses among")


class FactorizedMixturePrior(LearnedMixturePrior):
    """p(z) = Π_j Σ_n π_jn N(z_j; μ_jn, σ_jn²): each dimension picks one of N = ``components``
    Gaussians (seed 001 §5). N^d modes from 3·d·N parameters.
    """

    name = "factorized_mixture"
    LAYOUT = PerDimensionLayout
    Config = FactorizedMixtureConfig
