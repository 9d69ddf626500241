"""How a mixture over z is laid out: one choice per datapoint, or one choice per latent dimension.

A layout is shared by a mixture prior and the relaxed guide paired with it, so that both build
their component choice ``c`` and their distribution of ``z`` given ``c`` the same way.

- :class:`WholeVectorLayout` (prior ``mixture``): c is one-hot over C components, event shape
  ``(C,)``; parameter tables have shape ``(..., C, d)``; p(z) = Σ_c π_c N(z; μ_c, diag σ_c²).
- :class:`PerDimensionLayout` (prior ``factorized_mixture``, seed 001 §5): c is a one-hot
  ``d × N`` matrix D, event shape ``(d, N)``; tables have shape ``(..., d, N)``;
  p(z) = Π_j Σ_n π_jn N(z_j; μ_jn, σ_jn²) and z = row sums of D ⊙ μ (N^d modes).
"""

import pyro.distributions as dist
import torch
import torch.nn.functional as F

from pyro_mvae.distributions.concrete import LogSpaceConcrete
from pyro_mvae.distributions.gumbel_rao import GumbelRaoOneHotCategorical, OneHotCategoricalLinear
from pyro_mvae.distributions.mixtures import (
    ReparameterizedDiagNormalMixture,
    ReparameterizedNormalMixture,
    ScoreWeightsDiagNormalMixture,
    ScoreWeightsNormalMixture,
)


def relaxed_one_hot(tau: float, logits: torch.Tensor, straight_through: bool):
    """Concrete / Gumbel-softmax choice (Maddison et al. 2017; Jang et al. 2017), scored in log
    space (:class:`~pyro_mvae.distributions.concrete.LogSpaceConcrete`).

    ``straight_through=True``: samples are exactly one-hot in the forward pass, gradients flow
    through the relaxed sample, and ``log_prob`` scores the relaxed sample's log s = log y with
    the ExpConcrete density, so log q − log p of model and guide is the Concrete log ratio
    without float32 underflow (Pyro's own straight-through class clamps y and, with C = 10
    components, was exploited by the guide; see that module).

    Support validation is off for this one distribution: a float32 Concrete sample sums to 1
    only within ~1e-6, the tolerance of ``constraints.simplex``, and would be refused at random.
    """
    return LogSpaceConcrete(_temperature(tau, logits), logits, straight_through, validate_args=False)


