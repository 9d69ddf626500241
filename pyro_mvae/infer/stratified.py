"""The stratified ELBO of a whole-vector mixture guide: the component summed out of the expectation.

For q(z | x) = Σ_c w_c N(z; μ_c, diag σ_c²) the ELBO is

    E_q[log p(x, z) − log q(z | x)] = Σ_c w_c E_{ε ~ N(0, I)}[log p(x, z_c) − log q(z_c | x)],
    z_c = μ_c + σ_c ε,

so one draw per component and the weights as explicit factors give an estimate whose gradient
is pathwise for every parameter: the weights' gradient Σ_c ∂w_c · (the c-th term) has no score
function and no heavy tail, and a constant cost cancels exactly (Σ_c ∂w_c = 0). This is the
stratified ELBO of Morningstar, Vikram, Ham, Gallagher & Dillon (2021), "Automatic
Differentiation Variational Inference with Mixtures" (eq. 6, one sample per stratum), which
costs C decoder passes per image. The bound's value is the marginal-mixture guide's ELBO; log q
is the exact mixture density, log p the model's (β-scaled) sites as Pyro records them.

The guide's site must be a distribution with ``strata()`` (z ``(C, *batch, d)`` and log w
``(C, *batch)``): :class:`~pyro_mvae.distributions.mixtures.ScoreWeightsDiagNormalMixture`.
"""

import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample


class _Strata(Messenger):
    """Sets each latent site that has ``strata()`` to its C per-component draws, keeping log w."""

    def __init__(self):
        super().__init__()
        self.log_weights = []

    def _pyro_sample(self, msg):
        strata = getattr(msg["fn"], "strata", None)
        if strata is None or msg["is_observed"]:
            return
        msg["value"], log_weights = strata()  # (C, *batch, d), (C, *batch)
        self.log_weights.append(log_weights)


class StratifiedELBO(ELBO):
    """Σ_c w_c [log p(x, z_c) − log q(z_c | x)] per datapoint, summed over the batch (nats), with
    ``num_particles`` independent draws per component averaged. The guide needs exactly one site
    with ``strata()``; every other latent site is refused (its density would not be stratified).

    Raises:
        ValueError: when the guide has no site with ``strata()``, or more than one, or another
            latent site.
    """

    def _get_trace(self, model, guide, args, kwargs):
        """The guide's trace at the strata, the model's replayed on it, and log w ``(C, B)``."""
        strata = _Strata()
        with strata:
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        latent = [name for name in guide_trace.stochastic_nodes if not site_is_subsample(guide_trace.nodes[name])]
        if len(strata.log_weights) != 1 or len(latent) != 1:
            raise ValueError(f"the stratified ELBO needs a guide with exactly one latent site whose "
                             f"distribution has strata() (guide=marginal_mixture with prior=mixture); "
                             f"this guide has latent sites {latent}, {len(strata.log_weights)} with strata")
        return model_trace, guide_trace, latent[0], strata.log_weights[0]

    def _weighted_log_ratio(self, model, guide, args, kwargs) -> torch.Tensor:
        model_trace, guide_trace, latent, log_weights = self._get_trace(model, guide, args, kwargs)
        guide_trace.compute_log_prob()
        model_trace.compute_log_prob()
        log_r = sum(site["log_prob"] for site in model_trace.nodes.values()
                    if site["type"] == "sample" and not site_is_subsample(site))  # (C, B)
        log_r = log_r - guide_trace.nodes[latent]["log_prob"]  # (C, B)
        return (log_weights.exp() * log_r).sum()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """−ELBO estimate, differentiable; a 0-dim tensor in nats."""
        elbo = sum(self._weighted_log_ratio(model, guide, args, kwargs) for _ in range(self.num_particles))
        return -elbo / self.num_particles

    def loss(self, model, guide, *args, **kwargs) -> float:
        """−ELBO estimate as a float (nats)."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """−ELBO estimate; its gradient accumulated in the parameters' ``.grad``."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()
