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
# # Your first model and its log-likelihood
#
# This tutorial trains the package's default model on scikit-learn's 8×8 handwritten digits
# from Python, looks at what it learned, and then measures the number a results table needs:
# the importance-weighted (IWAE) estimate of log p(x) per test image, in nats, with its
# standard error. It runs in a few minutes on one CPU thread.
#
# The model is the seed's: every one of the d = 40 latent dimensions chooses one of N = 3
# learned Gaussians (`prior=factorized_mixture`), the guide is a Gaussian q(z | x) (the
# component is summed out exactly in the model's p(z)), the likelihood is a Bernoulli over the
# 64 binary pixels, and the encoder and decoder are 64-300-300-40 MLPs.

# %% tags=["remove-stderr"]
import json
import math
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pyro
import torch
from torchvision.utils import make_grid

from pyro_mvae import TrainerConfig, build_vae, fit, iwae_log_likelihood
from pyro_mvae.data import load_digits
from pyro_mvae.infer.iwae import mean_and_stderr

SMOKE_TEST = "PYRO_MVAE_SMOKE_TEST" in os.environ  # CI builds the docs with a small budget
EPOCHS = 2 if SMOKE_TEST else 100  # as `pyro-mvae train`; early stopping may end it sooner
K_SWEEP = (1, 10, 100) if SMOKE_TEST else (1, 10, 100, 1000)
K = K_SWEEP[-1]  # importance samples of the reported estimate
torch.set_num_threads(1)  # one thread is as fast as several on a shared machine (see the benchmarks)
if SMOKE_TEST:
    print(f"Built with the smoke budget (PYRO_MVAE_SMOKE_TEST): {EPOCHS} epochs instead of 100, K up to {K}. "
          "The model below is barely trained and the numbers are printed whichever way they come out; "
          "the text quotes a full-budget run (tests/test_tutorials_full.py runs every tutorial at its full "
          "budget and checks its comparisons).")
pyro.set_rng_seed(0)  # the network's initial weights; fit() seeds the rest


def show_images(images, nrow, title):
    """Images (N, 1, 8, 8) in [0, 1] as one grid."""
    grid = make_grid(images.cpu(), nrow=nrow, padding=1, pad_value=0.5)  # (3, H', W')
    plt.figure(figsize=(nrow * 0.6, grid.shape[1] / grid.shape[2] * nrow * 0.6 + 0.4))
    plt.imshow(grid.permute(1, 2, 0))
    plt.axis("off")
    plt.title(title, fontsize=9)
    plt.show()


# %% [markdown]
# ## The data
#
# `load_digits` returns the 1,797 digits split by a fixed permutation into 1,200 training,
# 300 validation and 297 test images, each a tensor of shape (1, 8, 8). The training images keep
# their grey levels (intensity k/16) and are re-binarised at every batch, x ~ Bernoulli(intensity);
# validation and test images are binarised once with a fixed seed, so every model is scored on the
# same binary images.

# %%
data = load_digits()
x_test = data.test.x  # (297, 1, 8, 8), binary
print(f"train {tuple(data.train.x.shape)}, validation {tuple(data.val.x.shape)}, test {tuple(x_test.shape)}")
show_images(x_test[:32], nrow=16, title="the first 32 test images (binarised once)")

# %% [markdown]
# ## The model
#
# `build_vae` takes one mapping per part, each a registry name and its options; the VAE it
# returns is a `torch.nn.Module` with a Pyro `model` and `guide`.

# %%
vae = build_vae(data.event_shape,  # (1, 8, 8)
                prior={"name": "factorized_mixture", "components": 3},
                guide={"name": "gaussian"},
                likelihood={"name": "bernoulli"},
                net={"name": "mlp", "hidden": [300, 300], "latent_dim": 40})
print(vae.spec["prior"])
print(f"{sum(p.numel() for p in vae.parameters()):,} parameters, "
      f"{vae.prior.loc.numel() * 3} of them in the prior (weights, means and scales of 40 × 3 Gaussians)")

