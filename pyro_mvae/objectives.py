"""Objective name -> a Pyro ELBO instance, with the checks that keep the bound valid (DESIGN.md §1).

| name | Pyro class | needs |
|---|---|---|
| ``trace`` | Trace_ELBO | — (score function without baselines for a discrete c) |
| ``tracegraph`` | TraceGraph_ELBO | — (baselines of a discrete guide act here only) |
| ``meanfield`` | TraceMeanField_ELBO | an analytic KL: standard prior + Gaussian guide |
| ``enum`` | TraceEnum_ELBO | a discrete guide whose choice can be enumerated (prior ``mixture``) |
| ``iwae`` | RenyiELBO(α = 0) | reparameterised guide sites; K = ``num_particles`` (Burda et al. 2016) |

RenyiELBO keeps the data plate when it averages the importance weights, so ``iwae`` is the
per-datapoint bound Σ_b log (1/K) Σ_k w_bk, vectorised over the K particles.
"""

from pyro.infer import ELBO

from pyro_mvae.guides import PairingError
from pyro_mvae.registry import OBJECTIVES, lookup


def check_pairing(vae, name: str, num_particles: int = 1) -> None:
    """Raises :class:`~pyro_mvae.guides.PairingError` when objective ``name`` makes no valid or
    tractable bound with ``vae``'s prior and guide; the message says why and what to use."""
    guide = vae.encoder
    if name == "iwae" and not guide.reparameterized:
        raise PairingError(
            "objective 'iwae' needs reparameterised guide sites, but guide 'discrete_mixture' samples "
            "c from a Categorical: use guide=relaxed_mixture, or objective=tracegraph / enum")
    if name == "enum" and not guide.chooses_component:
        raise PairingError(f"objective 'enum' sums over a discrete c, but guide '{guide.name}' has no "
                           "\"c\" site (the model sums c out exactly already): use objective=trace")
    if name == "enum" and guide.chooses_component and not guide.enumerable:
        if guide.reparameterized:
            raise PairingError("objective 'enum' sums over a discrete c; the relaxed guide's c is "
                               "continuous: use guide=discrete_mixture")
        raise PairingError(
            "objective 'enum' cannot enumerate the factorized prior's choice: each image has N^d "
            f"joint choices ({guide.layout.components}^{guide.layout.latent_dim}); use "
            "objective=tracegraph with a baseline, or prior=mixture")
    if name == "meanfield" and not (guide.analytic_kl and vae.prior.analytic_kl):
        raise PairingError("objective 'meanfield' needs an analytic KL(q ‖ p), which exists here only "
                           "for prior=standard with guide=gaussian; use objective=trace")
    baseline = getattr(guide, "baseline", "none")
    if baseline != "none" and name != "tracegraph":
        raise PairingError(f"guide.baseline={baseline} acts only under TraceGraph_ELBO: use "
                           "objective=tracegraph, or guide.baseline=none")
    if baseline == "neural" and num_particles > 1:
        raise PairingError("guide.baseline=neural predicts one cost per image and takes "
                           "objective.num_particles=1; use baseline=decaying_average for more particles")


def build_objective(name: str, num_particles: int = 1, vae=None) -> ELBO:
    """The ELBO registered as ``name`` averaging ``num_particles`` samples (vectorised), after
    :func:`check_pairing` when ``vae`` is given. For ``enum`` it switches the guide's c to
    parallel enumeration. Every site sits in the one ``"data"`` plate: ``max_plate_nesting=1``.

    Raises:
        UnknownNameError: for an unregistered name (the message lists the valid ones).
        PairingError: see :func:`check_pairing`.
        ValueError: for ``num_particles < 1``.
    """
    if num_particles < 1:
        raise ValueError(f"objective.num_particles must be >= 1, got {num_particles}")
    cls = lookup(OBJECTIVES, "objective", name)
    if vae is not None:
        check_pairing(vae, name, num_particles)
        if hasattr(vae.encoder, "enumerate"):
            vae.encoder.enumerate = name == "enum"
    options = {"num_particles": num_particles, "max_plate_nesting": 1,
               "vectorize_particles": num_particles > 1}
    if name == "iwae":
        options["alpha"] = 0.0
    return cls(**options)
