"""The hot paths under ``torch.compile`` (inductor), with the eager computation as fallback.

The expensive part of an IWAE chunk is log p(x | z_k) + log p(z_k) for k particles of B images:
the decoder on ``(k·B, d)`` and the likelihood's terms on ``(k, B, *event)``. Compiled, inductor
fuses the decoder's bias and activations and the Bernoulli terms instead of writing and reading
``(k, B, D)`` tensors between them. The draws z_k ~ q(z | x) and log q(z_k | x) stay eager, so the
compiled and eager estimates use the same draws and differ only by float rounding. In training,
the encoder's body and the decoder can run compiled inside the step, Pyro's tracing around them
eager (:class:`CompiledNetworks`).

``compile`` settings: ``"true"`` compiles (a missing C++ compiler is an error that says so),
``"false"`` never does, ``"auto"`` compiles the evaluation on CPU when it is large enough for the
compilation to pay (:data:`AUTO_MIN_WORK`, measured by ``experiments/bench_compile.py``) and the
toolchain is there, and trains eagerly (:func:`resolve_training`). A function that fails to
compile falls back to eager with one line on stderr, never an error (Dynamo's recompile limit
included, so that ``compiled`` in ``eval.json`` is true only where compiled code ran). A chunk
smaller than the first one compiled (the last chunk of K, the last batch of images) is padded up
to that shape, so an evaluation compiles once, not once per shape.
"""

import os
import shutil
import sys
from contextlib import contextmanager

import torch

from pyro_mvae.errors import ConfigError

SETTINGS = ("auto", "true", "false")
"""The values of ``compile=``, ``--compile`` and ``trainer.compile``."""

AUTO_MIN_WORK = 1.3e10
"""Images × K × values per image from which ``compile="auto"`` compiles. Measured by
``experiments/bench_compile.py`` (MLP 784-300-300-40 on MNIST, chunks of 50 particles, 2-core
CPU): 14-17 s of cold compilation against 29 ms (1 thread) and 10 ms (2 threads) saved per image at
K = 5000, paid back after 575 and 1,671 images, i.e. 2.3e9 and 6.6e9; ``auto`` asks for twice the
larger (MNIST's 10,000 test images at K = 5000 are 3.9e10; 2,000 of them, 7.8e9, and digits' 297,
9.5e7, are not)."""


AVX512_SIMDLEN = 256
"""The vector width in bits of inductor's generated CPU code where torch runs AVX512. Measured by
``experiments/bench_compile.py --simdlen`` (AMD EPYC, 2 cores): Sleef's 16-wide ``log1p`` in the
Bernoulli terms took 4.7 ns per value against 1.0 ns 8-wide, and the compiled IWAE-5000 took
0.049 s per image at 256 bits against 0.057 at 512 (2 threads; 1.44x and 1.86x the matrix
products). The matrix products (oneDNN/BLAS) are not affected."""


def inductor_options() -> dict:
    """Options of ``torch.compile`` for the compiled log-joint: AVX2-width vectors on an AVX512 CPU
    (:data:`AVX512_SIMDLEN`), nothing otherwise."""
    if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return {"cpp.simdlen": AVX512_SIMDLEN}
    return {}


def log_joint(vae, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) + log p(z) in nats: z ``(k, B, d)``, x ``(B, *event)`` -> ``(k, B)``; the
    prior's exact marginal (the component summed out), as every estimator scores it."""
    return vae.likelihood(vae.decode(z)).log_prob(x) + vae.prior.marginal().log_prob(z)


