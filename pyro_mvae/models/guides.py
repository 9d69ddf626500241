"""Guides q(z[, c] | x): amortised encoders that define the guide's sample sites (DESIGN.md §1).

Each guide gives

- ``sample_sites(x, tau)``: the ``pyro.sample`` statements of the guide (called inside the
  ``"data"`` plate by :meth:`pyro_mvae.models.vae.VAE.guide`);
- ``posterior(x)``: q(z | x) with any component summed out exactly, batch shape ``(B,)``,
  event shape ``(d,)``, used by the IWAE estimator; ``posterior_per_dim(x)``: each q(z_j | x);
- the capability flags declared by :class:`~pyro_mvae.models.base.Guide` (``chooses_component``,
  ``reparameterized``, ``enumerable``, ...), read by :mod:`pyro_mvae.infer.objectives`, the
  registry and the reports; and its options as a typed ``Config``.

The mixture guides (:class:`MixtureGuide`) differ in how the component enters: relaxed
(Concrete, straight-through or Gumbel-Rao), discrete (score function or enumeration), or summed
out of q(z | x) itself with pathwise gradients (:class:`MarginalMixtureGuide`).
"""

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_mvae.config import Settings, option
from pyro_mvae.errors import ConfigError
from pyro_mvae.models.base import Guide, pairing_error
from pyro_mvae.models.nets import MLP, positive


@dataclass
class GuideConfig(Settings):
    """What every guide's options start with: how its encoder's raw outputs h become the standard
    deviations σ of q(z | x) (:func:`guide_scale`)."""

    GROUP = "guide"
    scale: str = option("softplus", "σ from the encoder's output h: softplus (σ = softplus(h) + 0.001) | logvar "
                                    "(log σ² = h clipped to [logvar_min, logvar_max], Tomczak & Welling 2018)")
    logvar_min: float = option(-6.0, "scale=logvar: the lower clip of log σ² (σ ≥ 0.050 at -6)")
    logvar_max: float = option(2.0, "scale=logvar: the upper clip of log σ² (σ ≤ 2.72 at 2)")

    def check(self):
        self.one_of("scale", ("softplus", "logvar"))
        if not self.logvar_min < self.logvar_max:
            self._fail("logvar_max", f"a number > guide.logvar_min ({self.logvar_min:g})")


def guide_scale(raw: torch.Tensor, cfg: GuideConfig) -> torch.Tensor:
    """Standard deviations (same shape as ``raw``) from an encoder's raw outputs: ``softplus(raw) +
    0.001`` (:func:`~pyro_mvae.models.nets.positive`), or with ``cfg.scale == "logvar"``
    ``exp(½ hardtanh(raw, logvar_min, logvar_max))``, the encoder of Tomczak & Welling 2018's
    code (whose gradient is zero outside the clip)."""
    if cfg.scale == "logvar":
        return (0.5 * nn.functional.hardtanh(raw, cfg.logvar_min, cfg.logvar_max)).exp()
    return positive(raw)


