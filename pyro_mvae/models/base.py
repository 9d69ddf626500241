"""What a prior and a guide are: base classes with their typed options and declared capabilities.

A component declares its options as a nested ``Config`` dataclass (:mod:`pyro_mvae.config`)
and its capabilities as class flags. Objectives (:mod:`pyro_mvae.infer.objectives`) and the
VAE builder (:mod:`pyro_mvae.models.registry`) read only these flags, and every pairing error is
written from :data:`CAPABILITIES`, which says what each flag means.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from pyro_mvae.config import Settings
from pyro_mvae.errors import PairingError

CAPABILITIES = {
    "reparameterized": "every guide site has rsample, so the bound's gradient is pathwise",
    "chooses_component": "the guide samples the mixture component at a \"c\" site",
    "enumerable": "TraceEnum_ELBO can sum over the guide's discrete c (a whole-vector mixture "
                  "has C values per image; the factorized prior's N^d joint choices cannot be summed)",
    "stratifiable": "the guide's q(z | x) is a whole-vector mixture with one draw per component "
                    "(strata), so the stratified ELBO can sum the component out of the expectation",
    "analytic_kl": "KL(q ‖ p) has a closed form (the standard prior with the Gaussian guide)",
    "has_components": "the prior is a mixture whose component a guide can choose (its `layout`)",
    "has_base_posterior": "the guide has a Gaussian q(z | x) the VampPrior can mix",
    "labels_component": "the component c is one choice per image, so a class label can observe it",
    "uses_temperature": "the guide's component choice is relaxed with a temperature τ (the trainer's τ schedule)",
    "score_baselines": "the objective uses the baselines of a score-function gradient "
                       "(TraceGraph_ELBO)",
}
"""Capability flag -> what it means; the vocabulary of pairing errors.

:meta hide-value:
"""


class Component(nn.Module):
    """A configurable part of the model: ``name`` (its registry key) and ``Config``;
    ``capable_when``: for a capability flag that is a property, the settings that make it true
    (named in pairing errors)."""

    GROUP: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Config: ClassVar[type[Settings]]
    capable_when: ClassVar[dict[str, str]] = {}

    @classmethod
    def configure(cls, options: Mapping) -> Settings:
        """``cls.Config`` from ``options``; raises ConfigError naming this component's keys."""
        return cls.Config.from_options(options, f"{cls.GROUP} '{cls.name}'")


@dataclass
class PriorConfig(Settings):
    """A prior without options."""

    GROUP = "prior"


class Prior(Component):
    """p(z). Subclasses implement :meth:`marginal`; mixtures also ``choice``, ``conditional``,
    ``one_hot_choice`` and ``discrete_choice`` over their ``layout``.

    Flags (class attributes, defaults here): ``has_components`` (False: no ``layout``),
    ``labels_component`` (False), ``analytic_kl`` (False), ``guide_needs`` (capabilities the guide
    must have: none).
    """

    GROUP = "prior"
    Config = PriorConfig
    layout = None
    has_components: ClassVar[bool] = False
    labels_component: ClassVar[bool] = False
    analytic_kl: ClassVar[bool] = False
    guide_needs: ClassVar[tuple[str, ...]] = ()

    def marginal(self):
        """p(z) with any component summed out: batch shape ``()``, event shape ``(d,)``."""
        raise NotImplementedError

    def marginal_per_dim(self):
        """Each z_j's own marginal (batch shape ``(d,)``), or None when the prior has none
        that is cheap to compute (a flow): the latent-marginals figure skips it then."""
        return None

    def attach(self, guide, event_shape: tuple[int, ...]) -> None:
        """Called once with the built guide and the data's event shape (``(C, H, W)`` or ``(D,)``;
        the VampPrior shares the encoder and shapes its pseudo-inputs so); default: nothing."""


