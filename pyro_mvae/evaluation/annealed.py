"""The AIS and BDMC parts of ``pyro-mvae evaluate`` (``--estimator ais``, ``--bdmc N``):
per-image AIS estimates beside IWAE's, with their paired difference and cost, and the BDMC
sandwich on images simulated from the model."""

import time
from dataclasses import asdict

import numpy as np
import torch

from pyro_mvae.infer.ais import AISSettings, ais_log_likelihood
from pyro_mvae.infer.bdmc import bdmc
from pyro_mvae.infer.iwae import mean_and_stderr


def ais_section(vae, x: torch.Tensor, settings: AISSettings, iwae: np.ndarray, iwae_seconds: float,
                progress: bool) -> tuple[np.ndarray, dict]:
    """AIS log p(x) of images x ``(N, *event)``: per-image estimates ``(N,)`` (nats) and the
    ``eval.json`` entry: mean ± s.e., the paired difference AIS − IWAE ± s.e. (``iwae`` the
    per-image IWAE estimates), seconds per image of each and their ratio, acceptance rate, step
    sizes and the settings."""
    options = asdict(settings)
    tic = time.perf_counter()
    estimates, stats = ais_log_likelihood(vae, x, progress=progress, **options)
    seconds = (time.perf_counter() - tic) / x.shape[0]
    estimates = estimates.double().cpu()
    mean, se = mean_and_stderr(estimates)
    diff, diff_se = mean_and_stderr(estimates - torch.as_tensor(iwae))  # device: host-side scores
    section = {"ll": mean, "ll_se": se, "minus_iwae": diff, "minus_iwae_se": diff_se,
               "seconds_per_image": seconds, "iwae_seconds_per_image": iwae_seconds,
               "cost_ratio_to_iwae": seconds / iwae_seconds} | stats | {"max_particles": settings.max_particles,
                                                                       "step_size_start": settings.step_size}
    return estimates.numpy(), section


def bdmc_section(vae, n: int, steps: tuple[int, ...], settings: AISSettings, progress: bool) -> dict:
    """The BDMC sandwich (:func:`pyro_mvae.infer.bdmc.bdmc`) on ``n`` simulated images for each T
    in ``steps``, with the chains, leapfrog steps and initial distribution of ``settings``, and
    its wall time."""
    tic = time.perf_counter()
    report = bdmc(vae, n, steps, settings.chains, settings.leapfrog, settings.init, settings.step_size,
                  settings.max_particles, progress)
    return report | {"seconds": time.perf_counter() - tic}
