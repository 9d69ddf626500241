"""Per-epoch schedules of β (KL warm-up) and τ (Concrete temperature)."""

import math


def linear_warmup(epoch: int, start: float, warmup_epochs: int, end: float = 1.0) -> float:
    """β at ``epoch`` (0-based): ``start`` rising linearly to ``end`` over ``warmup_epochs``.

    KL warm-up of Bowman et al. 2016 / Sønderby et al. 2016; ``end`` ≠ 1 gives a β-VAE weight
    (Higgins et al. 2017). ``warmup_epochs = 0`` uses ``end`` from the start.
    """
    if warmup_epochs <= 0:
        return end
    return start + (end - start) * min(1.0, epoch / warmup_epochs)


def linear_anneal(epoch: float, start: float, end: float, anneal_epochs: int) -> float:
    """τ at (possibly fractional) ``epoch``: linear from ``start`` to ``end`` over ``anneal_epochs``."""
    if anneal_epochs <= 0:
        return end
    return start + (end - start) * min(1.0, epoch / anneal_epochs)


def exponential_anneal(epoch: float, start: float, end: float, anneal_epochs: int) -> float:
    """τ at ``epoch``: ``start · (end / start)^(epoch / anneal_epochs)``, held at ``end`` afterwards.

    The exponential decay of Jang et al. 2017, reaching ``end`` after ``anneal_epochs`` epochs;
    ``epoch`` may be fractional (per-step annealing).
    """
    if anneal_epochs <= 0:
        return end
    fraction = min(1.0, epoch / anneal_epochs)
    return math.exp(math.log(start) + fraction * (math.log(end) - math.log(start)))


TAU_SCHEDULES = {"exponential": exponential_anneal, "linear": linear_anneal}
