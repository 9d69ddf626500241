"""Objective name -> a Pyro ELBO instance (DESIGN.md §1, "Objectives")."""

from pyro.infer import ELBO

from pyro_mvae.registry import OBJECTIVES, lookup


def build_objective(name: str, num_particles: int = 1) -> ELBO:
    """The ELBO registered as ``name``, averaging ``num_particles`` samples per step.

    ``trace``: Trace_ELBO (reparameterised / score-function surrogate, no baselines);
    ``tracegraph``: TraceGraph_ELBO (score-function terms use the dependency graph and baselines).
    Every site sits in the one ``"data"`` plate, so ``max_plate_nesting=1``.

    Raises:
        UnknownNameError: for an unregistered name (the message lists the valid ones).
        ValueError: for ``num_particles < 1``.
    """
    if num_particles < 1:
        raise ValueError(f"objective.num_particles must be >= 1, got {num_particles}")
    return lookup(OBJECTIVES, "objective", name)(num_particles=num_particles, max_plate_nesting=1)
