"""Annealed importance sampling of log p(x) with HMC transitions (Neal 2001), as evaluated for
decoder-based models by Wu, Burda, Salakhutdinov & Grosse 2017 ("On the Quantitative Analysis
of Decoder-Based Generative Models", §2–3), and its reverse for bidirectional Monte Carlo
(Grosse, Ghahramani & Adams 2015).

Per image, S chains z ~ q₀ (the guide's q(z | x), or the prior p(z)) are annealed along the
geometric path

    f_t(z) = q₀(z)^(1 − β_t) · p(x, z)^β_t,     0 = β_0 < β_1 < … < β_T = 1,

accumulating log w = Σ_t (β_t − β_{t−1}) (log p(x, z_{t−1}) − log q₀(z_{t−1})), with one HMC
transition leaving f_t invariant between weight updates. log (1/S) Σ_s w_s is a stochastic lower
bound on log p(x) (in expectation). As in the IWAE route, z is continuous: a mixture prior or
guide enters with its component summed out (exact densities), so every model of the package is
scored as the same density its IWAE estimate measures.

The reverse chain starts from an exact posterior draw z ~ p(z | x) (available for data simulated
from the model) and runs the path from β = 1 to 0; −log (1/S) Σ_s w_s is then a stochastic upper
bound on log p(x) (BDMC).
"""

import math
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import pyro
import torch
from pyro.ops.integrator import potential_grad, velocity_verlet
from tqdm.auto import tqdm

from pyro_mvae.config import Settings, option
from pyro_mvae.infer import compiled
from pyro_mvae.models.modes import evaluates

TARGET_ACCEPTANCE = 0.65
"""HMC acceptance rate each image's step size is steered towards (Wu et al. 2017, §3)."""

STEP_SIZE_BOUNDS = (1e-4, 0.5)


@dataclass
class AISSettings(Settings):
    """Options of an AIS evaluation (``pyro-mvae evaluate --estimator ais``; the keyword
    arguments of :func:`ais_log_likelihood`)."""

    GROUP: ClassVar[str] = "ais"

    steps: int = option(500, "T, annealing distributions on the sigmoid schedule")
    chains: int = option(16, "S, independent chains per image, combined by log-mean-exp")
    leapfrog: int = option(10, "L, leapfrog steps per HMC transition")
    init: str = option("guide", "guide (q(z | x), any component summed out) | prior (p(z))")
    step_size: float = option(0.05, "each image's first HMC step size, then adapted towards 0.65 acceptance")
    max_particles: int = option(1600, "chains × images annealed at once: the memory bound")

    def check(self):
        for name in ("steps", "chains", "leapfrog", "max_particles"):
            self.at_least(name, 1)
        self.one_of("init", ("guide", "prior"))
        self.positive("step_size", below=STEP_SIZE_BOUNDS[1] + 1e-12)


def sigmoid_schedule(steps: int, delta: float = 4.0) -> torch.Tensor:
    """β_0..β_T ``(T + 1,)`` in float64: σ(δ (2t/T − 1)) rescaled to run from exactly 0 to 1
    (Wu et al. 2017, §3; Grosse et al. 2015). T = 1 gives [0, 1], plain importance sampling.

    Raises:
        ValueError: for ``steps`` below 1.
    """
    if steps < 1:
        raise ValueError(f"AIS needs at least 1 annealing step, got {steps}")
    s = torch.sigmoid(delta * torch.linspace(-1.0, 1.0, steps + 1, dtype=torch.float64))  # device: host-side schedule
    return (s - s[0]) / (s[-1] - s[0])


@dataclass
class AISStats:
    """What one AIS run reports besides its estimates: the mean HMC acceptance rate and the
    mean, min and max step size over images and transitions, and the step size of every image
    at every transition (``(T − 1, B)`` per batch, for a reverse run to replay)."""

    acceptance: list = field(default_factory=list)
    step_sizes: list = field(default_factory=list)

    def summary(self) -> dict:
        """``acceptance_rate`` and ``step_size_mean``, ``step_size_min``, ``step_size_max`` over every
        image and transition recorded (all None before the first transition)."""
        if not self.acceptance:
            return {"acceptance_rate": None, "step_size_mean": None, "step_size_min": None, "step_size_max": None}
        steps = torch.cat([s.flatten() for s in self.step_sizes])
        return {"acceptance_rate": torch.stack(self.acceptance).mean().item(), "step_size_mean": steps.mean().item(),
                "step_size_min": steps.min().item(), "step_size_max": steps.max().item()}


