"""Per-datapoint importance-weighted log-likelihood (Burda et al. 2016, eq. 8; DESIGN.md §2).

    log p(x) ≈ log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x),    z_k ~ q(z | x)

with the component choice summed out exactly in p(z) and q(z | x) (both are then mixtures), so
for a mixture model this is the log-likelihood of the discrete mixture its parameters define.
The data plate is kept (unlike ``pyro.infer.importance.vectorized_importance_weights``, which
sums over it), and particles are drawn in chunks whose log-weights are combined by a running
log-sum-exp: memory follows ``chunk_size · batch_size · D`` whatever K is.
"""

import math

import pyro
import torch
from tqdm.auto import tqdm

from pyro_mvae.infer import compiled
from pyro_mvae.models.modes import evaluates


@evaluates
@torch.no_grad()
def log_importance_weights(vae, x: torch.Tensor, k: int, posterior=None, log_joint=None) -> torch.Tensor:
    """log p(x, z_k) − log q(z_k | x) for k particles z_k ~ q(z | x): x ``(B, *event)`` -> ``(k, B)``, nats.

    ``posterior`` is q(z | x) (batch ``(B,)``, event ``(d,)``) when the caller already encoded
    x; chunked callers pass it so the encoder runs once per batch, not once per chunk.
    ``log_joint(z, x)``: log p(x | z) + log p(z) ``(k, B)``, by default
    :func:`pyro_mvae.infer.compiled.log_joint` run eagerly (its compiled twin:
    :func:`pyro_mvae.infer.compiled.compiled_log_joint`). Argument validation is off here: x is
    checked once by :func:`iwae_log_likelihood`, and checking the support of every
    ``(k, B, *event)`` broadcast again is pure overhead.
    """
    with pyro.validation_enabled(False):
        if posterior is None:
            posterior = vae.encoder.posterior(x)
        z = posterior.sample((k,))  # (k, B, d)
        joint = compiled.log_joint(vae, z, x) if log_joint is None else log_joint(z, x)  # (k, B)
        return joint - posterior.log_prob(z)


def _chunks(vae, x: torch.Tensor, num_samples: int, chunk_size: int, log_joint=None):
    """Log-weights ``(k, B)`` of successive chunks of k ≤ chunk_size particles, K in all."""
    with pyro.validation_enabled(False):
        posterior = vae.encoder.posterior(x)  # batch (B,), event (d,)
    for start in range(0, num_samples, chunk_size):
        yield log_importance_weights(vae, x, min(chunk_size, num_samples - start), posterior, log_joint)


@evaluates
@torch.no_grad()
def log_weight_matrix(vae, x: torch.Tensor, num_samples: int, chunk_size: int, log_joint=None) -> torch.Tensor:
    """All K log importance weights of each image, drawn in chunks: x ``(B, *event)`` -> ``(B, K)``.

    Keeps K · B floats (for PSIS k̂ and K sweeps); :func:`iwae_batch` keeps only B.
    ``log_joint``: as in :func:`log_importance_weights`.
    """
    return torch.cat(list(_chunks(vae, x, num_samples, chunk_size, log_joint)), dim=0).T  # (K, B) -> (B, K)


@evaluates
@torch.no_grad()
def iwae_batch(vae, x: torch.Tensor, num_samples: int, chunk_size: int, log_joint=None) -> torch.Tensor:
    """IWAE log p(x) estimates ``(B,)`` in nats for one batch x ``(B, *event)``, K = ``num_samples``;
    ``log_joint`` as in :func:`log_importance_weights`."""
    total = torch.full((x.shape[0],), -math.inf, device=x.device)  # running log Σ_k w_k, (B,)
    for log_w in _chunks(vae, x, num_samples, chunk_size, log_joint):  # (k, B)
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
    return total - math.log(num_samples)


CPU_CHUNK_ROWS = 5000
"""Particles × images per chunk on a CPU when no chunk size is given (50 particles at 100 images).
Measured by ``experiments/bench_compile.py --chunks`` (MLP 784-300-300-40, MNIST, 2-core CPU):
IWAE-5000 took 0.054 s per image eager and 0.039 compiled at 5,000 rows, against 0.087 and 0.051 at
50,000 (500 particles): a chunk's ``(k·B, 784)`` decoder output then stays in the allocator's
reused memory instead of being mapped fresh from the OS (and faulted in) for every chunk."""

GPU_CHUNK_SIZE = 500
"""Particles per chunk on a GPU when no chunk size is given (50,000 rows at 100 images).
On an NVIDIA H200 (MLP 784-300-300-40, MNIST, K = 5000), 100 particles took 3× as long per image
as 500, and 1000-5000 no less than 500
(``experiments/bench_compile.py --device cuda --chunks``, docs/benchmarks.md)."""