# %% [markdown]
# ## Training
#
# `fit` runs SVI with `Trace_ELBO` (`objective="auto"` picks it for this guide) and Adam
# (learning rate 10⁻³, batches of 20) for at most `epochs` epochs. The KL term is warmed up
# (β rises from 0.01 to 1 over the first 10 epochs), the validation ELBO is computed every
# epoch, training stops after 20 epochs without a better one, and the best epoch's parameters
# are kept and scored on the test images at the end. Everything goes into a run directory, here
# `runs/first_model` in the working directory; `pyro-mvae evaluate runs/first_model` and
# `pyro-mvae sample runs/first_model` work on it as on a run of the command line.

# %%
run_dir = Path("runs/first_model")
shutil.rmtree(run_dir, ignore_errors=True)  # fit refuses a directory that already holds a run
report = fit(vae, data, TrainerConfig(epochs=EPOCHS, batch_size=20, eval_samples=K, progress=False),
             objective={"name": "auto"}, run_dir=run_dir, config={})
print(f"best epoch {report['best_epoch']} of {report['epochs_run']}, {report['train_seconds']:.0f} s of training")
print(f"test IWAE log p(x) (K={report['K']}) = {report['test_iwae_ll']:.2f} ± {report['test_iwae_ll_se']:.2f} "
      f"nats per image; test ELBO = {report['test_elbo']:.2f} ± {report['test_elbo_se']:.2f}")
print(sorted(p.name for p in run_dir.iterdir()))

# %% [markdown]
# `metrics.jsonl` holds one line per epoch. The training ELBO is the β-weighted objective
# averaged over the epoch's batches, so during the warm-up it lies above the validation ELBO
# (which has β = 1) for a reason other than overfitting.

# %%
records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
epochs = [r["epoch"] for r in records]
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(epochs, [r["train_elbo"] for r in records], label="training ELBO (β-weighted)")
ax.plot(epochs, [r["val_elbo"] for r in records], label="validation ELBO (β = 1)")
ax.axvline(report["best_epoch"], color="grey", linestyle=":", label=f"best epoch ({report['best_epoch']})")
ax.set_ylim(min(r["val_elbo"] for r in records[1:] or records) - 3, max(r["train_elbo"] for r in records) + 1)
ax.set_xlabel("epoch")
ax.set_ylabel("nats per image")
twin = ax.twinx()
twin.plot(epochs, [r["beta"] for r in records], "k--", linewidth=0.8)
twin.set_ylabel("β (dashed)")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## Samples and reconstructions
#
# `vae.sample(n)` decodes z ~ p(z) and returns the mean of p(x | z), the pixel probabilities;
# `vae.reconstruct(x)` decodes the guide's posterior mean E_q[z | x]. Samples from the learned
# prior show whether the regions of latent space that p(z) puts mass on decode to digits.

# %%
show_images(vae.sample(64), nrow=16, title="samples: mean of p(x | z), z ~ p(z)")
pairs = torch.stack([x_test[:16], vae.reconstruct(x_test[:16])])  # (2, 16, 1, 8, 8): data row, reconstruction row
show_images(pairs.flatten(0, 1), nrow=16, title="test images (top) and their reconstructions (bottom)")

# %% [markdown]
# ## The log-likelihood of each test image
#
# `iwae_log_likelihood(vae, x, num_samples=K)` returns one number per image, a tensor of shape
# (N,) in nats:
#
# $$\log \hat p_K(x) = \log \frac{1}{K} \sum_{k=1}^K \frac{p(x \mid z_k)\, p(z_k)}{q(z_k \mid x)},
# \qquad z_k \sim q(z \mid x).$$
#
# Its expectation is a lower bound on log p(x) that rises with K towards log p(x) (Burda et al.
# 2016). It is the log-probability the model gives the image's 64 binary pixels, so
# exp(log p̂) is a probability of one particular binary image. We report the mean over the test
# images with its standard error (the standard deviation over images / √N): the s.e. says how
# much the mean would move on another test set of the same size, not how noisy the estimator is.
#
# Two references to read the number against: a model that flips a fair coin for every pixel
# scores 64 · log ½ = −44.36 nats; independent Bernoulli pixels with the training set's mean
# intensities do better (−27.31 ± 0.22 on these images). A trained VAE does much better than both:
# built at its full budget (100 epochs, K up to 1000; `tests/test_tutorials_full.py` checks it),
# this page printed −22.98 ± 0.20 nats, 4.33 ± 0.21 above independent pixels (paired). The last
# line below gives that paired difference for the model trained here.

