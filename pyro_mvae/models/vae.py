"""The VAE as a Pyro ``model`` and ``guide`` pair (DESIGN.md §1).

    model   p(x, z[, c]) = p(x | z) · p(z | c) · p(c)      sites "c" (optional), "z", "x"
    guide   q(z[, c] | x) = q(c | x) · q(z | c, x)           sites "c" (optional), "z"

All sites live in ``pyro.plate("data", B)``. When the guide chooses a component (site "c"), the
model has the matching relaxed "c" site at the same τ (a valid bound for the relaxed model);
otherwise the model's p(z) is the prior's exact marginal.

Given class labels y (semi-supervised M2, Kingma et al. 2014), the model observes c = y, the
guide draws z ~ q(z | c = y, x), and the model adds α · log q(c = y | x) as the factor
``"classification"`` (Kingma et al. 2014, eq. 9).

The VAE is an ordinary ``torch.nn.Module``: its parameters are leaves of the autograd graph that
Pyro's ELBOs build, trained by a ``torch.optim`` optimiser, and never enter Pyro's global
parameter store. They are not ``PyroModule`` parameters because every access to one of those is
a ``param`` effect (about 1 ms per SVI step for the 784-300-300-40 MLPs, ~10% of the step).
"""

import contextlib
import math
import weakref

import pyro
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.poutine.runtime import effectful
from pyro.poutine.util import site_is_subsample
from torch import nn

from pyro_mvae.errors import DataError
from pyro_mvae.models.base import holders, pairing_error
from pyro_mvae.models.components import GUIDES, PRIORS
from pyro_mvae.models.modes import evaluates


