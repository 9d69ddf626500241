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
# # Does the prior find the digits?
#
# A mixture prior with C = 10 components, p(z) = Σ_c π_c N(z; μ_c, diag σ_c²), chooses one
# component per image. Nothing in training asks the components to be the ten digits. This
# tutorial asks two questions on scikit-learn's 8×8 digits:
#
# 1. **Unsupervised**: does the most likely component argmax q(c | x) of a trained model group the
#    images by digit? Scored by the best one-to-one matching of components to digits (cluster
#    accuracy, Hungarian algorithm) and by NMI ([evaluation](../guide/evaluation.md#clustering-with-the-mixture-prior)).
# 2. **Semi-supervised**: with 100 labelled images (10 per digit) and the component observed as the
#    class on them (Kingma et al. 2014's M2, `data.labelled=100`), how often is argmax q(c | x) the
#    right digit ([semi-supervised M2](../guide/semi_supervised.md))?
#
# Each model trains for 50 epochs (one CPU thread: about four minutes for the three). Built at that
# budget (`tests/test_tutorials_full.py`, which checks that M2's error is below the best
# unsupervised model's), the page printed cluster accuracies of 0.572 (VaDE-like) and 0.428
# (marginal guide), and a 12.5% test error for M2 with 100 labels.

# %% tags=["remove-stderr"]
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyro
import torch
from IPython.display import Image, display

from pyro_mvae import TrainerConfig, build_vae, fit
from pyro_mvae.data import load_digits
from pyro_mvae.evaluation import figures
from pyro_mvae.evaluation.evaluate import evaluate_final

SMOKE_TEST = "PYRO_MVAE_SMOKE_TEST" in os.environ  # CI builds the docs with a small budget
EPOCHS = 3 if SMOKE_TEST else 50
K = 100 if SMOKE_TEST else 1000  # importance samples of the test log-likelihood
torch.set_num_threads(1)
if SMOKE_TEST:
    print(f"Built with the smoke budget (PYRO_MVAE_SMOKE_TEST): {EPOCHS} epochs per model instead of 50, "
          f"K = {K}. These models are barely trained: the comparisons below are printed from their numbers, "
          "whichever way they come out.")


def train(name: str, data, guide: dict, objective: str, prior: dict | None = None, **trainer) -> dict:
    """Train a C = 10 mixture-prior VAE on ``data`` in runs/clusters/<name>; returns its eval.json."""
    pyro.set_rng_seed(0)
    vae = build_vae(data.event_shape, {"name": "mixture", "components": 10, **(prior or {})}, guide,
                    {"name": "bernoulli"}, {"name": "mlp"})
    run_dir = Path("runs/clusters") / name
    shutil.rmtree(run_dir, ignore_errors=True)  # fit refuses a directory that already holds a run
    settings = TrainerConfig(epochs=EPOCHS, batch_size=20, eval_samples=K, progress=False, **trainer)
    fit(vae, data, settings, {"name": objective}, run_dir, config={}, evaluate=evaluate_final)
    return json.loads((run_dir / "eval.json").read_text())


def show_confusion(name: str, as_classes: bool) -> None:
    """The labels × components table of a run's test images (its per-image CSV)."""
    with open(Path("runs/clusters") / name / "per_datapoint_test.csv") as f:
        rows = list(csv.DictReader(f))
    clusters = np.array([int(r["cluster"]) for r in rows])  # (297,) argmax q(c | x)
    labels = np.array([int(r["label"]) for r in rows])  # (297,)
    path = Path("runs/clusters") / f"{name}.png"
    figures.confusion_matrix(clusters, labels, path, as_classes=as_classes)
    display(Image(filename=str(path)))


# %% [markdown]
# ## Without labels: two ways to train the prior
#
# First the VaDE-like model (Jiang et al. 2017): a Gaussian guide q(z | x), the components
# read off the prior's responsibilities p(c | E_q z), the weights π kept flat
# (`prior.learn_weights=false`) and the mixture restarted at epoch 10 from a Gaussian mixture
# fitted to the guide's draws (`trainer.gmm_init_epoch=10`: VaDE's start). Then the marginal
# guide, q(z | x) = Σ_c q(c | x) q(z | c, x), with its own q(c | x) and learned weights.

# %%
digits = load_digits()
vade = train("vade_like", digits, {"name": "gaussian"}, "trace", prior={"learn_weights": False},
             gmm_init_epoch=min(10, EPOCHS - 1))
marginal = train("marginal", digits, {"name": "marginal_mixture"}, "stratified")
for name, scores in (("VaDE-like (Gaussian guide, flat π, GMM start)", vade), ("marginal guide", marginal)):
    print(f"{name}: IWAE {scores['iwae_ll']:.2f} nats, cluster accuracy {scores['cluster_accuracy']:.3f}, "
          f"NMI {scores['nmi']:.3f}, {scores['clusters_used']} components used "
          f"(usage perplexity {scores['usage_perplexity']:.2f})")
show_confusion("vade_like", as_classes=False)

# %% [markdown]
# The table above puts each digit (row) against the component its images fall in, the components
# ordered by the matching that maximises the diagonal: the cluster accuracy is the share of
# images on the diagonal. Chance is about 0.1; the components find some digits and merge others
# (on the digits, 3 seeds × 100 epochs gave 0.63 for the VaDE-like model and 0.43-0.50 for the
# marginal guide, [evaluation guide](../guide/evaluation.md#training-a-mixture-prior-that-clusters)).

# %% [markdown]
# ## With 100 labels: M2
#
# `load_digits(labelled=100)` keeps the labels of 10 training images per digit (chosen by the
# run's seed) and hides the others. On a labelled image the model observes c = y and the loss
# gains α · log q(c = y | x); on the others c is summed out by enumeration (`objective=enum`). The
# components are now named: component 3 is the digit 3.

# %%
labelled = load_digits(labelled=100)
m2 = train("m2", labelled, {"name": "discrete_mixture"}, "enum")
print(f"M2, 100 labels: IWAE {m2['iwae_ll']:.2f} nats, test classification error "
      f"{100 * m2['classification_error']:.1f}%")
best_unsupervised = max(vade["cluster_accuracy"], marginal["cluster_accuracy"])
print(f"error with 100 labels: {100 * m2['classification_error']:.1f}%; "
      f"the best unsupervised model, even matched to the test labels after the fact: "
      f"{100 * (1 - best_unsupervised):.1f}%")
show_confusion("m2", as_classes=True)

# %% [markdown]
# ## On MNIST
#
# The same comparison on MNIST, on a GPU (the [results page](../results.md#semi-supervised-m2-on-mnist-100-labels)
# gives the commands, the protocol and every column): with 100 labels the enumerated M2 reached
# an 18.8% test error and the marginal guide 19.2% after 15-22 epochs, where Kingma et al. 2014
# report 11.97% ± 1.71 after full training; without labels, both mixture guides put every test
# image in one component (cluster accuracy 0.11), far from VaDE's 94.46%.