def _temperature(tau: float, logits: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(tau, dtype=logits.dtype, device=logits.device)


def gumbel_rao_one_hot(tau: float, logits: torch.Tensor, rao_samples: int):
    """Exact one-hot c ~ Categorical(logits) with the Gumbel-Rao gradient of M = ``rao_samples``
    conditional relaxations at τ (Paulus et al. 2021); event shape ``(K,)``."""
    return GumbelRaoOneHotCategorical(_temperature(tau, logits), logits, rao_samples)


class WholeVectorLayout:
    """C components, each a full d-dimensional diagonal Gaussian."""

    enumerable = True  # C values per image: TraceEnum_ELBO can sum over them
    estimators = ("score_weights", "implicit")  # of the marginal-mixture guide, the default first
    stratifiable = True  # C strata per image: the stratified ELBO can sum over them

    def __init__(self, latent_dim: int, components: int):
        self.latent_dim = latent_dim
        self.components = components
        self.logits_shape = (components,)
        self.table_shape = (components, latent_dim)

    def select(self, c: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Mix table rows by c: c ``(..., C)``, table ``(..., C, d)`` -> ``(..., d)``."""
        return (c.unsqueeze(-1) * table).sum(-2)

    def choice(self, logits: torch.Tensor, tau: float, straight_through: bool):
        """Relaxed choice of c: logits ``(..., C)``; event shape ``(C,)``."""
        return relaxed_one_hot(tau, logits, straight_through)

    def gumbel_rao_choice(self, logits: torch.Tensor, tau: float, rao_samples: int):
        """One-hot c with the Gumbel-Rao gradient: logits ``(..., C)``; event shape ``(C,)``."""
        return gumbel_rao_one_hot(tau, logits, rao_samples)

    def one_hot_choice(self, logits: torch.Tensor):
        """One-hot c ~ Categorical(softmax(logits)), log-probability linear in c; event ``(C,)``."""
        return OneHotCategoricalLinear(logits=logits)

    def discrete_choice(self, logits: torch.Tensor):
        """c ~ Categorical(softmax(logits)), an index in {0..C−1}: logits ``(..., C)``, event ``()``."""
        return dist.Categorical(logits=logits)

    def one_hot(self, c: torch.Tensor) -> torch.Tensor:
        """Index c ``(...)`` -> one-hot ``(..., C)`` (float)."""
        return F.one_hot(c, self.components).float()

    def conditional(self, c, loc, scale):
        """z | c ~ N(Σ_c c μ_c, diag (Σ_c c σ_c)²); event shape ``(d,)``."""
        return dist.Normal(self.select(c, loc), self.select(c, scale)).to_event(1)

    def marginal(self, logits, loc, scale):
        """Σ_c softmax(logits)_c N(z; loc_c, diag scale_c²), c summed out; event shape ``(d,)``."""
        components = dist.Normal(loc, scale).to_event(1)  # batch (..., C), event (d,)
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), components)

    def reparameterized_marginal(self, logits, loc, scale, estimator: str = "score_weights"):
        """The same mixture as :meth:`marginal` with a gradient estimator: ``score_weights``
        (:class:`~pyro_mvae.distributions.mixtures.ScoreWeightsDiagNormalMixture`) or ``implicit``
        (:class:`~pyro_mvae.distributions.mixtures.ReparameterizedDiagNormalMixture`); batch
        ``(...,)``, event shape ``(d,)``."""
        if estimator == "implicit":
            return ReparameterizedDiagNormalMixture(logits, loc, scale)
        return ScoreWeightsDiagNormalMixture(logits, loc, scale)

    def marginal_per_dim(self, logits, loc, scale):
        """Each z_j's own marginal Σ_c π_c N(z_j; loc_cj, scale_cj²): batch ``(..., d)``, event ``()``."""
        d = loc.shape[-1]
        weights = logits.unsqueeze(-2).expand(*logits.shape[:-1], d, logits.shape[-1])  # (..., d, C)
        per_dim = dist.Normal(loc.transpose(-1, -2), scale.transpose(-1, -2))  # (..., d, C)
        return dist.MixtureSameFamily(dist.Categorical(logits=weights), per_dim)

    def responsibilities(self, logits, loc, scale, z):
        """p(c | z) ∝ π_c N(z; loc_c, diag scale_c²): z ``(..., d)`` -> ``(..., C)``."""
        log_joint = torch.log_softmax(logits, -1) + dist.Normal(loc, scale).to_event(1).log_prob(z.unsqueeze(-2))
        return torch.softmax(log_joint, -1)


class PerDimensionLayout:
    """Every latent dimension j chooses one of N scalar Gaussians (the seed's matrix D)."""

    enumerable = False  # N^d joint choices per image
    estimators = ("implicit", "score_weights")  # of the marginal-mixture guide, the default first
    stratifiable = False  # N^d strata per image

    def __init__(self, latent_dim: int, components: int):
        self.latent_dim = latent_dim
        self.components = components
        self.logits_shape = (latent_dim, components)
        self.table_shape = (latent_dim, components)

    def select(self, c: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Row sums of D ⊙ table: c and table ``(..., d, N)`` -> ``(..., d)``."""
        return (c * table).sum(-1)

    def choice(self, logits: torch.Tensor, tau: float, straight_through: bool):
        """Relaxed one-hot matrix D: logits ``(..., d, N)``; event shape ``(d, N)``."""
        return relaxed_one_hot(tau, logits, straight_through).to_event(1)

    def gumbel_rao_choice(self, logits: torch.Tensor, tau: float, rao_samples: int):
        """One-hot matrix D with the Gumbel-Rao gradient: logits ``(..., d, N)``; event ``(d, N)``."""
        return gumbel_rao_one_hot(tau, logits, rao_samples).to_event(1)

    def one_hot_choice(self, logits: torch.Tensor):
        """One-hot matrix D ~ Π_j Categorical(π_j), log-probability linear in D; event ``(d, N)``."""
        return OneHotCategoricalLinear(logits=logits).to_event(1)

    def discrete_choice(self, logits: torch.Tensor):
        """One index in {0..N−1} per dimension: logits ``(..., d, N)``, event shape ``(d,)``."""
        return dist.Categorical(logits=logits).to_event(1)

    def one_hot(self, c: torch.Tensor) -> torch.Tensor:
        """Indices c ``(..., d)`` -> one-hot matrix D ``(..., d, N)`` (float)."""
        return F.one_hot(c, self.components).float()

    def conditional(self, c, loc, scale):
        """z_j | D ~ N(Σ_n D_jn μ_jn, (Σ_n D_jn σ_jn)²); event shape ``(d,)``."""
        return dist.Normal(self.select(c, loc), self.select(c, scale)).to_event(1)

    def marginal(self, logits, loc, scale):
        """Π_j Σ_n softmax(logits_j)_n N(z_j; loc_jn, scale_jn²); event shape ``(d,)``."""
        return self.marginal_per_dim(logits, loc, scale).to_event(1)  # batch (...,), event (d,)

    def reparameterized_marginal(self, logits, loc, scale, estimator: str = "implicit"):
        """The same distribution as :meth:`marginal` with a gradient estimator: ``implicit``, each
        z_j drawn with implicit reparameterisation gradients
        (:class:`~pyro_mvae.distributions.mixtures.ReparameterizedNormalMixture`), or
        ``score_weights`` (:class:`~pyro_mvae.distributions.mixtures.ScoreWeightsNormalMixture`);
        event ``(d,)``."""
        if estimator == "score_weights":
            return ScoreWeightsNormalMixture(logits, loc, scale)
        return ReparameterizedNormalMixture(logits, loc, scale).to_event(1)

    def marginal_per_dim(self, logits, loc, scale):
        """Σ_n π_jn N(z_j; loc_jn, scale_jn²): batch ``(..., d)``, event ``()``."""
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale))

    def responsibilities(self, logits, loc, scale, z):
        """p(D_j = n | z_j) ∝ π_jn N(z_j; loc_jn, scale_jn²): z ``(..., d)`` -> ``(..., d, N)``."""
        log_joint = torch.log_softmax(logits, -1) + dist.Normal(loc, scale).log_prob(z.unsqueeze(-1))
        return torch.softmax(log_joint, -1)
