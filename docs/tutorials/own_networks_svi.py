# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own networks in a plain Pyro SVI script
#
# The package's priors, guides and likelihoods do not care which networks they sit on: the
# encoder *body* is any `nn.Module` mapping x (B, *event) to features (B, F), on which the guide
# puts its own linear head, and the *decoder* is any `nn.Module` mapping z (B, d) to the
# likelihood's parameters (B, *event). And `vae.model` and `vae.guide` are ordinary Pyro
# callables, so training needs nothing from the package: a `pyro.infer.SVI` loop will do.
#
# This tutorial puts the seed's factorized-mixture prior and a Gaussian guide on a small
# convolutional encoder and decoder of our own for the 8×8 digits (event shape (1, 8, 8)),
# trains it with `SVI` and `Trace_ELBO`, and scores it with the package's IWAE estimator and
# Pareto k̂. `examples/own_networks.py` in the repository tells the same story on RGB photo
# patches.

# %% tags=["remove-stderr"]
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch import nn
from torchvision.utils import make_grid

from pyro_mvae import build_vae, iwae_log_likelihood
from pyro_mvae.data import load_digits
from pyro_mvae.evaluation.diagnostics import KHAT_THRESHOLD, pareto_khat
from pyro_mvae.infer.iwae import log_weight_matrix, mean_and_stderr

SMOKE_TEST = "PYRO_MVAE_SMOKE_TEST" in os.environ  # CI builds the docs with a small budget
EPOCHS = 2 if SMOKE_TEST else 60  # passes over the 1,200 training images
K = 100 if SMOKE_TEST else 1000  # importance samples per test image
torch.set_num_threads(1)
if SMOKE_TEST:
    print(f"Built with the smoke budget (PYRO_MVAE_SMOKE_TEST): {EPOCHS} epochs instead of 60, K = {K}. "
          "The model below is barely trained and the numbers are printed whichever way they come out; "
          "the text quotes a full-budget run (tests/test_tutorials_full.py runs every tutorial at its full "
          "budget and checks its comparisons).")
pyro.set_rng_seed(0)

# %% [markdown]
# ## The networks
#
# The body keeps the 8×8 grid through a first convolution, halves it to 4×4 with a strided one
# and ends in 256 features; the decoder mirrors it with a transposed convolution and returns
# one Bernoulli logit per pixel, shaped like the image.

# %%
LATENT_DIM = 16

body = nn.Sequential(                                       # x (B, 1, 8, 8) -> features (B, 256)
    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),              # (B, 32, 8, 8)
    nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),   # (B, 64, 4, 4)
    nn.Flatten(), nn.Linear(64 * 4 * 4, 256), nn.ReLU())
decoder = nn.Sequential(                                    # z (B, 16) -> Bernoulli logits (B, 1, 8, 8)
    nn.Linear(LATENT_DIM, 64 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
    nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, 8, 8)
    nn.Conv2d(32, 1, 3, padding=1))

data = load_digits()
vae = build_vae(data.event_shape, prior={"name": "factorized_mixture", "components": 3},
                guide={"name": "gaussian"}, likelihood={"name": "bernoulli"},
                net={"latent_dim": LATENT_DIM}, encoder=body, decoder=decoder)
print("the guide's head on the body:", vae.encoder.head)
print("the run's net entry:", vae.spec["net"])

# %% [markdown]
# `build_vae` ran both networks once on a dummy batch: it found F = 256 and checked that the
# decoder returns (B, 1, 8, 8); a network of the wrong shape is refused there, naming the shape
# it should have. The Gaussian guide's head maps the 256 features to the 2 · 16 numbers of
# q(z | x) (means and scales).
#
# ## The model and guide as Pyro sees them
#
# Every site already sits in `pyro.plate("data", B)`: the guide's z has batch shape (B,) and
# event shape (16,), the model scores the same z under the prior (the mixture components summed
# out) and x under a Bernoulli whose event is the whole image (1, 8, 8). Tracing the guide and
# replaying the model on its z shows this (batch shapes left of the bar, event shapes right; the
# `data` row is the plate's own index site):

