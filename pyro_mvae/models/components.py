"""The registered components by name: the tables of priors, guides and likelihoods, and the check
of a prior/guide pairing from their declared capabilities. :mod:`pyro_mvae.models.registry`
builds VAEs from these names.
"""

from pyro_mvae.config import Registry
from pyro_mvae.models.base import holders, missing, pairing_error
from pyro_mvae.models.flows import FlowGuide, FlowPrior
from pyro_mvae.models.guides import DiscreteMixtureGuide, GaussianGuide, MarginalMixtureGuide, RelaxedMixtureGuide
from pyro_mvae.models.likelihoods import BernoulliLikelihood, GaussianLikelihood
from pyro_mvae.models.priors import FactorizedMixturePrior, MixturePrior, StandardPrior
from pyro_mvae.models.vamp import VampPrior


def _table(kind: str, *classes) -> Registry:
    return Registry(kind, {cls.name: cls for cls in classes})


PRIORS = _table("prior", StandardPrior, MixturePrior, FactorizedMixturePrior, VampPrior, FlowPrior)
"""Prior name (``prior=<name>``) -> its :class:`~pyro_mvae.models.base.Prior` subclass (a
:class:`~pyro_mvae.config.Registry`: installed packages' entry points are loaded on its first read).

:meta hide-value:
"""
GUIDES = _table("guide", GaussianGuide, RelaxedMixtureGuide, DiscreteMixtureGuide, MarginalMixtureGuide, FlowGuide)
"""Guide name (``guide=<name>``) -> its :class:`~pyro_mvae.models.base.Guide` subclass.

:meta hide-value:
"""
LIKELIHOODS = _table("likelihood", BernoulliLikelihood, GaussianLikelihood)
"""Likelihood name (``likelihood=<name>``) -> its
:class:`~pyro_mvae.models.likelihoods.Likelihood` subclass.

:meta hide-value:
"""


def check_pair(prior, guide) -> None:
    """Raises :class:`~pyro_mvae.errors.PairingError` naming the first capability that one of
    ``prior`` and ``guide`` needs of the other and lacks."""
    for cap in missing(guide, prior.guide_needs):
        raise pairing_error(f"prior '{prior.name}'", cap, "guide", f"guide '{guide.name}'", holders(GUIDES, cap))
    for cap in missing(prior, guide.prior_needs):
        raise pairing_error(f"guide '{guide.name}'", cap, "prior", f"prior '{prior.name}'", holders(PRIORS, cap))
