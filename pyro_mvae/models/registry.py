"""Building a VAE from names: :func:`build_vae`. Configuration names registry keys, never import
paths; the tables of names (``PRIORS``, ``GUIDES``, ``LIKELIHOODS``, importable from here too) are
in :mod:`pyro_mvae.models.components`.

Adding a prior is one module (a :class:`~pyro_mvae.models.base.Prior` subclass with its
``name``, ``Config`` and capability flags), one entry in
:data:`~pyro_mvae.models.components.PRIORS`, and its tests; the command line, Hydra's config
group, validation and pairing checks follow from them.
"""

from collections.abc import Mapping
from dataclasses import asdict
from functools import partial

from torch import nn

from pyro_mvae.config import lookup
from pyro_mvae.errors import ConfigError
from pyro_mvae.models.components import GUIDES, LIKELIHOODS, PRIORS, check_pair  # noqa: F401  (public here too)
from pyro_mvae.models.nets import NETS
from pyro_mvae.models.probe import body_features, check_decoder
from pyro_mvae.models.vae import VAE


def _options(cfg: Mapping) -> tuple[str, dict]:
    options = dict(cfg)
    return options.pop("name"), options


OWN_NET = "own"
"""The ``net`` name a VAE built on the user's own encoder body and decoder records."""


def build_vae(data_shape, prior: Mapping, guide: Mapping, likelihood: Mapping, net: Mapping,
              encoder: nn.Module | None = None, decoder: nn.Module | None = None,
              features: int | None = None) -> VAE:
    """Build a :class:`~pyro_mvae.models.vae.VAE` from plain mappings, each ``{"name": <registry key>, **options}``.

    ``data_shape``: one datapoint's shape, ``(C, H, W)`` for images (``(1, 28, 28)`` for MNIST) or
    ``(D,)`` for vectors (an int D means ``(D,)``). ``net`` holds ``name`` (a registered net:
    ``mlp``, ``conv``, or one installed), its options and ``latent_dim`` (d). Example::

        build_vae((1, 8, 8), {"name": "mixture", "components": 10}, {"name": "gaussian"},
                  {"name": "bernoulli"}, {"name": "mlp", "hidden": [300, 300], "latent_dim": 40})

    Or the user's own networks: ``net={"latent_dim": d}`` with ``encoder``, a module mapping
    x ``(B, *event)`` to features ``(B, F)`` (F found by a forward pass of a dummy batch, or
    given as ``features``) on which the guide puts its own heads, and ``decoder``, a module
    mapping z ``(B, d)`` to the likelihood's parameters ``(B, *event)``. Its ``net`` spec is then
    ``{"name": "own", "latent_dim": d}``; :func:`~pyro_mvae.runs.load_run` takes the
    same modules again.

    The VAE's ``spec`` holds the four mappings with every default filled in (the model part of a
    run's ``config.yaml``).

    Raises:
        pyro_mvae.errors.ConfigError: for an unregistered name, or an option the component does
            not have or of the wrong type or range (the message lists its valid keys); for an
            encoder without a decoder or the other way round; for networks whose shapes do not
            fit the data (:mod:`pyro_mvae.models.probe`).
        pyro_mvae.errors.PairingError: for a prior/guide pair that makes no valid bound.
    """
    event_shape = (data_shape,) if isinstance(data_shape, int) else tuple(data_shape)
    prior_cls, guide_cls = (lookup(PRIORS, "prior", prior["name"]), lookup(GUIDES, "guide", guide["name"]))
    lik_cls = lookup(LIKELIHOODS, "likelihood", likelihood["name"])
    net_spec, body, decoder, initialise = _networks(event_shape, net, encoder, decoder)
    spec = {"prior": _spec(prior_cls, prior), "guide": _spec(guide_cls, guide),  # bad options before pairing
            "likelihood": _spec(lik_cls, likelihood), "net": net_spec}
    d = net_spec["latent_dim"]
    check_decoder(decoder, d, event_shape)
    prior_mod = prior_cls(latent_dim=d, **_options(prior)[1])
    check_pair(prior_mod, guide_cls)
    guide_mod = guide_cls(body, body_features(body, event_shape, features), d, layout=prior_mod.layout,
                          event_shape=event_shape, **_options(guide)[1])
    initialise(guide_mod, decoder)  # the net's own initialisation of every layer, the guide's heads included
    prior_mod.attach(guide_mod, event_shape)
    vae = VAE(prior_mod, guide_mod, lik_cls(**_options(likelihood)[1]), decoder, event_shape)
    vae.spec = spec
    return vae


def _networks(event_shape: tuple[int, ...], net: Mapping, encoder, decoder) -> tuple:
    """The net's spec, encoder body, decoder and ``initialise(guide, decoder)`` (the net kind's
    :attr:`~pyro_mvae.models.nets.NetKind.initialise`, or nothing): built from the registered
    ``net`` or the user's own."""
    if (encoder is None) != (decoder is None):
        raise ConfigError("give both encoder= and decoder= (your own networks), or neither (net= builds them)")
    if encoder is None:
        name, options = _options(net)
        kind = lookup(NETS, "net", name)
        cfg = kind.Config.from_options(options, f"net '{name}'")
        initialise = partial(kind.initialise, cfg) if kind.initialise else _keep
        return {"name": name, **asdict(cfg)}, kind.encoder(event_shape, cfg), kind.decoder(event_shape, cfg), initialise
    name, options = _options({"name": OWN_NET} | dict(net))
    if name != OWN_NET or set(options) != {"latent_dim"}:
        raise ConfigError(f"with your own encoder and decoder, net holds only latent_dim (d), got {dict(net)}: "
                          "give net={'latent_dim': d}")
    return {"name": OWN_NET, "latent_dim": int(options["latent_dim"])}, encoder, decoder, _keep


def _keep(guide: nn.Module, decoder: nn.Module) -> None:
    """Keep the modules' own initialisation."""


def _spec(cls, options: Mapping) -> dict:
    """``{"name": ..., **every option}``, defaults filled in (what a config file holds)."""
    return {"name": cls.name, **asdict(cls.configure(_options(options)[1]))}