class VAE(nn.Module):
    """Variational autoencoder with a pluggable prior, guide and likelihood.

    Args:
        prior: a :class:`~pyro_mvae.models.base.Prior` (gives ``marginal()``; mixtures also
            ``choice`` and ``conditional``).
        guide: a :class:`~pyro_mvae.models.base.Guide`, built for the same prior.
        likelihood: a :class:`~pyro_mvae.models.likelihoods.Likelihood`.
        decoder: a torch module mapping z ``(B, d)`` to the likelihood's parameters ``(B, *event)``
            (called through :meth:`decode`, which takes any leading dimensions).
        event_shape: the shape of one datapoint: ``(C, H, W)`` for images, ``(D,)`` for vectors
            (an int D means ``(D,)``).

    Attributes ``beta`` (β, weight of the latent sites, i.e. of the KL; Higgins et al. 2017) and
    ``tau`` (τ, Concrete temperature) are set by the training schedules; ``alpha`` (α, weight of
    the classification term on labelled images; 0 until set) by semi-supervised training
    (:mod:`pyro_mvae.data.labelled`).
    """

    def __init__(self, prior, guide, likelihood, decoder, event_shape):
        super().__init__()
        self.prior = prior
        self.encoder = guide
        self.likelihood = likelihood
        self.decoder = decoder
        self.event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        likelihood.attach(self.event_shape)
        self.beta = 1.0
        self.tau = 1.0
        self.alpha = 0.0
        self.spec = None  # {"prior", "guide", "likelihood", "net"} mappings, set by build_vae

    @property
    def latent_dim(self) -> int:
        """d, the dimension of z (the guide's)."""
        return self.encoder.latent_dim

    @property
    def data_dim(self) -> int:
        """D, the number of values of one datapoint (C·H·W for images)."""
        return math.prod(self.event_shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder on z ``(..., d)`` with any leading dimensions (K particles, C components):
        ``(N, d)`` in, ``(N, *event)`` out, reshaped to ``(..., *event)``."""
        lead = z.shape[:-1]
        return self.decoder(z.reshape(-1, z.shape[-1])).reshape(*lead, *self.event_shape)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Generative model over a batch x ``(B, *event)``; sites "c" (optional), "z", "x".

        With class labels y ``(B,)`` (integers in {0..C−1}): "c" observed as y, z ~ p(z | c = y),
        and the factor ``"classification"`` = α · log q(c = y | x) in nats (Kingma et al. 2014,
        eq. 9; α = ``self.alpha``).

        Raises:
            PairingError: labels given to a prior or guide without ``labels_component``.
        """
        with pyro.plate("data", x.shape[0]):
            with self._kl_weight():
                z = self._prior_sites() if y is None else self._labelled_prior_sites(y)  # (B, d)
            pyro.sample("x", self.likelihood(self.decode(z)), obs=x)
            if y is not None and self.alpha:
                pyro.factor("classification", self.alpha * self.encoder.label_log_prob(x, y))

    def _kl_weight(self):
        """β on the latent sites (``poutine.scale``); no messenger at all when β = 1."""
        return poutine.scale(scale=self.beta) if self.beta != 1 else contextlib.nullcontext()

    def _prior_sites(self) -> torch.Tensor:
        if not self.encoder.chooses_component:
            return pyro.sample("z", self.prior.marginal())
        c = pyro.sample("c", self.encoder.model_choice(self.prior, self.tau))
        return pyro.sample("z", self.prior.conditional(self.encoder.to_one_hot(c)))

    def _labelled_prior_sites(self, y: torch.Tensor) -> torch.Tensor:
        check_labels_component(self)
        pyro.sample("c", self.prior.discrete_choice(), obs=y)
        return pyro.sample("z", self.prior.conditional(self.prior.layout.one_hot(y)))

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Guide over a batch x ``(B, *event)``; sites "c" (optional) and "z"; given class labels y
        ``(B,)``, the one site "z" ~ q(z | c = y, x).

        Raises:
            PairingError: labels given to a prior or guide without ``labels_component``.
        """
        with pyro.plate("data", x.shape[0]), self._kl_weight():
            if y is None:
                self.encoder.sample_sites(x, self.tau)
            else:
                check_labels_component(self)
                self.encoder.sample_labelled(x, y)

    def svi_guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """:meth:`guide`, also recording every parameter as a Pyro ``param`` site.

        For ELBOs driven through ``loss_and_grads`` (TraceGraph_ELBO, RenyiELBO, as in
        ``pyro.infer.SVI``): they back-propagate only when a trace holds a ``param`` site. The
        sites are recorded the way a module-local ``PyroModule`` records its parameters (the
        value is the module's own tensor; nothing enters the global parameter store), so
        ``pyro.infer.SVI(vae.model, vae.svi_guide, pyro.optim.Adam(...), elbo)`` trains the VAE.
        """
        for name, value in self.named_parameters():
            value.unconstrained = weakref.ref(value)  # what pyro.optim steps (constraint: real)
            effectful(type="param")(lambda *_, value=value, **__: value)(
                name, constraint=constraints.real, event_dim=None, name=name)
        self.guide(x, y)

    @evaluates
    @torch.no_grad()
    def elbo_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-sample estimates of E_q[log p(x | z)] and KL(q ‖ p), each ``(B,)``, in nats.

        ELBO = log-likelihood − KL, at β = 1 and the current τ. The KL is the Monte Carlo
        estimate E_q[log q(z, c | x) − log p(z, c)] over all latent sites.
        """
        beta, self.beta = self.beta, 1.0
        try:
            guide_tr = poutine.trace(self.guide).get_trace(x)
            model_tr = poutine.trace(poutine.replay(self.model, trace=guide_tr)).get_trace(x)
        finally:
            self.beta = beta
        log_lik = _site_log_prob(model_tr, "x", x)
        kl = torch.zeros_like(log_lik)
        for name in guide_tr.stochastic_nodes:
            if site_is_subsample(guide_tr.nodes[name]):  # the "data" plate's index site
                continue
            kl = kl + _site_log_prob(guide_tr, name, x) - _site_log_prob(model_tr, name, x)
        return log_lik, kl

    def check_data(self, x: torch.Tensor) -> None:
        """Raises :class:`~pyro_mvae.errors.DataError` unless x ``(B, *event)`` can be scored."""
        if tuple(x.shape[1:]) != self.event_shape:
            raise DataError(
                f"expected data of shape (B, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}: "
                "the model was built for another shape; use data that matches it or "
                "train a model for this data")
        if not bool(torch.isfinite(x).all()):
            raise DataError(f"the data holds {int((~torch.isfinite(x)).sum())} NaN or infinite "
                            "values: clean or drop those images first")
        self.likelihood.check(x)

    @evaluates
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images ``(n, *event)`` from the model: the likelihood's mean at z ~ p(z)."""
        z = self.prior.marginal().sample((n,))  # (n, d)
        return self.likelihood.mean(self.decode(z))

    @evaluates
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Likelihood mean at the guide's posterior mean: x ``(B, *event)`` -> ``(B, *event)``."""
        return self.likelihood.mean(self.decode(self.encoder.mean(x)))


def check_labels_component(vae) -> None:
    """Raises :class:`~pyro_mvae.errors.PairingError` unless ``vae``'s prior and guide can observe
    the component as a class label (``labels_component``: prior=mixture and a mixture guide)."""
    if vae.prior.labels_component and vae.encoder.labels_component:
        return
    who = "data.labelled (semi-supervised M2)"
    if not vae.prior.labels_component:
        raise pairing_error(who, "labels_component", "prior", f"prior '{vae.prior.name}'",
                            holders(PRIORS, "labels_component"))
    if not vae.encoder.labels_component:
        raise pairing_error(who, "labels_component", "guide", f"guide '{vae.encoder.name}'",
                            holders(GUIDES, "labels_component"))


def _site_log_prob(trace, name: str, x: torch.Tensor) -> torch.Tensor:
    """Unscaled log-density of one site, summed over its event: ``(B,)``."""
    site = trace.nodes[name]
    return site["fn"].log_prob(site["value"]).reshape(x.shape[0])
