"""Annealed importance sampling of log p(x) with HMC transitions (Neal 2001), as evaluated for
decoder-based models by Wu, Burda, Salakhutdinov & Grosse 2017 ("On the Quantitative Analysis
of Decoder-Based Generative Models", §2–3), and its reverse for bidirectional Monte Carlo
(Grosse, Ghahramani & Adams 2015).

Per image, S chains z ~ q₀ (the guide's q(z | x), or the prior p(z), or by default half of them
from each) are annealed along the geometric path

    f_t(z) = q₀(z)^(1 − β_t) · p(x, z)^β_t,     0 = β_0 < β_1 < … < β_T = 1,

accumulating log w = Σ_t (β_t − β_{t−1}) (log p(x, z_{t−1}) − log q₀(z_{t−1})), with one HMC
transition leaving f_t invariant between weight updates. log (1/S) Σ_s w_s is a stochastic lower
bound on log p(x) (in expectation). As in the IWAE route, z is continuous: a mixture prior or
guide enters with its component summed out (exact densities), so every model of the package is
scored as the same density its IWAE estimate measures.

**Two starts** (``init="both"``, the default). Chains started in the guide inherit its blind
spots: where q(z | x) is far narrower than the posterior and off its mass, the early
distributions of the path sit where the posterior is not, and AIS underestimates log p(x) by nats
(``experiments/ais_starts.py``; issue 45 met it on a trained model). Chains started in the prior
(Wu et al. 2017's start) do not depend on the guide. The default starts from the defensive
mixture q₀ = ½ q(z | x) + ½ p(z) (Hesterberg 1995), half the chains drawn from each part, and
anneals all of them along the one path from q₀: an ordinary AIS run, unbiased for p(x), whose
weights go to the chains that reach the posterior whichever part they started in. The chains of
each part also give an estimate of their own (each equal to p(x) in expectation when both parts
reach the posterior), so the images where the two starts disagree beyond their noise are
reported (:func:`starts_disagree`).
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
    init: str = option("both", "both (half the chains from q(z | x), half from p(z), pooled; each start's estimate "
                               "reported) | guide (q(z | x), any component summed out) | prior (p(z))")
    step_size: float = option(0.05, "each image's first HMC step size, then adapted towards 0.65 acceptance")
    max_particles: int = option(1600, "chains × images annealed at once: the memory bound")

    def check(self):
        for name in ("steps", "chains", "leapfrog", "max_particles"):
            self.at_least(name, 1)
        self.one_of("init", ("both", "guide", "prior"))
        if self.init == "both" and self.chains < 2:
            self._fail("chains", "at least 2 with init=both (one chain for each start), or give init=guide or prior")
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


class DefensiveStart:
    """The defensive mixture q₀(z) = a · q(z | x) + (1 − a) · p(z) (Hesterberg 1995) of the
    guide's q(z | x) (batch ``(B,)``) and the prior's marginal p(z) (batch ``()``), event
    ``(d,)``; a = ``guide_share``."""

    def __init__(self, guide, prior, guide_share: float):
        self.guide, self.prior = guide, prior
        self.log_shares = (math.log(guide_share), math.log1p(-guide_share))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q₀(z) ``(S, B)`` in nats of z ``(S, B, d)``: a log-sum-exp of the two normalised densities."""
        return torch.logaddexp(self.guide.log_prob(z) + self.log_shares[0], self.prior.log_prob(z) + self.log_shares[1])


