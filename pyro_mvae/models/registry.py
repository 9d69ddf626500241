"""Names -> component classes, in one place. Configuration names registry keys, never import paths.

Adding a prior is one module (a :class:`~pyro_mvae.models.base.Prior` subclass with its
``name``, ``Config`` and capability flags), one entry in :data:`PRIORS`, and its tests; the
command line, Hydra's config group, validation and pairing checks follow from them.
"""

from collections.abc import Mapping
from dataclasses import asdict

from pyro_mvae.config import lookup
from pyro_mvae.models.base import holders, missing, pairing_error
from pyro_mvae.models.flows import FlowGuide, FlowPrior
from pyro_mvae.models.guides import DiscreteMixtureGuide, GaussianGuide, MarginalMixtureGuide, RelaxedMixtureGuide
from pyro_mvae.models.likelihoods import BernoulliLikelihood, GaussianLikelihood
from pyro_mvae.models.nets import NETS, decoder_net
from pyro_mvae.models.priors import FactorizedMixturePrior, MixturePrior, StandardPrior
from pyro_mvae.models.vae import VAE
from pyro_mvae.models.vamp import VampPrior


def _table(*classes) -> dict:
    return {cls.name: cls for cls in classes}


PRIORS = _table(StandardPrior, MixturePrior, FactorizedMixturePrior, VampPrior, FlowPrior)
GUIDES = _table(GaussianGuide, RelaxedMixtureGuide, DiscreteMixtureGuide, MarginalMixtureGuide, FlowGuide)
LIKELIHOODS = _table(BernoulliLikelihood, GaussianLikelihood)


def _options(cfg: Mapping) -> tuple[str, dict]:
    options = dict(cfg)
    return options.pop("name"), options


def check_pair(prior, guide) -> None:
    """Raises :class:`~pyro_mvae.errors.PairingError` naming the first capability that one of
    ``prior`` and ``guide`` needs of the other and lacks."""
    for cap in missing(guide, prior.guide_needs):
        raise pairing_error(f"prior '{prior.name}'", cap, "guide", f"guide '{guide.name}'", holders(GUIDES, cap))
    for cap in missing(prior, guide.prior_needs):
        raise pairing_error(f"guide '{guide.name}'", cap, "prior", f"prior '{prior.name}'", holders(PRIORS, cap))


def build_vae(data_dim: int, prior: Mapping, guide: Mapping, likelihood: Mapping,
              net: Mapping) -> VAE:
    """Build a :class:`VAE` from plain mappings, each ``{"name": <registry key>, **options}``.

    ``net`` holds ``name``, ``hidden`` (hidden sizes of the encoder; the decoder mirrors them)
    and ``latent_dim`` (d). Example::

        build_vae(64, {"name": "mixture", "components": 10}, {"name": "gaussian"},
                  {"name": "bernoulli"}, {"name": "mlp", "hidden": [300, 300], "latent_dim": 40})

    The VAE's ``spec`` holds the four mappings with every default filled in (the model part of a
    run's ``config.yaml``).

    Raises:
        pyro_mvae.errors.ConfigError: for an unregistered name, or an option the component does
            not have or of the wrong type or range (the message lists its valid keys).
        pyro_mvae.errors.PairingError: for a prior/guide pair that makes no valid bound.
    """
    net_name, net_opts = _options(net)
    net_cfg = lookup(NETS, "net", net_name).Config.from_options(net_opts, f"net '{net_name}'")
    d, hidden = net_cfg.latent_dim, list(net_cfg.hidden)
    prior_cls, guide_cls = (lookup(PRIORS, "prior", prior["name"]), lookup(GUIDES, "guide", guide["name"]))
    lik_cls = lookup(LIKELIHOODS, "likelihood", likelihood["name"])
    spec = {"prior": _spec(prior_cls, prior), "guide": _spec(guide_cls, guide),  # bad options before pairing
            "likelihood": _spec(lik_cls, likelihood), "net": {"name": net_name, **asdict(net_cfg)}}
    prior_mod = prior_cls(latent_dim=d, **_options(prior)[1])
    check_pair(prior_mod, guide_cls)
    guide_mod = guide_cls(data_dim=data_dim, latent_dim=d, hidden=hidden, layout=prior_mod.layout,
                          net=net_name, **_options(guide)[1])
    prior_mod.attach(guide_mod, data_dim)
    decoder = decoder_net(net_name, d, hidden[::-1], data_dim)
    vae = VAE(prior_mod, guide_mod, lik_cls(**_options(likelihood)[1]), decoder, data_dim)
    vae.spec = spec
    return vae


def _spec(cls, options: Mapping) -> dict:
    """``{"name": ..., **every option}``, defaults filled in (what a config file holds)."""
    return {"name": cls.name, **asdict(cls.configure(_options(options)[1]))}
