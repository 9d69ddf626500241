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
# # The seed's per-dimension mixture prior: what it learns
#
# The seed paper's prior lets every latent dimension choose one of N learned Gaussians,
#
# $$p(z) = \prod_{j=1}^{d} \sum_{n=1}^{N} \pi_{jn}\, \mathcal N(z_j;\ \mu_{jn}, \sigma_{jn}^2),$$
#
# $N^d$ modes from 3·d·N numbers (`prior=factorized_mixture`, N = 3 by default). Paired with the
# Gaussian guide, the model scores z under this density with the choice summed out exactly, so
# training has no discrete variable to estimate a gradient for.
#
# This tutorial trains that model and a standard VAE, p(z) = N(0, I), with the same networks,
# budget and seed on the 8×8 digits, and asks three questions: does the learned p(z_j) match
# the distribution of codes the encoder actually produces, how many of its N components does
# each dimension use, and does the learned prior raise the test log-likelihood?

# %% tags=["remove-stderr"]
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pyro
import torch
from IPython.display import Image, display

from pyro_mvae import TrainerConfig, build_vae, fit, iwae_log_likelihood
from pyro_mvae.data import load_digits
from pyro_mvae.evaluation import diagnostics, figures
from pyro_mvae.infer.iwae import mean_and_stderr

SMOKE_TEST = "PYRO_MVAE_SMOKE_TEST" in os.environ  # CI builds the docs with a small budget
EPOCHS = 2 if SMOKE_TEST else 100  # early stopping (20 epochs without a better validation ELBO) may end sooner
K = 100 if SMOKE_TEST else 1000  # importance samples per test image
torch.set_num_threads(1)
if SMOKE_TEST:
    print(f"Built with the smoke budget (PYRO_MVAE_SMOKE_TEST): {EPOCHS} epochs per model instead of 100, K = {K}. "
          "The models below are barely trained and the numbers are printed whichever way they come out; "
          "the text quotes a full-budget run (tests/test_tutorials_full.py runs every tutorial at its full "
          "budget and checks its comparisons).")
data = load_digits()


def fmt(values):
    return " ".join(f"{v:.2f}" for v in values.tolist())


# %% [markdown]
# ## Two models, one budget
#
# Both models are built and trained by the same function; only the `prior` mapping differs.
# Both start from the same seed: `pyro.set_rng_seed(0)` before `build_vae` (the initial weights)
# and `fit(seed=0)` (the order of the batches, their binarisation and the Monte Carlo noise).

# %%
def train(prior):
    pyro.set_rng_seed(0)
    vae = build_vae(data.event_shape, prior=prior, guide={"name": "gaussian"}, likelihood={"name": "bernoulli"},
                    net={"name": "mlp", "hidden": [300, 300], "latent_dim": 40})
    run_dir = Path("runs") / prior["name"]
    shutil.rmtree(run_dir, ignore_errors=True)  # fit refuses a directory that already holds a run
    report = fit(vae, data, TrainerConfig(epochs=EPOCHS, batch_size=20, eval_samples=K, progress=False),
                 objective={"name": "auto"}, run_dir=run_dir, config={}, seed=0)
    print(f"{prior['name']:>18}: best epoch {report['best_epoch']} of {report['epochs_run']}, "
          f"best validation ELBO {report['best_val_elbo']:.2f} nats per image")
    return vae


seed_vae = train({"name": "factorized_mixture", "components": 3})
standard_vae = train({"name": "standard"})

# %% [markdown]
# ## Does the prior match what the encoder uses?
#
# The distribution of codes the encoder produces over the data is the aggregate posterior
# q(z) = E_x q(z | x). A prior that is a good density for the data's codes puts its mass where
# q(z) does; where p(z) has mass that q(z) lacks, samples from the model decode to images unlike
# the data, and where q(z) has mass that p(z) lacks, the KL term of the ELBO pays for it.
#
# `figures.latent_marginals` draws, for the eight most active dimensions (largest variance of
# the posterior mean E_q[z_j | x] over the images), a histogram of one draw z ~ q(z | x) per
# image under the prior's own p(z_j), with the mixture's weighted components as thin lines. It
# is the figure `pyro-mvae evaluate` writes as `figures/latent_marginals.png`; here it gets the
# 1,200 training images, binarised once.

# %%
x_train = next(data.train.batches(len(data.train)))  # (1200, 1, 8, 8), one binarisation
x_test = data.test.x  # (297, 1, 8, 8)
for name, vae in (("seed", seed_vae), ("standard", standard_vae)):
    pyro.set_rng_seed(1)
    figures.latent_marginals(vae, x_train, Path(f"{name}_marginals.png"))
    display(Image(f"{name}_marginals.png"))

# %% [markdown]
# Each panel is one latent dimension; the two figures belong to different models, whose
# dimensions have nothing to do with each other. For the seed's prior, compare the histogram
# with the black line: a dimension whose codes form separate clusters can be matched by
# components placed on them, which N(0, 1) cannot do; a dimension whose codes form one skewed
# or flat-topped bump can be matched by overlapping components, one bump with its shape
# learned; and a dimension whose codes form one Gaussian bump needs no more than N(0, 1).
#
# ## How many components does each dimension use?
#
# The perplexity of the weights π_j, exp(−Σ_n π_jn log π_jn), is N = 3 when a dimension's
# three components weigh the same and 1 when one takes all the mass. Beside it, the perplexity
# of the codes' average responsibilities, E_x p(c_j | z_j = E_q[z_j | x]), says how many
# components the encoder's codes fall into (`diagnostics.component_probabilities`).
# Active dimensions (`diagnostics.active_units`: Cov_x E_q[z_j | x] > 0.01) are those the
# decoder uses; the others are left at the prior. The column "modes" counts the local maxima of
# the learned density p(z_j) on a fine grid: $N^d$ modes are what the construction allows, the
# product of this column is how many the trained prior has.

