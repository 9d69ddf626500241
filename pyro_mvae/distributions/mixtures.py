"""The package's own mixture distributions.

:class:`ScoreWeightsDiagNormalMixture`: a mixture of diagonal Gaussians whose gradient is exact
in expectation with a bounded score for the weights (the marginal-mixture guide's default for
whole vectors). :class:`ReparameterizedNormalMixture` and
:class:`ReparameterizedDiagNormalMixture`: a scalar mixture of normals and a mixture of diagonal
Gaussians that sample with implicit reparameterisation gradients (the per-dimension layout, and
the whole-vector layout's ``estimator=implicit``).

:class:`DiagonalGaussianMixture`: a mixture of diagonal Gaussians whose log-density costs
matrix products, not a broadcast.

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
from pyro.distributions.score_parts import ScoreParts
from torch.distributions.utils import _standard_normal


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
        """z ``sample_shape + (d,)``, drawn as :meth:`as_mixture_same_family` draws it."""
        return self.as_mixture_same_family().sample(sample_shape)

    @property
    def mean(self):
        """E[z] = Σ_c softmax(logits)_c loc_c, ``(d,)``."""
        return self.as_mixture_same_family().mean

    @property
    def variance(self):
        """Var[z] per coordinate, ``(d,)`` (the law of total variance over c)."""
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


class ReparameterizedNormalMixture(dist.MixtureSameFamily):
    """Σ_n softmax(logits)_n N(z; loc_n, scale_n²) of a scalar z, with pathwise gradients.

    logits, loc and scale ``(..., N)``: batch shape ``(...)``, event shape ``()``. ``log_prob``,
    ``cdf``, ``mean`` and ``sample`` are those of Pyro's ``MixtureSameFamily``; ``rsample``
    draws z the same way and gives it the implicit reparameterisation gradient (Figurnov, Mohamed
    & Mnih 2018, eq. 7; Graves 2016)

        ∂z/∂θ = −(∂F(z; θ)/∂θ) / q(z; θ),    F the mixture's CDF, q its density,

    computed in float64: for the weights it is −w_m (Φ_m(z) − F(z)) / q(z), a difference of CDFs
    near 1 divided by a small density in the tails, which float32 would round to noise.
    """

    has_rsample = True

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        super().__init__(dist.Categorical(logits=logits), dist.Normal(loc, scale), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same mixture broadcast to ``batch_shape``, still a :class:`ReparameterizedNormalMixture`."""
        new = self._get_checked_instance(ReparameterizedNormalMixture, _instance)
        return super().expand(batch_shape, _instance=new)

    def _float64(self) -> dist.MixtureSameFamily:
        normal = self.component_distribution
        return dist.MixtureSameFamily(dist.Categorical(logits=self.mixture_distribution.logits.double()),
                                      dist.Normal(normal.loc.double(), normal.scale.double()))

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """z ``sample_shape + batch_shape``; its value is a draw of ``sample``."""
        with torch.no_grad():
            z = self.sample(sample_shape)
        exact = self._float64()
        cdf = exact.cdf(z.double())  # (*sample_shape, ...), differentiable in the parameters
        density = exact.log_prob(z.double()).exp().detach()
        return z + ((cdf.detach() - cdf) / density).to(z.dtype)  # value z, gradient −∂F/∂θ / q