# %%
ll = iwae_log_likelihood(vae, x_test, num_samples=K)  # (297,) nats per image
log_lik, kl = vae.elbo_terms(x_test)  # one-sample E_q[log p(x | z)] and KL(q ‖ p), (297,) each
elbo = log_lik - kl
pixel_p = data.train.x.mean(0).clamp(1e-3, 1 - 1e-3)  # (1, 8, 8) mean training intensities
independent = (x_test * pixel_p.log() + (1 - x_test) * (-pixel_p).log1p()).flatten(1).sum(1)  # (297,)

rows = {f"IWAE log p(x), K = {K}": ll, "ELBO": elbo, "  of which E_q[log p(x | z)]": log_lik,
        "  of which −KL(q(z | x) ‖ p(z))": -kl, "independent pixels": independent}
for name, values in rows.items():
    mean, se = mean_and_stderr(values)
    print(f"{name:34s} {mean:8.2f} ± {se:.2f} nats per image")
print(f"{'fair coin per pixel':34s} {64 * math.log(0.5):8.2f} nats per image")
gap = mean_and_stderr(ll - elbo)
print(f"IWAE − ELBO, paired over the same images: {gap[0]:.2f} ± {gap[1]:.2f} nats")
above, above_se = mean_and_stderr(ll - independent)
print(f"IWAE − independent pixels, paired: {above:+.2f} ± {above_se:.2f} nats per image")

# %% [markdown]
# The ELBO is the K = 1 case of the same estimator: with a Gaussian guide and the component
# summed out of p(z), the guide's only site is z and one importance weight is exactly
# log p(x, z) − log q(z | x). The IWAE estimate lies above it by the paired difference printed
# last: a difference between two numbers computed on the same images has a much smaller
# standard error than either, and that is the s.e. to quote when comparing them.
#
# ## How the estimate rises with K
#
# The K sweep below calls `iwae_log_likelihood` once per K (independent draws). The estimate
# rises quickly from K = 1 and then flattens (at the full budget: 0.67 ± 0.08 nats from K = 1 to
# 10, 0.11 more up to K = 1000); the remaining distance to log p(x) is not visible
# here (IWAE cannot tell it), and the tutorial [How far from log p(x)?](trust) measures it with
# annealed importance sampling.

# %%
sweep = {k: iwae_log_likelihood(vae, x_test, num_samples=k) for k in K_SWEEP}  # K -> (297,) nats
for k, values in sweep.items():
    (mean, se), (rise, rise_se) = mean_and_stderr(values), mean_and_stderr(values - sweep[1])
    print(f"K = {k:5d}: {mean:.2f} ± {se:.2f} nats per image"
          + (f"; above K = 1 by {rise:.2f} ± {rise_se:.2f} (paired)" if k > 1 else ""))
fig, ax = plt.subplots(figsize=(6, 4))
means, ses = zip(*(mean_and_stderr(values) for values in sweep.values()))
ax.errorbar(list(sweep), means, yerr=ses, marker="o", capsize=3, label="IWAE estimate of log p(x)")
ax.axhline(elbo.mean().item(), color="grey", linestyle="--", label="ELBO (one sample)")
ax.set_xscale("log")
ax.set_xlabel("K (importance samples)")
ax.set_ylabel("nats per image")
ax.legend()
plt.show()

# %% [markdown]
# The error bars are the s.e. over test images and overlap across K; the rise itself is
# measured on the same images at every K, and its paired standard error (printed above) is
# the one that says whether it is real.
#
# What to take from this page: a test-set mean of the IWAE estimate, in nats per image, with
# K and the number of images beside it, is a lower bound on the model's log-likelihood; report
# the ELBO next to it, and compare models by paired differences on the same images
# ([the next tutorial](seed_prior) does this for the seed's prior against N(0, I)).