class _Path:
    """log q₀(z) and log p(x, z) of z ``(S, B, d)`` for images x ``(B, *event)``, each ``(S, B)``,
    and the potential energy U_β = −[log q₀ + β (log p(x, z) − log q₀)] of HMC at one β."""

    def __init__(self, vae, x: torch.Tensor, initial, log_joint=None):
        self.vae, self.x, self.initial = vae, x, initial
        self.log_joint = log_joint or partial(compiled.log_joint, vae)  # (z, x) -> (S, B)
        self.beta = 0.0
        self.last = None  # (log q₀, log p(x, z)) at the last point the potential was evaluated

    def log_densities(self, z: torch.Tensor):
        log_q = self.initial.log_prob(z)  # (S, B)
        return log_q, self.log_joint(z, self.x)

    def potential(self, sites: dict) -> torch.Tensor:
        """Σ over chains and images of U_β: a scalar, as Pyro's integrator expects; the
        per-chain terms are kept in ``self.last``."""
        log_q, log_joint = self.log_densities(sites["z"])
        self.last = (log_q.detach(), log_joint.detach())
        return -(log_q + self.beta * (log_joint - log_q)).sum()

    def energy(self) -> torch.Tensor:
        """U_β ``(S, B)`` at the last evaluated point."""
        log_q, log_joint = self.last
        return -(log_q + self.beta * (log_joint - log_q))


def _hmc(path: _Path, z: torch.Tensor, grads: dict, step_size: torch.Tensor, leapfrog: int):
    """One HMC transition of every chain at ``path.beta``: z ``(S, B, d)``, step_size ``(B,)``.
    Returns the new z and each chain's acceptance probability ``(S, B)``."""
    momentum = torch.randn_like(z)  # (S, B, d)
    start = path.energy() + 0.5 * momentum.pow(2).sum(-1)  # (S, B)
    z_new, r_new, _, _ = velocity_verlet({"z": z}, {"z": momentum}, path.potential, lambda r: r,
                                         step_size[:, None], leapfrog, grads)  # step (B, 1) broadcasts
    end = path.energy() + 0.5 * r_new["z"].pow(2).sum(-1)  # (S, B)
    log_accept = torch.nan_to_num(start - end, nan=-math.inf).clamp(max=0.0)
    accept = torch.rand_like(log_accept).log() < log_accept  # (S, B)
    return torch.where(accept[..., None], z_new["z"], z).detach(), log_accept.exp()


@evaluates
def anneal(vae, x: torch.Tensor, z: torch.Tensor, initial, betas: torch.Tensor, leapfrog: int = 10,
           step_size: float = 0.05, step_sizes: torch.Tensor | None = None, stats: AISStats | None = None,
           bar=None, log_joint=None) -> torch.Tensor:
    """Run S chains per image along ``betas`` and return their log-weights ``(S, B)``, nats.

    x ``(B, *event)``; z ``(S, B, d)`` the chains' start; ``initial`` is q₀ (batch ``(B,)`` or ``()``,
    event ``(d,)``). Increasing ``betas`` (0 → 1) is forward AIS; decreasing (1 → 0) the reverse
    chain of BDMC, whose log-weights estimate log 1/p(x). Each image's step size starts at
    ``step_size`` and is multiplied by 1.02 or 0.98 after every transition as its chains'
    acceptance is above or below :data:`TARGET_ACCEPTANCE`, unless ``step_sizes`` ``(T − 1, B)``
    fixes them (a reverse run replays its forward run's). ``leapfrog`` is L, the leapfrog steps
    per transition. ``log_joint(z, x)``: log p(x | z) + log p(z) ``(S, B)``, by default
    :func:`pyro_mvae.infer.compiled.log_joint`, eager (a compiled one was measured slower on CPU:
    ``experiments/bench_compile.py --ais``).
    """
    path = _Path(vae, x, initial, log_joint)
    log_w = torch.zeros(z.shape[:2], dtype=z.dtype, device=z.device)  # (S, B)
    eps = torch.full((x.shape[0],), step_size, dtype=z.dtype, device=z.device)  # (B,)
    with torch.enable_grad(), pyro.validation_enabled(False):
        for t in range(1, len(betas)):
            path.beta = float(betas[t])
            grads, _ = potential_grad(path.potential, {"z": z})  # also sets path.last at z
            log_q, log_joint = path.last
            log_w += float(betas[t] - betas[t - 1]) * (log_joint - log_q)
            if t < len(betas) - 1:  # the last weight update needs no transition after it
                if step_sizes is not None:
                    eps = step_sizes[t - 1]
                z, accept = _hmc(path, z, grads, eps, leapfrog)
                if stats is not None:
                    stats.acceptance.append(accept.mean())
                    stats.step_sizes.append(eps.clone())
                if step_sizes is None:
                    eps = (eps * torch.where(accept.mean(0) > TARGET_ACCEPTANCE, 1.02, 0.98)).clamp(*STEP_SIZE_BOUNDS)
            if bar is not None:
                bar.update(1)
    return log_w.detach()