class _ScoreWeights:
    """What both score-weights mixtures share: ``score_parts`` for Pyro's ELBOs."""

    has_rsample = False  # partly: sample() is pathwise given c; the weights' part is a score

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        """log q(z) ``(...)`` as the log-density and the entropy term (differentiated through z),
        and log q(z) with z, loc and scale held fixed as the score function: its gradient is
        r(z) − w for the logits and 0 for the rest."""
        log_prob = self.log_prob(value)
        return ScoreParts(log_prob=log_prob, score_function=self._weights_log_prob(value.detach()),
                          entropy_term=log_prob)

    def _weights_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log q(z) differentiable in the logits only (loc and scale detached)."""
        raise NotImplementedError


class ScoreWeightsDiagNormalMixture(_ScoreWeights, dist.MixtureSameFamily):
    """Σ_c softmax(logits)_c N(z; loc_c, diag scale_c²) over z in R^d: pathwise gradients for the
    locations and scales, the score of q(z) for the weights.

    logits ``(..., C)``, loc and scale ``(..., C, d)``: batch ``(...)``, event ``(d,)``; log-density
    and law are Pyro's ``MixtureSameFamily``'s. :meth:`sample` draws c ~ Categorical(w) and
    z = loc_c + scale_c ε, differentiable in loc and scale. Since
    E_q[f] = Σ_c w_c E_{N(loc_c, scale_c)}[f],

        ∂E_q[f]/∂(loc, scale) = E[∂f(loc_c + scale_c ε)/∂(loc, scale)]           (pathwise, given c)
        ∂E_q[f]/∂logit_k      = E[f(z) (δ_ck − w_k)] = E[f(z) (r_k(z) − w_k)],

    the second Rao-Blackwellised over c given z, r_k(z) = w_k N_k(z) / q(z) the responsibility:
    ∂ log q(z)/∂logit_k at fixed z, locations and scales. ``score_parts`` hands that score to
    Pyro's ELBOs (``Trace_ELBO`` multiplies it by the per-datapoint cost; ``TraceGraph_ELBO``
    subtracts a baseline first), so the estimate is exact in expectation for every parameter,
    and the weights' per-sample gradient is ``|cost|`` times a number in [−1, 1]: no heavy tail where
    the components are far apart, unlike the implicit gradient of
    :class:`ReparameterizedDiagNormalMixture` (the pathwise/score split of Schulman et al. 2015,
    "Gradient Estimation Using Stochastic Computation Graphs", with the score of the marginal).
    ``has_rsample`` is False so that ``TraceGraph_ELBO`` applies its baselines (Mnih & Gregor
    2014); ``RenyiELBO`` refuses partly reparameterised sites. :meth:`strata` gives one draw per
    component for the stratified ELBO (:class:`~pyro_mvae.infer.stratified.StratifiedELBO`),
    whose weights' gradient has no score term at all.
    """

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        super().__init__(dist.Categorical(logits=logits), dist.Normal(loc, scale).to_event(1),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same mixture broadcast to ``batch_shape``, still a :class:`ScoreWeightsDiagNormalMixture`."""
        new = self._get_checked_instance(ScoreWeightsDiagNormalMixture, _instance)
        return super().expand(batch_shape, _instance=new)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """z ``sample_shape + batch_shape + (d,)``, differentiable in loc and scale given its c."""
        normal = self.component_distribution.base_dist
        c = self.mixture_distribution.sample(sample_shape)  # (S..., ...)
        table_shape = c.shape + normal.loc.shape[-2:]  # (S..., ..., C, d)
        index = c[..., None, None].expand(*c.shape, 1, table_shape[-1])  # (S..., ..., 1, d)
        loc = normal.loc.expand(table_shape).gather(-2, index).squeeze(-2)  # (S..., ..., d)
        scale = normal.scale.expand(table_shape).gather(-2, index).squeeze(-2)  # (S..., ..., d)
        return loc + scale * _standard_normal(loc.shape, dtype=loc.dtype, device=loc.device)

    def strata(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw per component for the stratified ELBO (:mod:`pyro_mvae.infer.stratified`):
        z ``(C, *batch, d)``, z_c = loc_c + scale_c ε_c (differentiable in loc and scale), and
        log w ``(C, *batch)`` (differentiable in the logits)."""
        normal = self.component_distribution.base_dist
        loc, scale = normal.loc.movedim(-2, 0), normal.scale.movedim(-2, 0)  # (C, *batch, d)
        z = loc + scale * _standard_normal(loc.shape, dtype=loc.dtype, device=loc.device)
        return z, torch.log_softmax(self.mixture_distribution.logits, -1).movedim(-1, 0)  # (C, *batch)

    def _weights_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        normal = self.component_distribution.base_dist
        fixed = dist.Normal(normal.loc.detach(), normal.scale.detach()).to_event(1)
        return dist.MixtureSameFamily(self.mixture_distribution, fixed).log_prob(value)


class ScoreWeightsNormalMixture(_ScoreWeights, dist.TorchDistribution):
    """Π_j Σ_n softmax(logits_j)_n N(z_j; loc_jn, scale_jn²), each z_j its own scalar mixture (the
    seed's per-dimension prior layout), with the gradient of :class:`ScoreWeightsDiagNormalMixture`
    per dimension: z_j = loc_jc + scale_jc ε given its c_j, and the weights' score
    r_jn(z_j) − w_jn times the cost.

    logits, loc and scale ``(..., d, N)``: batch ``(...)``, event ``(d,)``. The density is the sum
    over j of Pyro's scalar ``MixtureSameFamily`` log-densities.
    """

    arg_constraints = {"logits": constraints.real, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real_vector

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        self.logits, self.loc, self.scale = torch.broadcast_tensors(logits, loc, scale)
        super().__init__(self.loc.shape[:-2], self.loc.shape[-2:-1], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same mixtures broadcast to ``batch_shape``, still a :class:`ScoreWeightsNormalMixture`."""
        new = self._get_checked_instance(ScoreWeightsNormalMixture, _instance)
        table = torch.Size(batch_shape) + self.loc.shape[-2:]
        new.logits, new.loc, new.scale = self.logits.expand(table), self.loc.expand(table), self.scale.expand(table)
        super(ScoreWeightsNormalMixture, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _mixture(self, loc, scale) -> dist.MixtureSameFamily:
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), dist.Normal(loc, scale))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log q(z) in nats: z ``(..., d)`` -> ``(...)``."""
        return self._mixture(self.loc, self.scale).log_prob(value).sum(-1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """z ``sample_shape + batch_shape + (d,)``, differentiable in loc and scale given its c."""
        c = dist.Categorical(logits=self.logits).sample(sample_shape)  # (S..., ..., d)
        table_shape = c.shape + self.loc.shape[-1:]  # (S..., ..., d, N)
        loc = self.loc.expand(table_shape).gather(-1, c.unsqueeze(-1)).squeeze(-1)  # (S..., ..., d)
        scale = self.scale.expand(table_shape).gather(-1, c.unsqueeze(-1)).squeeze(-1)  # (S..., ..., d)
        return loc + scale * _standard_normal(loc.shape, dtype=loc.dtype, device=loc.device)

    @property
    def mean(self):
        """E[z_j] = Σ_n softmax(logits_j)_n loc_jn, ``batch_shape + (d,)``."""
        return self._mixture(self.loc, self.scale).mean

    @property
    def variance(self):
        """Var[z_j] of each scalar mixture, ``batch_shape + (d,)``."""
        return self._mixture(self.loc, self.scale).variance

    def _weights_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._mixture(self.loc.detach(), self.scale.detach()).log_prob(value).sum(-1)


class ReparameterizedDiagNormalMixture(dist.MixtureSameFamily):
    """Σ_c softmax(logits)_c N(z; loc_c, diag scale_c²) over z in R^d, with pathwise gradients.

    logits ``(..., C)``, loc and scale ``(..., C, d)``: batch ``(...)``, event ``(d,)``.
    ``log_prob`` and ``sample`` are Pyro's ``MixtureSameFamily``'s. ``rsample`` gives z the
    implicit reparameterisation gradient of the distributional transform (Graves 2016; Figurnov,
    Mohamed & Mnih 2018, §3): with F_i(z_i | z_<i) the CDF of z_i given the earlier coordinates
    (a scalar mixture whose weights are the responsibilities of z_<i),

        ∂z/∂θ = −J⁻¹ ∂F/∂θ,    J = ∂F/∂z lower triangular, J_ii = q(z_i | z_<i),

    solved per sample in float64. (Pyro's ``MixtureOfDiagNormals``, the other pathwise
    estimator, gave the weights a gradient of ~0 at d = 40 in our tests, against a closed form.)
    """

    has_rsample = True

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        super().__init__(dist.Categorical(logits=logits), dist.Normal(loc, scale).to_event(1),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same mixture broadcast to ``batch_shape``, still a :class:`ReparameterizedDiagNormalMixture`."""
        new = self._get_checked_instance(ReparameterizedDiagNormalMixture, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """z ``sample_shape + batch_shape + (d,)``; its value is a draw of ``sample``."""
        with torch.no_grad():
            z = self.sample(sample_shape)
        normal = self.component_distribution.base_dist
        logits = self.mixture_distribution.logits.double()  # (..., C)
        loc, scale = normal.loc.double(), normal.scale.double()  # (..., C, d)
        cdf, jacobian = _conditional_cdfs(z.double(), logits, loc, scale)  # (S..., d), (S..., d, d)
        return _ImplicitSolve.apply(cdf, jacobian.detach(), z)


def _conditional_cdfs(z: torch.Tensor, logits, loc, scale):
    """F_i(z_i | z_<i) ``(..., d)`` (differentiable in the parameters; z is held fixed) and its
    Jacobian ∂F/∂z ``(..., d, d)`` (lower triangular), for z ``(..., d)``."""
    normal = torch.distributions.Normal(loc, scale)  # batch (..., C, d)
    zc = z.unsqueeze(-2)  # (..., 1, d)
    log_dens = normal.log_prob(zc)  # (..., C, d)
    prior_to = torch.cumsum(log_dens, -1) - log_dens  # Σ_{k<i} log N(z_k; c), (..., C, d)
    weights = torch.softmax(logits.unsqueeze(-1) + prior_to, dim=-2)  # w_ci, (..., C, d)
    phi = normal.cdf(zc)  # Φ_ci, (..., C, d)
    cdf = (weights * phi).sum(-2)  # (..., d)
    with torch.no_grad():
        score = -(zc - loc) / scale ** 2  # ∂ log N(z_k; c)/∂z_k, (..., C, d)
        mean_score = torch.einsum("...ci,...ck->...ik", weights, score)  # s̄_ik, (..., d, d)
        # ∂F_i/∂z_k = Σ_c w_ci (s_ck − s̄_ik) Φ_ci for k < i
        off = (torch.einsum("...ci,...ck,...ci->...ik", weights, score, phi)
               - mean_score * cdf.unsqueeze(-1))  # (..., d, d)
        d = z.shape[-1]
        lower = torch.ones(d, d, dtype=torch.bool, device=z.device).tril(-1)
        density = (weights * log_dens.exp()).sum(-2)  # q(z_i | z_<i), (..., d)
        jacobian = torch.where(lower, off, torch.zeros_like(off)) + torch.diag_embed(density)
    return cdf, jacobian


class _ImplicitSolve(torch.autograd.Function):
    """Forward: z unchanged. Backward: the gradient −J⁻ᵀ g reaches F, hence the parameters."""

    @staticmethod
    def forward(ctx, cdf, jacobian, z):
        ctx.save_for_backward(jacobian)
        return z.clone()

    @staticmethod
    def backward(ctx, grad_z):
        (jacobian,) = ctx.saved_tensors
        v = torch.linalg.solve_triangular(jacobian.transpose(-1, -2), grad_z.double().unsqueeze(-1),
                                          upper=True).squeeze(-1)  # J^T v = g, (..., d)
        return -v, None, None
