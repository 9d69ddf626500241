"""Objectives as data: each a Pyro ELBO class, its options, and what it requires of the model.

.. list-table::
   :header-rows: 1

   * - name
     - Pyro class
     - the guide needs
     - the prior needs
   * - ``trace``
     - :class:`~pyro.infer.trace_elbo.Trace_ELBO`
     - — (score function without baselines for a discrete c)
     - —
   * - ``tracegraph``
     - :class:`~pyro.infer.tracegraph_elbo.TraceGraph_ELBO`
     - — (provides ``score_baselines``)
     - —
   * - ``meanfield``
     - :class:`~pyro.infer.trace_mean_field_elbo.TraceMeanField_ELBO`
     - ``analytic_kl``
     - ``analytic_kl``
   * - ``enum``
     - :class:`~pyro.infer.traceenum_elbo.TraceEnum_ELBO`
     - ``chooses_component``, ``enumerable``
     - —
   * - ``stratified``
     - :class:`~pyro_mvae.infer.stratified.StratifiedELBO`
     - ``stratifiable`` (C draws per image)
     - —
   * - ``auto`` (the default)
     - the guide's preferred one (``stratified`` for the whole-vector marginal mixture)
     -
     -
   * - ``iwae``
     - :class:`~pyro.infer.renyi_elbo.RenyiELBO` (α = 0)
     - ``reparameterized``; K = ``num_particles`` (Burda et al. 2016)
     - —

The guide may in turn need something of the objective (``Guide.objective_needs``: a baseline
needs ``score_baselines``) and cap the particles (``Guide.max_particles``). Every pairing error
is written from these declarations and :data:`pyro_mvae.models.base.CAPABILITIES`.

RenyiELBO keeps the data plate when it averages the importance weights, so ``iwae`` is the
per-datapoint bound Σ_b log (1/K) Σ_k w_bk, vectorised over the K particles.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyro.infer import ELBO, RenyiELBO, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO

from pyro_mvae.config import Settings, lookup, option
from pyro_mvae.errors import ConfigError, PairingError
from pyro_mvae.infer.stratified import StratifiedELBO
from pyro_mvae.models.base import holders, missing, pairing_error
from pyro_mvae.models.registry import GUIDES, PRIORS

AUTO = "auto"
"""The objective name that stands for the guide's preferred objective."""


@dataclass
class ObjectiveConfig(Settings):
    """Options of every objective."""

    GROUP = "objective"
    num_particles: int = option(1, "particles averaged per step, vectorised")

    def check(self):
        self.at_least("num_particles", 1)


@dataclass
class IWAEConfig(ObjectiveConfig):
    """The importance-weighted bound's K."""

    num_particles: int = option(5, "K, importance samples per datapoint, vectorised")


@dataclass(frozen=True)
class Objective:
    """A registered objective: ``elbo`` (a Pyro ELBO class) built with ``options``, its typed
    ``Config``, the capabilities it needs of the guide and the prior, the ones it provides, and
    whether it enumerates c. ``auto`` has no ``elbo``: it names another objective."""

    name: str
    elbo: type | None
    doc: str
    Config: type[Settings] = ObjectiveConfig
    options: dict = field(default_factory=dict)
    guide_needs: tuple[str, ...] = ()
    prior_needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    enumerates: bool = False


OBJECTIVES = {o.name: o for o in (
    Objective("trace", Trace_ELBO, "Trace_ELBO"),
    Objective("tracegraph", TraceGraph_ELBO, "TraceGraph_ELBO", provides=("score_baselines",)),
    Objective("meanfield", TraceMeanField_ELBO, "TraceMeanField_ELBO: analytic KL",
              guide_needs=("analytic_kl",), prior_needs=("analytic_kl",)),
    Objective("enum", TraceEnum_ELBO, "TraceEnum_ELBO: c enumerated exactly",
              guide_needs=("chooses_component", "enumerable"), enumerates=True),
    Objective("stratified", StratifiedELBO, "stratified ELBO: one draw per mixture component, the "
              "weights as factors (Morningstar et al. 2021)", guide_needs=("stratifiable",)),
    Objective("iwae", RenyiELBO, "importance-weighted bound, RenyiELBO(alpha=0) (Burda et al. 2016)",
              Config=IWAEConfig, options={"alpha": 0.0}, guide_needs=("reparameterized",)),
    Objective(AUTO, None, "the guide's preferred objective: stratified for guide=marginal_mixture "
                          "with prior=mixture, trace otherwise"),
)}
"""Objective name -> :class:`Objective`.

:meta hide-value:
"""


def resolve_name(name: str, guide_cls, guide_options: Mapping, prior_cls) -> str:
    """``auto`` -> ``guide_cls.preferred_objective(guide_options, prior_cls)``; any other name
    unchanged."""
    return guide_cls.preferred_objective(guide_options, prior_cls) if name == AUTO else name


def resolve_for(name: str, vae) -> str:
    """:func:`resolve_name` for a built VAE (its guide's options from ``vae.spec``)."""
    return resolve_name(name, type(vae.encoder), (vae.spec or {}).get("guide", {}), type(vae.prior))


def check_pairing(vae, name: str, num_particles: int = 1) -> None:
    """Raises :class:`~pyro_mvae.errors.PairingError` when objective ``name`` makes no valid or
    tractable bound with ``vae``'s prior and guide; the message names the missing capability."""
    objective, guide, prior = lookup(OBJECTIVES, "objective", name), vae.encoder, vae.prior
    who = f"objective '{name}'"
    for cap in missing(guide, objective.guide_needs):
        raise pairing_error(who, cap, "guide", f"guide '{guide.name}' with prior '{prior.name}'",
                            holders(GUIDES, cap))
    for cap in missing(prior, objective.prior_needs):
        raise pairing_error(who, cap, "prior", f"prior '{prior.name}'", holders(PRIORS, cap))
    for cap in (c for c in guide.objective_needs if c not in objective.provides):
        raise pairing_error(f"guide '{guide.name}' ({guide.why_objective_needs})", cap, "objective", who,
                            [o.name for o in OBJECTIVES.values() if cap in o.provides])
    if guide.max_particles is not None and num_particles > guide.max_particles:
        raise PairingError(f"guide '{guide.name}' takes at most {guide.max_particles} particle(s) "
                           f"({guide.why_max_particles}), got objective.num_particles={num_particles}")


def build_objective(name: str, num_particles: int = 1, vae=None) -> ELBO:
    """The ELBO registered as ``name`` averaging ``num_particles`` samples (vectorised), after
    :func:`check_pairing` when ``vae`` is given; an enumerating objective switches the guide's
    enumeration on (off for the others). Every site sits in the one ``"data"`` plate:
    ``max_plate_nesting=1``.

    ``name="auto"`` needs ``vae``: it builds the guide's preferred objective (:func:`resolve_for`).

    Raises:
        UnknownNameError: for an unregistered name (the message lists the valid ones).
        ConfigError: for ``num_particles < 1``, or ``auto`` without ``vae``.
        PairingError: see :func:`check_pairing`.
    """
    if name == AUTO:
        if vae is None:
            raise ConfigError("objective 'auto' is the guide's preferred objective: give the vae, or name one")
        name = resolve_for(name, vae)
    objective = lookup(OBJECTIVES, "objective", name)
    objective.Config(num_particles=num_particles)
    if vae is not None:
        check_pairing(vae, name, num_particles)
        vae.encoder.use_enumeration(objective.enumerates)
    return objective.elbo(num_particles=num_particles, max_plate_nesting=1,
                          vectorize_particles=num_particles > 1, **objective.options)
