"""Bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015; for VAEs Wu et al. 2017, §4):
on data simulated from the model, forward AIS bounds log p(x) from below and reverse AIS,
started from the exact z that generated x, from above (both stochastically, in expectation).
The gap between them bounds the error of forward AIS with that schedule on such data.
"""

import math

import pyro
import torch
from tqdm.auto import tqdm

from pyro_mvae.infer.ais import AISStats, anneal, initial_distribution, sigmoid_schedule
from pyro_mvae.infer.iwae import mean_and_stderr
from pyro_mvae.models.modes import evaluates


@evaluates
@torch.no_grad()
def simulate(vae, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs from the model: z ~ p(z) ``(n, d)`` and x ~ p(x | z) ``(n, *event)`` (a Bernoulli
    likelihood gives binary images, a Gaussian one continuous values)."""
    with pyro.validation_enabled(False):
        z = vae.prior.marginal().sample((n,))  # (n, d)
        return z, vae.likelihood(vae.decode(z)).sample()  # (n, *event)


@evaluates
def bounds(vae, x: torch.Tensor, z_true: torch.Tensor, steps: int, chains: int, leapfrog: int = 10,
           init: str = "both", step_size: float = 0.05, bar=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds on log p(x), each ``(B,)`` in nats, for simulated images x
    ``(B, *event)`` with their true latents z_true ``(B, d)``: forward AIS over T = ``steps``
    distributions, then the reverse chain from z_true over the same schedule with the step
    sizes the forward chain used (reversed), so the reverse transitions are fixed in advance."""
    betas = sigmoid_schedule(steps)
    with pyro.validation_enabled(False):
        initial, z0 = initial_distribution(vae, x, init, chains)  # z0 (S, B, d)
    stats = AISStats()
    forward = anneal(vae, x, z0, initial, betas, leapfrog, step_size, stats=stats, bar=bar)  # (S, B)
    replay = torch.stack(stats.step_sizes).flip(0) if stats.step_sizes else None  # (T - 1, B)
    start = z_true.expand(chains, *z_true.shape).clone()  # (S, B, d)
    reverse = anneal(vae, x, start, initial, betas.flip(0), leapfrog, step_size, step_sizes=replay, bar=bar)
    log_mean = lambda log_w: torch.logsumexp(log_w, 0) - math.log(chains)  # noqa: E731  (S, B) -> (B,)
    return log_mean(forward), -log_mean(reverse)


@evaluates
def bdmc(vae, n: int = 100, steps: tuple[int, ...] = (10, 100, 1000), chains: int = 4, leapfrog: int = 10,
         init: str = "both", step_size: float = 0.05, max_particles: int = 1600, progress: bool = False) -> dict:
    """The BDMC sandwich on ``n`` images simulated from ``vae``, for each T in ``steps``.

    Returns ``{"n", "chains", "leapfrog", "init", "by_steps": {T: {"lower", "lower_se",
    "upper", "upper_se", "gap", "gap_se", "gap_per_image"}}, "steps_for_gap_below_1_nat"}``,
    in nats per image; the last is the smallest T whose mean gap is below 1 nat (None if none).

    Raises:
        ValueError: for n, chains or a T below 1.
    """
    if n < 1 or chains < 1 or min(steps) < 1:
        raise ValueError(f"BDMC needs n, chains and every T >= 1, got n={n}, chains={chains}, steps={list(steps)}")
    z_true, x = simulate(vae, n)  # (n, d), (n, *event)
    batch = max(1, max_particles // chains)
    out = {"n": n, "chains": chains, "leapfrog": leapfrog, "init": init, "by_steps": {}}
    with tqdm(total=2 * sum(steps) * math.ceil(n / batch), desc="BDMC", disable=not progress, leave=False) as bar:
        for t in sorted(steps):
            pairs = [bounds(vae, xb, zb, t, chains, leapfrog, init, step_size, bar)
                     for xb, zb in zip(x.split(batch), z_true.split(batch))]
            lower, upper = (torch.cat(side).cpu() for side in zip(*pairs))  # (n,) each
            out["by_steps"][str(t)] = _row(lower, upper)
    below = [int(t) for t, row in out["by_steps"].items() if row["gap"] < 1.0]
    out["steps_for_gap_below_1_nat"] = min(below) if below else None
    return out


def _row(lower: torch.Tensor, upper: torch.Tensor) -> dict:
    row = {}
    for name, values in (("lower", lower), ("upper", upper), ("gap", upper - lower)):
        row[name], row[f"{name}_se"] = mean_and_stderr(values)
    row["gap_per_image"] = (upper - lower).tolist()
    return row