# %%
x = next(data.train.batches(20))  # (20, 1, 8, 8), binarised
guide_trace = poutine.trace(vae.guide).get_trace(x)
model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
guide_trace.compute_log_prob()
model_trace.compute_log_prob()
print(guide_trace.format_shapes(title="guide"))
print(model_trace.format_shapes(title="model"))
print(f"one-sample ELBO of this batch: "
      f"{(model_trace.log_prob_sum() - guide_trace.log_prob_sum()).item() / len(x):.2f} nats per image")

# %% [markdown]
# ## Training with SVI
#
# The VAE's parameters are ordinary `torch.nn` parameters and never enter Pyro's parameter
# store. `vae.svi_guide` is the guide that also records them as `param` sites, which is what
# `pyro.infer.SVI` and its `pyro.optim` optimiser need to find and update them. The training
# images keep their grey levels; `data.train.batches` re-binarises them at every batch, as the
# package's own training does. Unlike `fit`, this loop has no KL warm-up and no early stopping.

# %%
svi = SVI(vae.model, vae.svi_guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
train_loss, val_loss = [], []
for epoch in range(EPOCHS):
    total = sum(svi.step(xb) for xb in data.train.batches(20, shuffle=True))  # −ELBO summed over images
    train_loss.append(total / len(data.train))
    val_loss.append(svi.evaluate_loss(data.val.x) / len(data.val))
print(f"after {EPOCHS} epochs: −ELBO {train_loss[-1]:.2f} (training), {val_loss[-1]:.2f} (validation) nats per image")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(1, EPOCHS + 1), train_loss, label="training (mean over the epoch's batches)")
ax.plot(range(1, EPOCHS + 1), val_loss, label="validation (after the epoch)")
ax.set_xlabel("epoch")
ax.set_ylabel("−ELBO, nats per image")
ax.legend()
plt.show()

# %% [markdown]
# Samples from the trained model, the pixel probabilities of p(x | z) at z ~ p(z):

# %%
grid = make_grid(vae.sample(48), nrow=16, padding=1, pad_value=0.5)  # (3, H', W')
plt.figure(figsize=(9, 2))
plt.imshow(grid.permute(1, 2, 0))
plt.axis("off")
plt.show()

# %% [markdown]
# ## Scoring it
#
# The package's estimators take any VAE `build_vae` returns, own networks included:
# `iwae_log_likelihood` gives one IWAE estimate of log p(x) per test image (nats), and
# `pareto_khat` the Pareto k̂ of each image's K importance weights (`log_weight_matrix`), which
# says whether that estimate can be trusted (k̂ ≤ 0.7).

# %%
x_test = data.test.x  # (297, 1, 8, 8), binarised once
ll = iwae_log_likelihood(vae, x_test, num_samples=K)  # (297,) nats
khat = pareto_khat(log_weight_matrix(vae, x_test, K, chunk_size=500).numpy())  # (297,)
mean, se = mean_and_stderr(ll)
print(f"test IWAE log p(x) (K={K}) = {mean:.2f} ± {se:.2f} nats per image of 64 binary pixels")
print(f"Pareto k̂ > {KHAT_THRESHOLD} for {(khat > KHAT_THRESHOLD).mean():.0%} of {len(khat)} test images "
      f"(median {np.median(khat):.2f})")

# %% [markdown]
# Built at its full budget (60 epochs; `tests/test_tutorials_full.py`), this page printed a
# validation −ELBO of 23.77 nats after the last epoch, a test IWAE of −23.33 ± 0.21 nats per image
# and k̂ > 0.7 for 3% of the images, near the package's own MLP model of
# [Your first model](first_model) (−22.98 ± 0.20 with early stopping after 100 epochs).
#
# The IWAE number is a lower bound on log p(x); where many images have k̂ > 0.7 it may be far
# below it, and [How far from log p(x)?](trust) shows how to measure that with AIS and BDMC,
# which take this VAE as they are. To keep the result as a run directory that
# `pyro-mvae evaluate` can load, train with `fit(vae, data, ...)` instead of the loop above;
# `load_run(run_dir, encoder=body, decoder=decoder)` then takes the same modules again.
