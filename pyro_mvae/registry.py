"""Names -> classes, in one place. Configuration names registry keys, never import paths."""

from collections.abc import Mapping

from pyro.infer import RenyiELBO, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO

from pyro_mvae import data
from pyro_mvae.flows import FlowGuide, FlowPrior
from pyro_mvae.guides import DiscreteMixtureGuide, GaussianGuide, MarginalMixtureGuide, RelaxedMixtureGuide
from pyro_mvae.likelihoods import BernoulliLikelihood, GaussianLikelihood
from pyro_mvae.model import VAE
from pyro_mvae.nets import NETS, decoder_net
from pyro_mvae.priors import FactorizedMixturePrior, MixturePrior, StandardPrior
from pyro_mvae.vamp import VampPrior

PRIORS = {"standard": StandardPrior, "mixture": MixturePrior,
          "factorized_mixture": FactorizedMixturePrior, "vamp": VampPrior, "flow": FlowPrior}
GUIDES = {"gaussian": GaussianGuide, "relaxed_mixture": RelaxedMixtureGuide,
          "discrete_mixture": DiscreteMixtureGuide, "marginal_mixture": MarginalMixtureGuide,
          "flow": FlowGuide}
LIKELIHOODS = {"bernoulli": BernoulliLikelihood, "gaussian": GaussianLikelihood}
OBJECTIVES = {"trace": Trace_ELBO, "tracegraph": TraceGraph_ELBO, "meanfield": TraceMeanField_ELBO,
              "enum": TraceEnum_ELBO, "iwae": RenyiELBO}
DATASETS = {"digits": data.load_digits, "mnist": data.load_mnist}


class UnknownNameError(ValueError):
    """A configuration named a component that is not registered."""


def lookup(table: Mapping, kind: str, name: str):
    """The entry registered as ``name`` in ``table``.

    Raises:
        UnknownNameError: naming the kind and listing the valid names.
    """
    if name not in table:
        valid = ", ".join(sorted(table))
        raise UnknownNameError(f"unknown {kind} '{name}'; valid {kind} names: {valid}")
    return table[name]


def _options(cfg: Mapping) -> tuple[str, dict]:
    options = dict(cfg)
    return options.pop("name"), options


def build_vae(data_dim: int, prior: Mapping, guide: Mapping, likelihood: Mapping,
              net: Mapping) -> VAE:
    """Build a :class:`VAE` from plain mappings, each ``{"name": <registry key>, **options}``.

    ``net`` holds ``name``, ``hidden`` (hidden sizes of the encoder; the decoder mirrors them)
    and ``latent_dim`` (d). Example::

        build_vae(64, {"name": "mixture", "components": 10}, {"name": "gaussian"},
                  {"name": "bernoulli"}, {"name": "mlp", "hidden": [300, 300], "latent_dim": 40})

    Raises:
        UnknownNameError: for an unregistered name.
        pyro_mvae.guides.PairingError: for a prior/guide pair that makes no valid bound.
    """
    net_name, net_opts = _options(net)
    lookup(NETS, "net", net_name)
    d, hidden = int(net_opts["latent_dim"]), list(net_opts["hidden"])
    prior_name, prior_opts = _options(prior)
    prior_mod = lookup(PRIORS, "prior", prior_name)(latent_dim=d, **prior_opts)
    guide_name, guide_opts = _options(guide)
    guide_mod = lookup(GUIDES, "guide", guide_name)(
        data_dim=data_dim, latent_dim=d, hidden=hidden, layout=prior_mod.layout, net=net_name, **guide_opts)
    if hasattr(prior_mod, "attach"):  # the VampPrior shares the guide's encoder
        prior_mod.attach(guide_mod, data_dim)
    lik_name, lik_opts = _options(likelihood)
    lik_mod = lookup(LIKELIHOODS, "likelihood", lik_name)(**lik_opts)
    decoder = decoder_net(net_name, d, hidden[::-1], data_dim)
    return VAE(prior_mod, guide_mod, lik_mod, decoder, data_dim)


def build_dataset(data: Mapping, device) -> "data.Dataset":
    """Load the dataset named by ``data["name"]`` with its options (``batch_size`` is the trainer's).

    Raises:
        UnknownNameError: for an unregistered name.
        pyro_mvae.likelihoods.DataError: for files that cannot be found or bad images.
    """
    name, options = _options(data)
    options.pop("batch_size", None)
    return lookup(DATASETS, "data", name)(device=device, **options)
