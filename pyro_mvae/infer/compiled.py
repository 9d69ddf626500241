"""The IWAE hot path under ``torch.compile`` (inductor), with the eager computation as fallback.

The expensive part of an IWAE chunk is log p(x | z_k) + log p(z_k) for k particles of B images:
the decoder on ``(k·B, d)`` and the likelihood's terms on ``(k, B, *event)``. Compiled, inductor
fuses the decoder's bias and activations and the Bernoulli terms instead of writing and reading
``(k, B, D)`` tensors between them. The draws z_k ~ q(z | x) and log q(z_k | x) stay eager, so the
compiled and eager estimates use the same draws and differ only by float rounding.

``compile`` settings: ``"true"`` compiles (a missing C++ compiler is an error that says so),
``"false"`` never does, ``"auto"`` compiles on CPU when the evaluation is large enough for the
compilation to pay (:data:`AUTO_MIN_WORK`, measured by ``experiments/bench_compile.py``) and the
toolchain is there. A function that fails to compile falls back to eager with one line on
stderr, never an error.
"""

import os
import shutil
import sys
from contextlib import contextmanager

import torch

from pyro_mvae.errors import ConfigError

SETTINGS = ("auto", "true", "false")
"""The values of ``compile=``, ``--compile`` and ``trainer.compile``."""

AUTO_MIN_WORK = 4e9
"""Images × K × values per image from which ``compile="auto"`` compiles. Measured by
``experiments/bench_compile.py`` (MLP 784-300-300-40 on MNIST, 2-core CPU): 16 s of cold
compilation against 7 ns (2 threads) to 15 ns (1 thread) saved per particle and value, paid back
after 270-530 images at K = 5000, i.e. 1e9-2.1e9; ``auto`` asks for twice that (2,000 MNIST
test images at K = 5000 are 7.8e9; digits' 297 at K = 5000, 9.5e7, are not)."""


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
    return cpu and problem is None and work >= AUTO_MIN_WORK  # auto: measured to pay on CPU only


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
    """:func:`log_joint` of ``vae`` under ``torch.compile`` (one compilation per chunk shape), kept on
    the model (so it lives and dies with it); falls back to eager for good, with one line on stderr,
    if compiling fails."""
    if "_compiled_log_joint" not in vae.__dict__:
        vae.__dict__["_compiled_log_joint"] = _Fallback(vae)
    return vae.__dict__["_compiled_log_joint"]


class _Fallback:
    """Calls the compiled function until it fails once, then the eager one."""

    def __init__(self, vae):
        self.vae = vae
        self.compiled = torch.compile(self._eager, dynamic=False)

    def _eager(self, z, x):
        return log_joint(self.vae, z, x)

    def __call__(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(z, x)
            except Exception as err:  # noqa: BLE001 - any compiler failure: fall back, say so once
                first_line = (str(err).splitlines() or [""])[0][:200]
                print(f"pyro-mvae: torch.compile failed ({type(err).__name__}: {first_line}); "
                      "continuing without compilation", file=sys.stderr)
                self.compiled = None
        return self._eager(z, x)
