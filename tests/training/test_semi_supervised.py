"""Semi-supervised M2 (data.labelled): the labelled bound term by term, its gradient, the labelled
choice, training from the CLI with each guide family and with pyro.infer.SVI, and the refusals."""

import csv
import json

import numpy as np
import pyro
import pyro.optim
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from scipy import special, stats

from pyro_mvae.cli import main
from pyro_mvae.data import load_digits
from pyro_mvae.data.labelled import choose_labelled, classification_error, default_alpha, labelled_set
from pyro_mvae.errors import ConfigError, DataError, PairingError
from pyro_mvae.models.registry import build_vae

QUICK = ["trainer.progress=false", "trainer.figures=false", "trainer.eval_samples=20", "prior=mixture"]
NET = {"name": "mlp", "hidden": [32], "latent_dim": 4}


def m2_vae(guide="relaxed_mixture", **options):
    torch.manual_seed(0)
    return build_vae((1, 8, 8), {"name": "mixture", "components": 10}, {"name": guide, **options},
                     {"name": "bernoulli"}, NET)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_the_labelled_choice_is_balanced_seeded_and_refuses_what_it_cannot_hold():
    y = np.repeat(np.arange(4), [30, 5, 20, 25])
    chosen = choose_labelled(y, 14, 4, seed=7)
    assert np.bincount(y[chosen]).tolist() == [4, 4, 3, 3]  # 14 // 4 each, the remainder to the first
    assert len(set(chosen)) == 14 and np.array_equal(chosen, np.sort(chosen))
    assert np.array_equal(chosen, choose_labelled(y, 14, 4, seed=7))
    assert not np.array_equal(chosen, choose_labelled(y, 14, 4, seed=8))
    with pytest.raises(DataError, match="one image of each of the 4 classes"):
        choose_labelled(y, 3, 4, seed=0)
    with pytest.raises(DataError, match="asks 6 images of class 1, and the training split has 5"):
        choose_labelled(y, 24, 4, seed=0)


def test_the_labelled_bound_is_its_terms_densities(digits):
    """−loss = log p(x | z) + log π_y + log N(z; μ_y, σ_y) − log q(z | c = y, x) + α log q(c = y | x),
    each term recomputed from the networks' outputs with scipy's densities."""
    vae = m2_vae()
    vae.alpha = 2.5
    x, y = torch.bernoulli(digits.train.x[:6]), digits.train.y[:6]
    guide = poutine.trace(vae.guide).get_trace(x, y)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x, y)
    assert set(guide.stochastic_nodes) == {"data", "z"} and model.nodes["c"]["is_observed"]
    z = guide.nodes["z"]["value"].detach().numpy()  # (6, 4)
    with torch.no_grad():
        logits, loc, scale = (t.numpy() for t in vae.encoder.component_params(x))  # (6, 10), (6, 10, 4) × 2
        probs = vae.decoder(guide.nodes["z"]["value"]).reshape(6, -1).sigmoid().numpy()  # (6, 64)
        prior_pi = vae.prior.weights.numpy()
        prior_loc, prior_scale = vae.prior.loc.numpy(), vae.prior.scale.numpy()  # (10, 4) each
    rows, labels = np.arange(6), y.numpy()
    expected = (stats.bernoulli.logpmf(x.reshape(6, -1).numpy(), probs).sum(1) + np.log(prior_pi[labels])
                + stats.norm.logpdf(z, prior_loc[labels], prior_scale[labels]).sum(1)
                - stats.norm.logpdf(z, loc[rows, labels], scale[rows, labels]).sum(1)
                + 2.5 * special.log_softmax(logits, 1)[rows, labels])
    got = model.log_prob_sum() - guide.log_prob_sum()
    assert got.item() == pytest.approx(expected.sum(), rel=1e-5)


def test_the_prior_weights_gradient_is_the_labels_minus_pi(digits):
    """∂(−loss)/∂logits = Σ_b (e_{y_b} − π) · β: only log π_y depends on π given the labels."""
    vae = m2_vae("discrete_mixture")
    vae.beta, vae.alpha = 0.5, 1.0
    with torch.no_grad():
        vae.prior.logits.copy_(torch.linspace(-1, 1, 10))
    x, y = torch.bernoulli(digits.train.x[:40]), digits.train.y[:40]
    Trace_ELBO().differentiable_loss(vae.model, vae.guide, x, y).backward()
    expected = -0.5 * (torch.nn.functional.one_hot(y, 10).sum(0) - 40 * vae.prior.weights.detach())
    torch.testing.assert_close(vae.prior.logits.grad, expected)


def test_labelled_batches_cycle_through_every_labelled_image_and_repeat_on_resume(digits):
    vae = m2_vae()
    chosen = labelled_set(vae, digits.train, 50, seed=3, batch_size=20, alpha=None)
    assert len(chosen.unlabelled) == len(digits.train) - 50 and chosen.batch_size == 20
    assert chosen.alpha == pytest.approx(default_alpha(len(digits.train), 50)) == pytest.approx(2.4)
    cycle = torch.cat([chosen.batch(3, 1, step)[1] for step in range(3)])  # 20 + 20 + 10 labels
    assert sorted(cycle.tolist()) == sorted(chosen.labelled.y.tolist())
    assert torch.equal(chosen.batch(3, 1, 4)[1], chosen.batch(3, 1, 4)[1])  # a function of (seed, epoch, step)
    assert not torch.equal(chosen.batch(3, 1, 0)[1], chosen.batch(3, 2, 0)[1])
    labelled_rows = set(chosen.indices.tolist())
    assert not labelled_rows & set(range(len(digits.train))) - labelled_rows  # disjoint by construction
    assert torch.equal(chosen.labelled.y, digits.train.y[torch.as_tensor(chosen.indices)])