# %%
prior = seed_vae.prior
with torch.no_grad():
    n_active, variances = diagnostics.active_units(seed_vae.encoder.mean(x_train))  # (40,)
    perplexity = diagnostics.perplexity(prior.weights)  # (40,)
    usage = diagnostics.perplexity(diagnostics.component_probabilities(seed_vae, x_train).mean(0))  # (40,)
    lo, hi = (prior.loc - 5 * prior.scale).min().item(), (prior.loc + 5 * prior.scale).max().item()
    density = prior.marginal_per_dim().log_prob(torch.linspace(lo, hi, 2001)[:, None])  # (2001, 40), log p(z_j)
    modes = ((density[1:-1] > density[:-2]) & (density[1:-1] >= density[2:])).sum(0)  # (40,) local maxima

top = variances.argsort(descending=True)[:8].tolist()
table = pd.DataFrame({"Var E_q[z_j | x]": variances[top].numpy(), "modes of p(z_j)": modes[top].numpy(),
                      "perplexity of π_j": perplexity[top].numpy(), "usage perplexity": usage[top].numpy(),
                      "weights π_j": [fmt(prior.weights[j]) for j in top],
                      "means μ_j": [fmt(prior.loc[j]) for j in top],
                      "scales σ_j": [fmt(prior.scale[j]) for j in top]}, index=pd.Index(top, name="j"))
print(f"{n_active} of 40 dimensions active; the 8 most active:")
print(table.round(3).to_string())
active = variances > diagnostics.ACTIVE_UNIT_THRESHOLD
for name, rows in (("active", active), ("inactive", ~active)):
    if rows.any():
        n = int(rows.sum())
        print(f"{n} {name} dimension{'s' * (n > 1)}: perplexity of π_j {perplexity[rows].mean():.2f} on average "
              f"({perplexity[rows].min():.2f} to {perplexity[rows].max():.2f}), {int((modes[rows] > 1).sum())} "
              "with more than one mode")
print(f"modes of p(z), the product over dimensions: {math.prod(modes.tolist()):,} (the construction allows 3^40)")
with torch.no_grad():
    print(f"standard VAE: {diagnostics.active_units(standard_vae.encoder.mean(x_train))[0]} of 40 dimensions active")

# %% [markdown]
# Built at its full budget (100 epochs per model; `tests/test_tutorials_full.py`), this page
# printed 7 of 40 dimensions active for the seed's model (6 for the standard VAE), perplexities
# of π_j between 2.7 and 3.0, and 2 modes of p(z) in all: on these small images the learned
# components of most dimensions overlap into one bump with a learned shape, and only one
# dimension's codes split into two clusters that the prior follows.
#
# ## Does the learned prior raise the log-likelihood?
#
# Both models are scored on the same 297 test images by the IWAE estimate (K importance
# samples, nats per image). Comparing the two means, each with its standard error over images,
# is too coarse: both models find the same digits hard. The comparison is the paired
# difference, the per-image difference of the two estimates averaged over the images, with its
# own standard error. The ELBO splits into the expected reconstruction log-likelihood and the
# KL term, which shows where a difference comes from.

# %%
pyro.set_rng_seed(2)
scores = {}
for name, vae in (("seed (factorized mixture)", seed_vae), ("standard N(0, I)", standard_vae)):
    log_lik, kl = vae.elbo_terms(x_test)  # one-sample E_q[log p(x | z)] and KL, (297,) each
    scores[name] = iwae_log_likelihood(vae, x_test, num_samples=K)  # (297,) nats per image
    (ll, ll_se), (elbo, elbo_se) = mean_and_stderr(scores[name]), mean_and_stderr(log_lik - kl)
    print(f"{name:>26}: IWAE (K={K}) {ll:.2f} ± {ll_se:.2f}, ELBO {elbo:.2f} ± {elbo_se:.2f} "
          f"= E_q[log p(x|z)] {log_lik.mean():.2f} − KL {kl.mean():.2f}  (nats per image)")
seed_ll, standard_ll = scores.values()
diff, diff_se = mean_and_stderr(seed_ll - standard_ll)
print(f"paired difference, seed − standard: {diff:+.2f} ± {diff_se:.2f} nats per image "
      f"({diff / diff_se:+.1f} standard errors; better on {(seed_ll > standard_ll).float().mean():.0%} of the images)")

# %% [markdown]
# How to read this: the standard error of the paired difference is typically several times
# smaller than that of either mean, because most of the variation between images (some digits are simply
# harder) is shared by both models. A difference of more than about two of its standard errors
# says that, on these images, one trained model scores higher than the other. It does not say
# that the prior is better in general: that takes several seeds per model (`pyro-mvae train -m
# seed=0,1,2` and `pyro-mvae compare`, which reports the standard error over seeds too), since
# two trainings of the same model also differ. Both numbers are IWAE lower bounds with the same
# K; the tutorial [How far from log p(x)?](trust) shows how far below log p(x) such a bound
# lies.
#
# Built at its full budget, this page printed IWAE −22.96 ± 0.20 for the seed's prior and
# −23.02 ± 0.21 for the standard one, a paired difference of +0.06 ± 0.05 nats per image
# (1.2 standard errors; better on 51% of the images), four times smaller a standard error than
# either mean's: on the 8×8 digits the learned prior does not measurably raise the
# log-likelihood. On MNIST, with 784 pixels and 10,000 test images, the same prior scored
# +0.73 ± 0.03 nats above the standard one
# ([results](../results.md#the-headline-table-one-row-per-prior-mnist-100-epochs-all-10000-test-images)).