def toolchain_problem() -> str | None:
    """Why inductor cannot compile on the CPU here (None when it can): it needs a C++ compiler."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    if any(shutil.which(name) for name in names):
        return None
    return (f"torch.compile needs a C++ compiler on the CPU and none was found ({', '.join(names)}): "
            "install one (e.g. `apt install g++`), set CXX, or use compile=false")


def resolve(setting, work: float, device) -> bool:
    """Whether to compile: ``setting`` (``"auto"``, ``"true"``, ``"false"`` or a bool), ``work`` the
    evaluation's images × K × values per image, ``device`` the data's.

    Raises:
        ConfigError: an unknown setting, or ``"true"`` without a C++ compiler on the CPU.
    """
    setting = {True: "true", False: "false"}.get(setting, setting)
    if setting not in SETTINGS:
        raise ConfigError(f"compile must be one of {', '.join(SETTINGS)}, got {setting!r}")
    if setting == "false":
        return False
    cpu = torch.device(device).type == "cpu"
    problem = toolchain_problem() if cpu else None
    if setting == "true":
        if problem:
            raise ConfigError(problem)
        return True
    return cpu and problem is None and work >= AUTO_MIN_WORK  # auto: pays on CPU; on an H200 after ~160k images


def resolve_training(setting, device) -> bool:
    """Whether the training step's networks run compiled (:class:`CompiledNetworks`): only under
    ``"true"``. ``"auto"`` trains eagerly: on CPU the step with compiled networks was measured 8-20%
    slower at B = 100 and at B = 1000 in runs of 2026-12-03 and 2026-12-07 (``experiments/bench_svi.py
    --levers``, docs/benchmarks.md),
    on an NVIDIA H200 21% slower at B = 100 and 15% at B = 1000.

    Raises:
        ConfigError: as :func:`resolve`.
    """
    return resolve(setting, 0.0, device) and setting in ("true", True)


@contextmanager
def frozen(vae):
    """Within the block, none of ``vae``'s parameters requires a gradient (restored after): a
    compiled backward then computes the gradient in z only."""
    flags = [(p, p.requires_grad) for p in vae.parameters()]
    vae.requires_grad_(False)
    try:
        yield vae
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def compiled_log_joint(vae):
    """:func:`log_joint` of ``vae`` under ``torch.compile`` (one compilation per chunk shape, smaller
    chunks padded), kept on the model (so it lives and dies with it); falls back to eager for good,
    with one line on stderr, if compiling fails."""
    if "_compiled_log_joint" not in vae.__dict__:
        vae.__dict__["_compiled_log_joint"] = _LogJoint(vae)
    return vae.__dict__["_compiled_log_joint"]


def _pad(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """t with its dimension ``dim`` filled up to ``size`` by repeating its first slice (valid values,
    so the padded rows score finitely; the caller drops them)."""
    missing = size - t.shape[dim]
    if missing == 0:
        return t
    first = t.narrow(dim, 0, 1)
    return torch.cat([t, first.expand(*t.shape[:dim], missing, *t.shape[dim + 1:])], dim=dim)


class _Fallback:
    """Calls ``eager`` under ``torch.compile`` until that fails once, then ``eager`` itself, after one
    line on stderr. ``compiled`` is None once it has fallen back."""

    def __init__(self, eager, **options):
        self.eager = eager
        self.compiled = torch.compile(eager, options=inductor_options(), **options)

    def _compiled_call(self, *args):
        return self.compiled(*args)

    def __call__(self, *args):
        if self.compiled is not None:
            try:  # past Dynamo's recompile limit it would run eager silently: make that a failure
                with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
                    return self._compiled_call(*args)
            except Exception as err:  # noqa: BLE001 - any compiler failure: fall back, say so once
                first_line = (str(err).splitlines() or [""])[0][:200]
                print(f"pyro-mvae: torch.compile failed ({type(err).__name__}: {first_line}); "
                      "continuing without compilation", file=sys.stderr)
                self.compiled = None
        return self.eager(*args)


class _LogJoint(_Fallback):
    """:func:`log_joint` of a VAE, compiled at fixed shapes. A chunk that fits in the first compiled
    shape ``(k, B)`` and fills at least half of it is padded to it; others compile their own shape."""

    def __init__(self, vae):
        super().__init__(lambda z, x: log_joint(vae, z, x), dynamic=False)
        self.shape = None  # (k, B) of the first compiled call

    def _compiled_call(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The compiled log-joint ``(k, B)`` of z ``(k, B, d)`` and x ``(B, *event)``, computed at the
        first call's shape when this one fills at least half of it."""
        k, b = z.shape[:2]
        self.shape = self.shape or (k, b)
        if k > self.shape[0] or b > self.shape[1] or 2 * k * b < self.shape[0] * self.shape[1]:
            return self.compiled(z, x)  # larger or far smaller: a compilation of its own
        z = _pad(_pad(z, 0, self.shape[0]), 1, self.shape[1])  # (k0, B0, d)
        return self.compiled(z, _pad(x, 0, self.shape[1]))[:k, :b]  # (k0, B0) -> (k, B)


class CompiledNetworks:
    """The encoder's body and the decoder of a VAE with their ``forward`` under ``torch.compile``
    (forward and backward; each falls back to eager on its own), in force within :meth:`active` only: the
    training step's loss. Pyro's tracing, the heads and the densities stay eager; the modules, their
    parameters and state-dict keys are unchanged (checkpoints are the same). A ragged last batch
    makes Dynamo mark the batch dimension dynamic: one more compilation, none after it."""

    def __init__(self, vae):
        self.modules = (vae.encoder.body, vae.decoder)
        self.forwards = tuple(_Fallback(module.forward) for module in self.modules)

    @property
    def compiled(self) -> bool:
        """Whether both networks still run compiled (no fallback so far)."""
        return all(forward.compiled is not None for forward in self.forwards)

    @contextmanager
    def active(self):
        """Within the block, calling the body or the decoder runs its compiled ``forward``."""
        for module, forward in zip(self.modules, self.forwards):
            module.forward = forward  # an instance attribute: nn.Module.__call__ finds it first
        try:
            yield
        finally:
            for module in self.modules:
                del module.forward