class Guide(Component):
    """q(z[, c] | x). Subclasses implement ``sample_sites(x, tau)``, ``posterior(x)`` and ``mean(x)``.

    Every guide is constructed as ``Guide(body, features, latent_dim, layout=None,
    event_shape=(D,), **options)``: ``body`` an ``nn.Module`` x ``(B, *event)`` -> ``(B, F)``,
    F = ``features``, on which the guide puts its own head (:meth:`init_encoder`); ``layout``
    the prior's (mixture guides); ``options`` its ``Config``.

    Flags (class attributes or properties, defaults here): ``reparameterized`` (True),
    ``chooses_component`` (False: no "c" site), ``enumerable`` (False), ``stratifiable`` (False),
    ``analytic_kl`` (False), ``labels_component`` (False: no ``sample_labelled``),
    ``has_base_posterior`` (False), ``uses_temperature`` (False), ``elbo_bounds_discrete_model``
    (True: the ELBO bounds the discrete mixture's log p(x)), ``prior_needs`` (none), ``objective_needs`` (none; with
    ``why_objective_needs``, the setting that needs it), ``max_particles`` (None: no limit; with
    ``why_max_particles``).
    """

    GROUP = "guide"
    reparameterized = True
    chooses_component = False
    enumerable = False
    stratifiable = False
    analytic_kl = False
    labels_component: ClassVar[bool] = False
    has_base_posterior: ClassVar[bool] = False
    uses_temperature: ClassVar[bool] = False
    elbo_bounds_discrete_model = True
    prior_needs: ClassVar[tuple[str, ...]] = ()
    objective_needs: tuple[str, ...] = ()
    why_objective_needs = ""
    max_particles: int | None = None
    why_max_particles = ""

    def init_encoder(self, body: nn.Module, features: int, out_dim: int) -> None:
        """The guide's amortised encoder: ``body`` maps x ``(B, *event)`` to features ``(B, F)``,
        F = ``features`` (built from ``net`` or the user's own module), and this guide's head, a
        ``Linear(F, out_dim)``, maps them to its parameters (:meth:`encode`)."""
        self.body = body
        self.head = nn.Linear(features, out_dim)

    def encode(self, x):
        """x ``(B, *event)`` -> the head's output ``(B, out_dim)``."""
        return self.head(self.body(x))

    def posterior_per_dim(self, x):
        """Each q(z_j | x) (batch ``(B, d)``), or None when the guide has none (a flow)."""
        return None

    @classmethod
    def preferred_objective(cls, options: Mapping, prior_cls) -> str:
        """The objective ``objective=auto`` means for this guide with ``options`` and a prior of
        class ``prior_cls`` (read before anything is built, so that run names can say it):
        ``trace`` unless the guide says otherwise."""
        return "trace"

    def base_posterior(self, x):
        """The Gaussian q(z | x) a VampPrior mixes (``has_base_posterior`` guides)."""
        raise NotImplementedError

    def use_enumeration(self, on: bool) -> None:
        """Switch parallel enumeration of c on or off (``enumerable`` guides); default: nothing."""

    def model_choice(self, prior, tau: float):
        """The model's ``"c"`` site matching this guide's (``chooses_component`` guides)."""
        raise NotImplementedError

    def to_one_hot(self, c):
        """The model's c as one-hot (``chooses_component`` guides): identity by default."""
        return c


def holders(classes: Mapping, capability: str) -> list[str]:
    """Registry names whose class declares ``capability`` True, then those whose flag is a
    property, with the settings that make it true (``capable_when``)."""
    flags = {name: getattr(cls, capability, False) for name, cls in classes.items()}
    return (sorted(name for name, flag in flags.items() if flag is True)
            + sorted(f"{name} (with {classes[name].capable_when.get(capability, 'some settings')})"
                     for name, flag in flags.items() if isinstance(flag, property)))


def missing(component, needs) -> list[str]:
    """The capabilities in ``needs`` that ``component`` lacks."""
    return [cap for cap in needs if not getattr(component, cap, False)]


def pairing_error(who: str, needs: str, kind: str, other: str, others: list[str]) -> PairingError:
    """'<who> needs a <kind> with `<cap>` (<meaning>); <other> lacks it: use one of ...'."""
    fix = f": {kind}s with it: {', '.join(others)}" if others else ""
    article = "an" if kind[0] in "aeiou" else "a"
    return PairingError(f"{who} needs {article} {kind} with `{needs}` ({CAPABILITIES[needs]}); "
                        f"{other} does not have it{fix}")
