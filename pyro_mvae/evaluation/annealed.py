"""The AIS and BDMC parts of ``pyro-mvae evaluate`` (``--estimator ais``, ``--bdmc N``):
per-image AIS estimates beside IWAE's, with their paired difference and cost, and the BDMC
sandwich on images simulated from the model."""

import time
from dataclasses import asdict

import numpy as np
import torch

from pyro_mvae.infer.ais import DISAGREEMENT_NATS, AISSettings, ais_log_likelihood, starts_disagree
from pyro_mvae.infer.bdmc import bdmc
from pyro_mvae.infer.iwae import mean_and_stderr


def ais_section(vae, x: torch.Tensor, settings: AISSettings, iwae: np.ndarray, iwae_seconds: float,
                progress: bool) -> tuple[dict, dict]:
    """AIS log p(x) of images x ``(N, *event)``: per-image columns ``{"ais": (N,)}`` (nats; with
    ``init="both"`` also ``ais_guide`` and ``ais_prior``, each start's own estimate) and the
    ``eval.json`` entry: mean ± s.e., the paired difference AIS − IWAE ± s.e. (``iwae`` the
    per-image IWAE estimates), seconds per image of each and their ratio, acceptance rate, step
    sizes, the settings, and with two starts ``starts_disagree``: the images whose starts
    disagree beyond their noise (:func:`pyro_mvae.infer.ais.starts_disagree`)."""
    options = asdict(settings)
    tic = time.perf_counter()
    estimates, stats = ais_log_likelihood(vae, x, progress=progress, **options)
    per_start = stats.pop("per_start", None)
    seconds = (time.perf_counter() - tic) / x.shape[0]
    estimates = estimates.double().cpu()
    mean, se = mean_and_stderr(estimates)
    diff, diff_se = mean_and_stderr(estimates - torch.as_tensor(iwae))  # device: host-side scores
    section = {"ll": mean, "ll_se": se, "minus_iwae": diff, "minus_iwae_se": diff_se,
               "seconds_per_image": seconds, "iwae_seconds_per_image": iwae_seconds,
               "cost_ratio_to_iwae": seconds / iwae_seconds} | stats | {"max_particles": settings.max_particles,
                                                                       "step_size_start": settings.step_size}
    columns = {"ais": estimates.numpy()}
    if per_start is not None:
        (guide, guide_se), (prior, prior_se) = per_start["guide"], per_start["prior"]
        columns |= {"ais_guide": guide.double().cpu().numpy(), "ais_prior": prior.double().cpu().numpy()}
        disagree = starts_disagree(guide, prior, guide_se, prior_se).nonzero().flatten().tolist()
        section["starts_disagree"] = {"threshold_nats": DISAGREEMENT_NATS, "count": len(disagree), "images": disagree,
                                      "columns": "ais_guide, ais_prior of the per-image file"}
    return columns, section


def bdmc_section(vae, n: int, steps: tuple[int, ...], settings: AISSettings, progress: bool) -> dict:
    """The BDMC sandwich (:func:`pyro_mvae.infer.bdmc.bdmc`) on ``n`` simulated images for each T
    in ``steps``, with the chains, leapfrog steps and initial distribution of ``settings``, and
    its wall time."""
    tic = time.perf_counter()
    report = bdmc(vae, n, steps, settings.chains, settings.leapfrog, settings.init, settings.step_size,
                  settings.max_particles, progress)
    return report | {"seconds": time.perf_counter() - tic}