def start_chains(init: str, chains: int) -> dict[str, int]:
    """Chains per start: ``{"guide": ⌈S/2⌉, "prior": ⌊S/2⌋}`` for ``both``, else all S from ``init``."""
    return {"guide": chains - chains // 2, "prior": chains // 2} if init == "both" else {init: chains}


@evaluates
@torch.no_grad()
def initial_distribution(vae, x: torch.Tensor, init: str, chains: int = 1):
    """q₀ and the chains' start z ``(S, B, d)``, S = ``chains``: the guide's q(z | x) with any
    component summed out (batch ``(B,)``), the prior's marginal p(z) (batch ``()``), or for
    ``both`` the :class:`DefensiveStart` of the two with the guide's share ⌈S/2⌉/S, its first
    ⌈S/2⌉ chains drawn from the guide and the others from the prior (a stratified draw of q₀).

    Raises:
        ValueError: for ``init`` other than ``both``, ``guide`` or ``prior``, or ``both`` with
            fewer than 2 chains.
    """
    if init not in ("both", "guide", "prior"):
        raise ValueError(f"unknown AIS initial distribution '{init}'; choose both, guide or prior")
    if init == "both" and chains < 2:
        raise ValueError("init=both draws half the chains from each start and needs at least 2 chains")
    parts = {"guide": vae.encoder.posterior(x), "prior": vae.prior.marginal()}
    starts = start_chains(init, chains)
    z = torch.cat([parts[name].sample((count,) if name == "guide" else (count, x.shape[0]))
                   for name, count in starts.items()])  # (S, B, d)
    if init != "both":
        return parts[init], z
    return DefensiveStart(parts["guide"], parts["prior"], starts["guide"] / chains), z


@evaluates
def ais_chains(vae, x: torch.Tensor, steps: int, chains: int, leapfrog: int = 10, init: str = "both",
               step_size: float = 0.05, stats: AISStats | None = None, bar=None, log_joint=None) -> torch.Tensor:
    """Forward AIS log-weights ``(S, B)`` in nats of S = ``chains`` chains started in ``init``
    (:func:`initial_distribution`; with ``both`` the first ⌈S/2⌉ rows started in the guide) for
    images x ``(B, *event)``; ``log_joint`` as in :func:`anneal`."""
    with pyro.validation_enabled(False):
        initial, z = initial_distribution(vae, x, init, chains)
    return anneal(vae, x, z, initial, sigmoid_schedule(steps), leapfrog, step_size, stats=stats, bar=bar,
                  log_joint=log_joint)


def ais_batch(vae, x: torch.Tensor, steps: int, chains: int, leapfrog: int = 10, init: str = "both",
              step_size: float = 0.05, stats: AISStats | None = None, bar=None, log_joint=None) -> torch.Tensor:
    """Forward AIS estimates of log p(x) ``(B,)`` in nats for images x ``(B, *event)``: S =
    ``chains`` chains started in ``init``, combined by log-mean-exp."""
    log_w = ais_chains(vae, x, steps, chains, leapfrog, init, step_size, stats, bar, log_joint)  # (S, B)
    return torch.logsumexp(log_w, 0) - math.log(chains)


def log_mean_and_error(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log (1/S) Σ_s w_s and its standard error by the delta method, sd(w) / (√S · mean(w)), from
    log-weights ``(S, B)``: two ``(B,)`` tensors, nats (an infinite error for S = 1). An estimate
    of the noise that is itself optimistic when the weights are heavy-tailed."""
    chains = log_w.shape[0]
    mean = torch.logsumexp(log_w, 0) - math.log(chains)  # (B,)
    if chains == 1:
        return mean, torch.full_like(mean, math.inf)
    return mean, (log_w - mean).exp().std(0, correction=1) / math.sqrt(chains)  # w_s / mean(w): (S, B)


DISAGREEMENT_NATS = 1.0
"""Two starts' estimates of an image that differ by more than this (and by more than three times
their joint standard error) are reported as disagreeing."""


def starts_disagree(guide: torch.Tensor, prior: torch.Tensor, guide_se: torch.Tensor,
                    prior_se: torch.Tensor) -> torch.Tensor:
    """Which images' two AIS estimates ``(N,)`` (nats, with their standard errors) disagree: a
    difference above :data:`DISAGREEMENT_NATS` and above 3 joint standard errors, ``(N,)`` bool."""
    gap = (guide - prior).abs()
    return (gap > DISAGREEMENT_NATS) & (gap > 3 * (guide_se.pow(2) + prior_se.pow(2)).sqrt())


@evaluates
def ais_log_likelihood(vae, x: torch.Tensor, steps: int = 500, chains: int = 16, leapfrog: int = 10,
                       init: str = "both", step_size: float = 0.05, max_particles: int = 1600,
                       progress: bool = False, log_joint=None, compile="auto") -> tuple[torch.Tensor, dict]:
    """Per-datapoint AIS estimates of log p(x), ``(N,)`` in nats, for images x ``(N, *event)``, and
    the run's statistics (:meth:`AISStats.summary`, with the settings; with ``init="both"`` also
    ``per_start``: ``{"guide": (estimates, errors), "prior": (estimates, errors)}``, each start's
    own log p(x) estimates and standard errors ``(N,)``, nats, see :func:`starts_disagree`).

    ``init``: ``both`` (the defensive mixture of the guide and the prior, half the chains from each: see the
    module's note), ``guide`` or ``prior``. T = ``steps`` annealing distributions on a sigmoid
    schedule, S = ``chains`` chains per image, L = ``leapfrog`` steps per HMC transition (Wu et al. 2017). Cost: about
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
    if init == "both" and chunks[-1] == 1 and len(chunks) > 1:  # every chunk draws from both starts
        chunks = [*chunks[:-2], chunks[-2] + 1]
    stats = AISStats()
    rows = {start: [] for start in start_chains(init, chains)}  # per start, log-weights (S_chunk, b) per chunk
    with tqdm(total=math.ceil(x.shape[0] / batch) * len(chunks) * steps, desc=f"AIS T={steps} S={chains}",
              disable=not progress, leave=False) as bar:
        for xb in x.split(batch):  # (b, D)
            for name in rows:
                rows[name].append([])
            for count in chunks:
                log_w = ais_chains(vae, xb, steps, count, leapfrog, init, step_size, stats, bar, log_joint)  # (c, b)
                for name, part in zip(rows, log_w.split(list(start_chains(init, count).values()))):
                    rows[name][-1].append(part)
    log_w = {name: torch.cat([torch.cat(parts) for parts in batches], 1) for name, batches in rows.items()}  # (S_k, N)
    summary = stats.summary() | {"steps": steps, "chains": chains, "leapfrog": leapfrog, "init": init,
                                 "schedule": "sigmoid, delta 4"}
    if len(log_w) > 1:
        summary["per_start"] = {name: log_mean_and_error(w) for name, w in log_w.items()}  # ((N,), (N,)) each
    return torch.logsumexp(torch.cat(list(log_w.values())), 0) - math.log(chains), summary