GUIDES = {"relaxed": ["guide=relaxed_mixture", "guide.straight_through=false"],
          "straight_through": ["guide=relaxed_mixture"],
          "gumbel_rao": ["guide=relaxed_mixture", "guide.estimator=gumbel_rao"],
          "enum": ["guide=discrete_mixture", "objective=enum"],
          "score": ["guide=discrete_mixture", "objective=tracegraph", "guide.baseline=decaying_average"],
          "marginal": ["guide=marginal_mixture"]}


@pytest.mark.parametrize("family", GUIDES)
def test_m2_trains_from_the_cli_with_each_guide_family(family, tmp_path, capsys):
    """100 labels of 1,200 digits, 4 epochs: the test error of argmax q(c | x) well below chance (0.9)."""
    run = tmp_path / "run"
    assert main(["train", *QUICK, *GUIDES[family], "data.labelled=100", "trainer.epochs=4", f"run_dir={run}"]) == 0
    report, evaluation = (json.loads((run / name).read_text()) for name in ("report.json", "eval.json"))
    assert report["test_error"] < 0.5
    assert "classification error" in capsys.readouterr().out
    with open(run / "per_datapoint_test.csv") as f:
        rows = list(csv.DictReader(f))
    assert evaluation["classification_error"] == pytest.approx(np.mean([r["cluster"] != r["label"] for r in rows]))
    assert evaluation["classification_error"] == pytest.approx(report["test_error"])
    record = json.loads((run / "labelled.json").read_text())
    assert record["per_class"] == [10] * 10 and record["alpha"] == pytest.approx(1.2) and record["seed"] == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= m["val_error"] <= 1 and m["train_labelled_loss"] > 0 for m in metrics)
    if family == "enum":  # evaluate draws the confusion matrix with the components as the classes
        assert main(["evaluate", str(run), "-K", "20"]) == 0
        assert (run / "figures" / "clusters.png").exists()


def test_labels_lower_the_error_of_the_same_model(tmp_path):
    """The same model, seed and budget: observing 200 labels beats the unsupervised clustering's
    best one-to-one matching of components to classes (which sees every test label)."""
    runs = {"m2": ["data.labelled=200"], "unsupervised": []}
    scores = {}
    for name, extra in runs.items():
        run = tmp_path / name
        assert main(["train", *QUICK, "guide=relaxed_mixture", *extra, "trainer.epochs=4", f"run_dir={run}"]) == 0
        scores[name] = json.loads((run / "eval.json").read_text())
    assert 1 - scores["m2"]["classification_error"] > scores["unsupervised"]["cluster_accuracy"] + 0.1


def test_pyro_svi_trains_m2_on_vae_model_and_svi_guide(digits):
    """pyro.infer.SVI on vae.model / vae.svi_guide, alternating unlabelled and labelled steps."""
    vae = m2_vae("discrete_mixture")
    vae.encoder.use_enumeration(True)
    chosen = labelled_set(vae, digits.train, 100, seed=0, batch_size=20, alpha=None)
    vae.alpha = chosen.alpha
    svi = SVI(vae.model, vae.svi_guide, pyro.optim.Adam({"lr": 3e-3}), TraceEnum_ELBO(max_plate_nesting=1))
    before = classification_error(vae, digits.test)
    for epoch in range(3):
        for step, xb in enumerate(chosen.unlabelled.batches(20, shuffle=True, seed=epoch)):
            svi.step(xb)
            svi.step(*chosen.batch(0, epoch, step))
    after = classification_error(vae, digits.test)
    assert before > 0.7 and after < 0.4


@pytest.mark.parametrize("extra,error", [
    (["prior=factorized_mixture", "guide=relaxed_mixture", "data.labelled=100"], "priors with it: mixture"),
    (["guide=gaussian", "data.labelled=100"], "guides with it: discrete_mixture, marginal_mixture, relaxed_mixture"),
    (["guide=relaxed_mixture", "prior.components=5", "data.labelled=100"], "set prior.components=10"),
    (["guide=relaxed_mixture", "data.labelled=5"], "give data.labelled=10 or more"),
    (["guide=relaxed_mixture", "data.labelled=1200"], "leaves no unlabelled image"),
    (["guide=relaxed_mixture", "trainer.alpha=3"], "give data.labelled=N"),
    (["guide=relaxed_mixture", "data.labelled=0"], "data.labelled must be an integer >= 1"),
])
def test_what_m2_cannot_train_is_refused_before_anything_is_written(extra, error, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *QUICK, *extra, "trainer.epochs=1", f"run_dir={run}"]) == 2
    assert error in capsys.readouterr().err and not run.exists()


def test_data_without_labels_is_refused(tmp_path, capsys):
    images = tmp_path / "images.npy"
    np.save(images, np.random.default_rng(0).random((60, 8, 8)))
    run = tmp_path / "run"
    assert main(["train", *QUICK, "guide=relaxed_mixture", "data=arrays", f"data.path={images}",
                 "data.labelled=20", "trainer.epochs=1", f"run_dir={run}"]) == 2
    assert "every training label is 0" in capsys.readouterr().err and not run.exists()


def test_labels_given_to_a_model_that_cannot_observe_them_are_refused(digits):
    vae = build_vae((1, 8, 8), {"name": "factorized_mixture"}, {"name": "relaxed_mixture"}, {"name": "bernoulli"}, NET)
    with pytest.raises(PairingError, match="labels_component"):
        Trace_ELBO().differentiable_loss(vae.model, vae.guide, digits.train.x[:4], digits.train.y[:4])
    with pytest.raises(ConfigError, match="trainer.alpha must be"):
        from pyro_mvae.training.train import TrainerConfig
        TrainerConfig(alpha=-1.0)