@evaluates
def initial_distribution(vae, x: torch.Tensor, init: str):
    """q₀: the guide's q(z | x) with any component summed out (batch ``(B,)``) or the prior's
    marginal p(z) (batch ``()``); event ``(d,)``.

    Raises:
        ValueError: for ``init`` other than ``guide`` or ``prior``.
    """
    if init == "guide":
        return vae.encoder.posterior(x)
    if init == "prior":
        return vae.prior.marginal()
    raise ValueError(f"unknown AIS initial distribution '{init}'; choose guide or prior")


@evaluates
def ais_batch(vae, x: torch.Tensor, steps: int, chains: int, leapfrog: int = 10, init: str = "guide",
              step_size: float = 0.05, stats: AISStats | None = None, bar=None, log_joint=None) -> torch.Tensor:
    """Forward AIS estimates of log p(x) ``(B,)`` in nats for images x ``(B, *event)``: S =
    ``chains`` chains each, combined by log-mean-exp; ``log_joint`` as in :func:`anneal`."""
    with torch.no_grad(), pyro.validation_enabled(False):
        initial = initial_distribution(vae, x, init)
        z = initial.sample((chains,) if init == "guide" else (chains, x.shape[0]))  # (S, B, d)
    log_w = anneal(vae, x, z, initial, sigmoid_schedule(steps), leapfrog, step_size, stats=stats, bar=bar,
                   log_joint=log_joint)
    return torch.logsumexp(log_w, 0) - math.log(chains)


@evaluates
def ais_log_likelihood(vae, x: torch.Tensor, steps: int = 500, chains: int = 16, leapfrog: int = 10,
                       init: str = "guide", step_size: float = 0.05, max_particles: int = 1600,
                       progress: bool = False, log_joint=None, compile="auto") -> tuple[torch.Tensor, dict]:
    """Per-datapoint AIS estimates of log p(x), ``(N,)`` in nats, for images x ``(N, *event)``, and
    the run's statistics (:meth:`AISStats.summary`, with the settings).

    T = ``steps`` annealing distributions on a sigmoid schedule, S = ``chains`` chains per
    image, L = ``leapfrog`` steps per HMC transition (Wu et al. 2017). Cost: about
    N · S · T · (L + 1) decoder passes with their gradients. Images are annealed together in
    batches of ``max(1, max_particles // S)``, and the chains of one image in chunks of at most
    ``max_particles`` (their log-weights pooled): peak memory follows ``max_particles · (D + h)``
    floats whatever T and S are. ``log_joint`` as in :func:`anneal`.

    ``compile``: ``"true"`` runs the potential's log p(x | z) + log p(z) under ``torch.compile``
    (with the networks' parameters frozen meanwhile, so that its backward computes the gradient
    in z only); ``"auto"`` and ``"false"`` run it eagerly: compiled AIS was measured slower on CPU
    (``experiments/bench_compile.py --ais``) and is not measured on a GPU (the CUDA tests check eager
    AIS against the closed form).

    Raises:
        pyro_mvae.errors.ConfigError: for a setting out of range (:class:`AISSettings`).
        pyro_mvae.errors.DataError: for data the model cannot score.
        pyro_mvae.errors.ConfigError: an unknown ``compile``, or ``"true"`` without a C++ compiler.
    """
    AISSettings(steps=steps, chains=chains, leapfrog=leapfrog, init=init, step_size=step_size,
                max_particles=max_particles)
    vae.check_data(x)
    if compiled.resolve(compile, 0.0, x.device):  # work 0: auto never compiles AIS
        with compiled.frozen(vae):
            return ais_log_likelihood(vae, x, steps, chains, leapfrog, init, step_size, max_particles, progress,
                                      compiled.compiled_log_joint(vae), compile="false")
    batch = max(1, max_particles // chains)
    chunks = [min(max_particles, chains - s) for s in range(0, chains, max_particles)]  # chains per chunk
    stats = AISStats()
    out = []
    with tqdm(total=math.ceil(x.shape[0] / batch) * len(chunks) * steps, desc=f"AIS T={steps} S={chains}",
              disable=not progress, leave=False) as bar:
        for xb in x.split(batch):  # (b, D)
            parts = [ais_batch(vae, xb, steps, s, leapfrog, init, step_size, stats, bar, log_joint) + math.log(s)
                     for s in chunks]  # each log Σ_s w_s, (b,)
            out.append(torch.logsumexp(torch.stack(parts), 0) - math.log(chains))
    summary = stats.summary() | {"steps": steps, "chains": chains, "leapfrog": leapfrog, "init": init,
                                 "schedule": "sigmoid, delta 4"}
    return torch.cat(out), summary