def default_chunk_size(batch_size: int, device) -> int:
    """The chunk size when none is given: :data:`CPU_CHUNK_ROWS` // ``batch_size`` particles (at
    least 1) on a CPU, :data:`GPU_CHUNK_SIZE` elsewhere."""
    if torch.device(device).type == "cpu":
        return max(1, CPU_CHUNK_ROWS // batch_size)
    return GPU_CHUNK_SIZE


@evaluates
def iwae_log_likelihood(vae, x: torch.Tensor, num_samples: int = 5000, chunk_size: int | None = None,
                        batch_size: int = 100, progress: bool = False, compile="auto") -> torch.Tensor:
    """Per-datapoint IWAE estimates of log p(x), ``(N,)`` in nats, for images x ``(N, *event)``.

    A stochastic lower bound on log p(x) whose expectation rises with K (Burda et al. 2016,
    Theorem 1); K = 5000 is the published protocol. Peak memory is about
    ``chunk_size · batch_size · (D + d)`` floats, independent of K; ``chunk_size`` None: the
    measured default of :func:`default_chunk_size` for x's device.

    ``compile``: ``"auto"`` (default), ``"true"`` or ``"false"`` (or a bool): whether log p(x | z) +
    log p(z) of each chunk runs under ``torch.compile`` (:func:`pyro_mvae.infer.compiled.resolve`;
    ``auto`` compiles on CPU where the evaluation is large enough to pay for it). The draws are
    the same either way; the estimates differ by float rounding only.

    Raises:
        ValueError: for ``num_samples``, ``chunk_size`` or ``batch_size`` below 1.
        pyro_mvae.errors.ConfigError: an unknown ``compile``, or ``"true"`` without a C++ compiler.
        pyro_mvae.errors.DataError: for data the model cannot score.
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(batch_size, x.device)
    for name, value in (("num_samples", num_samples), ("chunk_size", chunk_size),
                        ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    vae.check_data(x)
    log_joint = joint_for(vae, x, num_samples, compile)
    batches = range(0, x.shape[0], batch_size)
    out = [iwae_batch(vae, x[i:i + batch_size], num_samples, chunk_size, log_joint)
           for i in tqdm(batches, desc=f"IWAE K={num_samples}", disable=not progress, leave=False)]
    return torch.cat(out)


def joint_for(vae, x: torch.Tensor, num_samples: int, setting):
    """The ``log_joint`` to score x ``(N, *event)`` with K = ``num_samples``: the compiled one when
    ``setting`` (see :func:`pyro_mvae.infer.compiled.resolve`) says so, else None (eager)."""
    work = x.shape[0] * num_samples * x[0].numel()  # images × K × values per image
    return compiled.compiled_log_joint(vae) if compiled.resolve(setting, work, x.device) else None


BYTES_PER_PARTICLE_PIXEL = 12
"""Peak bytes per particle × image × pixel of an IWAE chunk on CPU in float32, for the decoder's
output, the likelihood's broadcast and its log-density terms (≈ 3 float32 tensors of shape
``(chunk, B, D)``; measured by experiments/bench_iwae.py: 460 MiB at chunk 500, B 100, D 784)."""


def chunk_size_for(memory_mib: float, batch_size: int, data_dim: int) -> int:
    """Largest chunk of particles whose evaluation fits ``memory_mib`` MiB at this batch size.

    Raises:
        ValueError: when not even one particle fits (lower batch_size or raise the budget).
    """
    chunk = int(memory_mib * 2 ** 20 // (BYTES_PER_PARTICLE_PIXEL * batch_size * data_dim))
    if chunk < 1:
        raise ValueError(f"{memory_mib} MiB cannot hold one particle for {batch_size} images of "
                         f"{data_dim} pixels (about {BYTES_PER_PARTICLE_PIXEL * batch_size * data_dim / 2 ** 20:.1f} "
                         "MiB): raise the memory budget or lower the batch size")
    return chunk


def mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (sample s.d. / √N) of per-datapoint values ``(N,)``."""
    n = values.numel()
    se = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return values.mean().item(), se


def density_note(vae) -> str:
    """Which density the IWAE estimate measures, for reports."""
    if vae.prior.layout is None:
        return "log p(x) of the model with the prior's p(z)"
    note = ("log p(x) of the discrete mixture model (component summed out exactly in p(z) and "
            "in q(z | x))")
    if not vae.encoder.elbo_bounds_discrete_model:
        note += ("; training maximised the ELBO of the Concrete-relaxed model, a bound on a "
                 "different density")
    return note