class GaussianGuide(Guide):
    """q(z | x) = N(μ_φ(x), diag σ_φ(x)²), reparameterised. Pairs with every prior; no options.

    ``layout`` is accepted for a uniform constructor and unused: with this guide the model
    marginalises any mixture component exactly.
    """

    name = "gaussian"
    Config = GuideConfig
    analytic_kl = True  # with the standard prior: TraceMeanField_ELBO
    has_base_posterior = True

    def __init__(self, body: nn.Module, features: int, latent_dim: int, layout=None, event_shape=None,
                 **options):
        super().__init__()
        self.config = self.configure(options)
        self.latent_dim = latent_dim
        self.init_encoder(body, features, 2 * latent_dim)

    def base_posterior(self, x: torch.Tensor):
        """q(z | x) itself (the Gaussian the VampPrior mixes)."""
        return self.posterior(x)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """E_q[z | x] = μ_φ(x), ``(B, d)``."""
        return self.posterior(x).mean

    def posterior(self, x: torch.Tensor):
        """x ``(B, *event)`` -> N(μ, diag σ²) with batch ``(B,)``, event ``(d,)``."""
        loc, scale_raw = self.encode(x).split(self.latent_dim, dim=-1)  # 2 × (B, d)
        return dist.Normal(loc, guide_scale(scale_raw, self.config)).to_event(1)

    def posterior_per_dim(self, x: torch.Tensor):
        """q(z_j | x) for each dimension: batch ``(B, d)``."""
        return self.posterior(x).base_dist

    def sample_sites(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Site ``"z"`` ~ q(z | x); returns z ``(B, d)``. τ is unused."""
        return pyro.sample("z", self.posterior(x))


class MixtureGuide(Guide):
    """Shared body of the guides built on the prior's components (choosing c, or summing it
    out): per image, logits of the choice and the locs and scales of every component, laid out
    by the prior's ``layout`` (so it needs a prior that ``has_components``).
    """

    chooses_component = True
    labels_component = True
    prior_needs = ("has_components",)
    Config = GuideConfig

    def __init__(self, body: nn.Module, features: int, latent_dim: int, layout, event_shape=None, **options):
        super().__init__()
        self.config = self.configure(options)
        if layout is None:
            raise pairing_error(f"guide '{self.name}'", "has_components", "prior", "the prior given "
                                "(layout=None)", [])
        self.latent_dim = latent_dim
        self.layout = layout
        self._n_logits = math.prod(layout.logits_shape)
        self._n_table = math.prod(layout.table_shape)
        self.init_encoder(body, features, self._n_logits + 2 * self._n_table)

    def component_params(self, x: torch.Tensor):
        """x ``(B, *event)`` -> logits ``(B, *logits_shape)``, loc and scale ``(B, *table_shape)``."""
        B = x.shape[0]
        out = self.encode(x)  # (B, n_logits + 2 n_table)
        logits, loc, scale_raw = out.split([self._n_logits, self._n_table, self._n_table], -1)
        return (logits.reshape(B, *self.layout.logits_shape),
                loc.reshape(B, *self.layout.table_shape),
                guide_scale(scale_raw, self.config).reshape(B, *self.layout.table_shape))

    def posterior(self, x: torch.Tensor):
        """The discrete mixture q(z | x) = Σ_c q(c | x) q(z | c, x), c summed out; event ``(d,)``."""
        return self.layout.marginal(*self.component_params(x))

    def posterior_per_dim(self, x: torch.Tensor):
        """q(z_j | x), each dimension's marginal mixture: batch ``(B, d)``."""
        return self.layout.marginal_per_dim(*self.component_params(x))

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """E_q[z | x] of the discrete mixture, ``(B, d)``."""
        return self.posterior(x).mean

    def component_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(c | x) of the discrete choice: ``(B, C)`` or ``(B, d, N)``."""
        return torch.softmax(self.component_params(x)[0], -1)

    def label_log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log q(c = y | x) in nats, ``(B,)``, for images x ``(B, *event)`` with class labels y
        ``(B,)`` (a whole-vector layout: the classifier of Kingma et al. 2014's M2)."""
        return dist.Categorical(logits=self.component_params(x)[0]).log_prob(y)

    def sample_labelled(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Site ``"z"`` ~ q(z | c = y, x) for images x ``(B, *event)`` whose component is observed as
        their class label y ``(B,)`` (no ``"c"`` site: the model observes it); returns z ``(B, d)``."""
        _, loc, scale = self.component_params(x)  # (B, C, d) each
        return pyro.sample("z", self.layout.conditional(self.layout.one_hot(y), loc, scale))


@dataclass
class RelaxedMixtureConfig(GuideConfig):
    """Options of the relaxed (Concrete) mixture guide."""

    straight_through: bool = option(True, "hard one-hot c in the forward pass (the seed's matrix D)")
    estimator: str = option("relaxed", "relaxed | gumbel_rao (hard c, relaxed gradient averaged "
                                       "over rao_samples conditional draws)")
    rao_samples: int = option(10, "M, conditional Gumbel draws of the Gumbel-Rao estimator")

    def check(self):
        super().check()
        self.one_of("estimator", ("relaxed", "gumbel_rao"))
        self.at_least("rao_samples", 1)
        if self.estimator == "gumbel_rao" and not self.straight_through:
            self._fail("straight_through", "true with guide.estimator=gumbel_rao (its forward pass "
                                           "is the exact one-hot draw, as straight-through's)")


class RelaxedMixtureGuide(MixtureGuide):
    """q(c, z | x) = Concrete(c; τ, logits_φ(x)) · N(z; Σ c μ_φ(x), diag (Σ c σ_φ(x))²).

    Component choice by Gumbel-softmax (Jang et al. 2017) / Concrete (Maddison et al. 2017);
    ``straight_through=True`` makes c exactly one-hot in the forward pass (the seed's matrix D).
    The model's matching ``"c"`` site is the prior's Concrete choice at the same τ.

    ``estimator="gumbel_rao"`` keeps the exact one-hot forward pass of straight-through and
    averages the relaxed gradient over ``rao_samples`` Gumbel draws conditioned on it (Paulus,
    Maddison & Krause 2021); c is then scored as the discrete choice it is, in the guide
    (Categorical(logits_φ(x))) and in the model (Categorical(π)), so the ELBO bounds the
    discrete mixture's log p(x).

    Raises:
        ConfigError: for an unknown estimator, or ``gumbel_rao`` with ``straight_through=False``
            (its forward pass is the hard sample).
    """

    name = "relaxed_mixture"
    uses_temperature = True
    Config = RelaxedMixtureConfig

    def __init__(self, body: nn.Module, features: int, latent_dim: int, layout=None, event_shape=None,
                 **options):
        super().__init__(body, features, latent_dim, layout, event_shape, **options)
        self.straight_through = self.config.straight_through
        self.gumbel_rao = self.config.estimator == "gumbel_rao"
        self.rao_samples = self.config.rao_samples

    @property
    def elbo_bounds_discrete_model(self) -> bool:
        """With straight-through c, z | c sees a hard one-hot c whose law is Categorical(π), so the
        relaxed model's p(z) is the discrete mixture itself; with soft c it is not."""
        return self.straight_through

    def model_choice(self, prior, tau: float):
        """The model's ``"c"`` site for this guide: Concrete(τ, π), straight-through alike, or
        Categorical(π) over one-hot c under Gumbel-Rao."""
        return prior.one_hot_choice() if self.gumbel_rao else prior.choice(tau, self.straight_through)

    def sample_sites(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Sites ``"c"`` ~ Concrete(τ, logits) (or its Gumbel-Rao one-hot draw) and ``"z"`` ~
        q(z | c, x); returns z ``(B, d)``."""
        logits, loc, scale = self.component_params(x)
        if self.gumbel_rao:
            choice = self.layout.gumbel_rao_choice(logits, tau, self.rao_samples)
        else:
            choice = self.layout.choice(logits, tau, self.straight_through)
        c = pyro.sample("c", choice)
        return pyro.sample("z", self.layout.conditional(c, loc, scale))


@dataclass
class BaselineConfig(GuideConfig):
    """Options of a guide whose gradient has a score-function term: its baseline."""

    baseline: str = option("none", "none | decaying_average | neural (TraceGraph_ELBO only)")
    baseline_beta: float = option(0.9, "decay of the decaying-average baseline, in (0, 1)")
    baseline_hidden: list[int] = option([100], "hidden sizes of the neural baseline MLP(x)")

    def check(self):
        super().check()
        self.one_of("baseline", ("none", "decaying_average", "neural"))
        self.positive("baseline_beta", below=1.0)
        self.each_at_least("baseline_hidden", 1)


class ScoreBaselines:
    """What a guide with a score-function term shares: Pyro's baselines for its site (``"none"``,
    ``"decaying_average"`` with β = ``baseline_beta``, or ``"neural"``, a small MLP of x; Mnih &
    Gregor 2014), which act only under an objective with ``score_baselines`` (TraceGraph_ELBO)."""

    def init_baseline(self, event_shape) -> None:
        """The baseline of ``config``; the neural one is an MLP of the flattened x, D =
        ∏ ``event_shape`` inputs (raises ConfigError without an ``event_shape``)."""
        self.baseline = self.config.baseline
        self.baseline_beta = self.config.baseline_beta
        self.baseline_net = None
        if self.baseline == "neural":
            if event_shape is None:
                raise ConfigError(f"guide '{self.name}' with baseline=neural needs the data's event_shape")
            self.baseline_net = MLP(math.prod(event_shape), self.config.baseline_hidden, 1)

    @property
    def objective_needs(self) -> tuple[str, ...]:
        """A baseline acts only in an objective with ``score_baselines``."""
        return () if self.baseline == "none" else ("score_baselines",)

    @property
    def why_objective_needs(self) -> str:
        """The setting that needs ``score_baselines``, for the pairing error (``guide.baseline=...``)."""
        return f"guide.baseline={self.baseline}"

    @property
    def max_particles(self) -> int | None:
        """The neural baseline predicts one cost per image, so one particle."""
        return 1 if self.baseline == "neural" else None

    why_max_particles = "guide.baseline=neural predicts one cost per image; use baseline=decaying_average"

    def baseline_infer(self, x: torch.Tensor) -> dict:
        """The site's ``infer`` dictionary for Pyro's baselines (empty without one)."""
        if self.baseline == "decaying_average":
            return {"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": self.baseline_beta}}
        if self.baseline == "neural":
            return {"baseline": {"nn_baseline": _Squeeze(self.baseline_net),
                                 "nn_baseline_input": x.flatten(1)}}  # (B, D)
        return {}


@dataclass
class MarginalMixtureConfig(BaselineConfig):
    """Options of the marginal-mixture guide."""

    estimator: str = option("auto", "auto (score_weights for prior=mixture, implicit for "
                                    "factorized_mixture) | score_weights (pathwise given the component, "
                                    "the weights by their bounded score) | implicit (implicit "
                                    "reparameterisation gradients)")

    def check(self):
        super().check()
        self.one_of("estimator", ("auto", "score_weights", "implicit"))


class MarginalMixtureGuide(ScoreBaselines, MixtureGuide):
    """q(z | x) = Σ_c q(c | x) q(z | c, x), the component summed out of the density.

    No ``"c"`` site: the model uses the prior's exact marginal, and the ELBO bounds the discrete
    mixture's log p(x) with no relaxation. Two gradient estimators, both exact in expectation:

    - ``estimator="score_weights"`` (the default for the whole-vector ``mixture``): z = μ_c + σ_c ε
      given a drawn c, pathwise in the locations and scales, and the weights' gradient the score
      ∂ log q(z)/∂logit = r(z) − w ∈ [−1, 1] times the per-image cost
      (:class:`~pyro_mvae.distributions.mixtures.ScoreWeightsDiagNormalMixture`, per dimension
      :class:`~pyro_mvae.distributions.mixtures.ScoreWeightsNormalMixture`): finite variance
      however far apart the components are. Under TraceGraph_ELBO a ``baseline`` centres the cost.
    - ``estimator="implicit"`` (the default for the per-dimension ``factorized_mixture``): implicit
      reparameterisation gradients (Figurnov et al. 2018), per dimension from the scalar
      mixture's CDF, for whole vectors from the sequential distributional transform (Graves
      2016). When components are several standard deviations apart, the weights' per-sample
      gradient is heavy-tailed (Pareto k̂ > 0.8 in the tests; an average of 800,000 draws can
      have the wrong sign): use it where they overlap, or for the ``iwae`` objective, which
      needs every site reparameterised. It stays the per-dimension default by measurement: on
      MNIST (N = 3 and 5) it trained to an IWAE 0.5-0.6 nats above ``score_weights``, whose
      light-tailed weight gradient was 8-21 times as variable (docs/results.md).

    ``estimator="auto"`` is the layout's default.

    Raises:
        ConfigError: for an unknown estimator or baseline, or a baseline with ``implicit``.
    """

    name = "marginal_mixture"
    Config = MarginalMixtureConfig
    chooses_component = False
    capable_when = {"reparameterized": "guide.estimator=implicit",
                    "stratifiable": "prior=mixture and guide.estimator=auto or score_weights"}

    def __init__(self, body: nn.Module, features: int, latent_dim: int, layout=None, event_shape=None,
                 **options):
        super().__init__(body, features, latent_dim, layout, event_shape, **options)
        self.estimator = _layout_estimator(self.config, layout)
        self.init_baseline(event_shape)

    @property
    def reparameterized(self) -> bool:
        """Whether every gradient is pathwise, as with the implicit estimator (not ``score_weights``)."""
        return self.estimator == "implicit"

    @property
    def stratifiable(self) -> bool:
        """Whether the stratified objective applies (one draw per component), as for whole vectors with
        ``score_weights``."""
        return self.layout.stratifiable and self.estimator == "score_weights"

    @classmethod
    def preferred_objective(cls, options, prior_cls) -> str:
        """``stratified`` where the guide is :attr:`stratifiable` (prior=mixture, the default
        estimator), else ``trace``."""
        layout = getattr(prior_cls, "LAYOUT", None)
        if layout is None or not layout.stratifiable:
            return "trace"
        return "stratified" if _resolve(options.get("estimator", "auto"), layout) == "score_weights" else "trace"

    def sample_sites(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Site ``"z"`` ~ q(z | x), the mixture itself; returns z ``(B, d)``. τ is unused."""
        q = self.layout.reparameterized_marginal(*self.component_params(x), estimator=self.estimator)
        return pyro.sample("z", q, infer=self.baseline_infer(x))


def _resolve(estimator: str, layout) -> str:
    """``auto`` -> the layout's default estimator; any other name unchanged."""
    return layout.estimators[0] if estimator == "auto" else estimator


def _layout_estimator(config: MarginalMixtureConfig, layout) -> str:
    """The estimator ``config`` asks for, ``auto`` resolved to the layout's default; raises
    ConfigError for a baseline without a score term."""
    estimator = _resolve(config.estimator, layout)
    if estimator == "implicit" and config.baseline != "none":
        raise ConfigError(f"guide.baseline must be none with the implicit estimator (a pathwise "
                          f"gradient has no score-function term for a baseline to act on), got "
                          f"{config.baseline!r}; use guide.estimator=score_weights with objective=tracegraph")
    return estimator


@dataclass
class DiscreteMixtureConfig(BaselineConfig):
    """Options of the discrete (score function or enumeration) mixture guide."""


class DiscreteMixtureGuide(ScoreBaselines, MixtureGuide):
    """q(c, z | x) = Categorical(c; logits_φ(x)) · N(z; μ_φ(x)_c, diag σ_φ(x)_c²); c not reparameterised.

    Its gradients come from the score function (TraceGraph_ELBO, with a ``baseline`` to reduce
    their variance: ``"none"``, ``"decaying_average"`` (β = ``baseline_beta``) or ``"neural"``, a
    small MLP of x; Mnih & Gregor 2014) or from enumerating c (TraceEnum_ELBO, ``mixture`` only).
    The model's matching ``"c"`` site is Categorical(π).

    Raises:
        ConfigError: for an unknown baseline.
    """

    name = "discrete_mixture"
    Config = DiscreteMixtureConfig
    reparameterized = False
    capable_when = {"enumerable": "prior=mixture"}

    def __init__(self, body: nn.Module, features: int, latent_dim: int, layout=None, event_shape=None,
                 **options):
        super().__init__(body, features, latent_dim, layout, event_shape, **options)
        self.enumerate = False  # set by use_enumeration (TraceEnum_ELBO)
        self.init_baseline(event_shape)

    @property
    def enumerable(self) -> bool:
        return self.layout.enumerable

    def use_enumeration(self, on: bool) -> None:
        self.enumerate = on

    def model_choice(self, prior, tau: float):
        """The model's ``"c"`` site for this guide: Categorical(π); τ is unused."""
        return prior.discrete_choice()

    def to_one_hot(self, c: torch.Tensor) -> torch.Tensor:
        return self.layout.one_hot(c)

    def _infer(self, x: torch.Tensor) -> dict:
        return {"enumerate": "parallel"} if self.enumerate else self.baseline_infer(x)

    def sample_sites(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Sites ``"c"`` ~ Categorical(logits) and ``"z"`` ~ q(z | c, x); returns z ``(B, d)``
        (``(C, B, d)`` when c is enumerated). τ is unused."""
        logits, loc, scale = self.component_params(x)
        c = pyro.sample("c", self.layout.discrete_choice(logits), infer=self._infer(x))
        return pyro.sample("z", self.layout.conditional(self.layout.one_hot(c), loc, scale))


class _Squeeze(nn.Module):
    """A baseline network's output ``(B, 1)`` as ``(B,)``, the shape of the cost it predicts."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(-1)
