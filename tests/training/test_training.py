"""SVI on real digits: every prior/guide pair learns; objectives agree; runs repeat under a seed."""

import json

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceGraph_ELBO

from pyro_mvae.data import load_digits
from pyro_mvae.infer.schedules import exponential_anneal, linear_anneal, linear_warmup
from pyro_mvae.models.registry import build_vae
from pyro_mvae.training import checkpoints
from pyro_mvae.training.report import evaluate_elbo
from pyro_mvae.training.train import TrainerConfig, fit

PAIRS = [("standard", "gaussian"), ("mixture", "gaussian"), ("factorized_mixture", "gaussian"),
         ("mixture", "relaxed_mixture"), ("factorized_mixture", "relaxed_mixture"),
         ("mixture", "marginal_mixture"), ("factorized_mixture", "marginal_mixture")]
SMALL_NET = {"name": "mlp", "hidden": [64], "latent_dim": 8}


def small_vae(prior, guide, data_dim=(1, 8, 8), **guide_opts):
    torch.manual_seed(0)
    return build_vae(data_dim, {"name": prior}, {"name": guide, **guide_opts},
                     {"name": "bernoulli"}, SMALL_NET)


def quick_trainer(**kw):
    opts = dict(epochs=4, batch_size=50, lr=3e-3, warmup_epochs=0, eval_samples=20,
                eval_chunk_size=10, progress=False)
    opts.update(kw)
    return TrainerConfig(**opts)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


ROUTES = [(p, g, {}, "trace") for p, g in PAIRS] + [
    ("mixture", "discrete_mixture", {}, "enum"),
    ("mixture", "discrete_mixture", {"baseline": "neural"}, "tracegraph"),
    ("factorized_mixture", "discrete_mixture", {"baseline": "decaying_average"}, "tracegraph"),
    ("factorized_mixture", "relaxed_mixture", {}, "iwae"),
    ("mixture", "marginal_mixture", {"estimator": "implicit"}, "iwae"),
    ("mixture", "marginal_mixture", {}, "stratified"),
    ("mixture", "marginal_mixture", {"baseline": "decaying_average"}, "tracegraph"),
    ("factorized_mixture", "relaxed_mixture", {"estimator": "gumbel_rao"}, "trace"),
    ("standard", "gaussian", {}, "meanfield"),
]


@pytest.mark.parametrize("prior,guide,options,objective", ROUTES)
def test_a_few_epochs_reduce_the_validation_loss(prior, guide, options, objective, digits, tmp_path):
    vae = small_vae(prior, guide, **options)
    pyro.set_rng_seed(1)
    before = evaluate_elbo(vae, digits.val, 100)["elbo"]
    particles = 5 if objective == "iwae" else 1
    report = fit(vae, digits, quick_trainer(), {"name": objective, "num_particles": particles},
                 tmp_path / "run", {})
    after = evaluate_elbo(vae, digits.val, 100)["elbo"]
    assert after > before + 5.0, (before, after)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2, 3]
    assert all(set(r) >= {"train_elbo", "val_elbo", "val_kl", "beta", "tau", "skipped_steps"} for r in lines)
    timings = [json.loads(line) for line in (tmp_path / "run" / "timings.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in timings] == [0, 1, 2, 3] and all(t["seconds"] > 0 for t in timings)
    assert report["test_iwae_ll"] >= report["test_elbo"] - 1.0  # IWAE bound is the tighter one


@pytest.mark.parametrize("prior,guide", PAIRS)
def test_trace_and_tracegraph_agree_on_a_reparameterised_model(prior, guide, digits):
    vae = small_vae(prior, guide)
    x = next(digits.train.batches(32))
    losses, grads = [], []
    for elbo in (Trace_ELBO(max_plate_nesting=1), TraceGraph_ELBO(max_plate_nesting=1)):
        pyro.set_rng_seed(3)
        vae.zero_grad()
        losses.append(elbo.loss_and_grads(vae.model, vae.svi_guide, x))
        grads.append([p.grad.clone() for p in vae.parameters()])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_same_seed_same_metrics_file(digits, tmp_path):
    files = []
    for name in ("a", "b"):
        vae = small_vae("factorized_mixture", "relaxed_mixture")
        fit(vae, digits, quick_trainer(epochs=2), {"name": "trace"}, tmp_path / name, {}, seed=7)
        files.append((tmp_path / name / "metrics.jsonl").read_bytes())
    assert files[0] == files[1] and files[0].count(b"\n") == 2


def test_best_checkpoint_holds_the_best_validation_epoch(digits, tmp_path):
    vae = small_vae("mixture", "gaussian")
    fit(vae, digits, quick_trainer(epochs=3), {"name": "tracegraph"}, tmp_path / "run", {"seed": 0})
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = max(lines, key=lambda r: r["val_elbo"])
    fresh = small_vae("mixture", "gaussian")
    ckpt = checkpoints.load(tmp_path / "run" / "best.pt", into=fresh)
    assert ckpt["epoch"] == best["epoch"] and ckpt["config"]["seed"] == 0
    assert ckpt["config"]["prior"]["name"] == "mixture" and ckpt["config"]["objective"]["name"] == "tracegraph"
    assert set(ckpt["optimizer"]) == {"state", "param_groups"}


def test_early_stopping_stops_after_patience(digits, tmp_path):
    vae = small_vae("standard", "gaussian")
    report = fit(vae, digits, quick_trainer(epochs=50, lr=1e-12, patience=2), {"name": "trace"},
                 tmp_path / "r", {})
    assert report["epochs_run"] < 50  # a frozen model cannot keep improving its validation ELBO


def test_tau_follows_its_schedule_per_step(digits, tmp_path):
    vae = small_vae("mixture", "relaxed_mixture")
    trainer = quick_trainer(epochs=2, tau_start=2.0, tau_end=0.5, tau_anneal_epochs=2,
                            tau_schedule="linear", tau_update="step")
    fit(vae, digits, trainer, {"name": "trace"}, tmp_path / "run", {})
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = 1200 // 50
    assert lines[0]["tau"] == pytest.approx(2.0 - 1.5 * (steps - 1) / steps / 2)  # last step of epoch 0
    assert lines[1]["tau"] == pytest.approx(2.0 - 1.5 * (2 * steps - 1) / steps / 2)


def test_bad_schedule_names_are_refused():
    with pytest.raises(ValueError, match="tau_schedule"):
        TrainerConfig(tau_schedule="cosine")
    with pytest.raises(ValueError, match="tau_update"):
        TrainerConfig(tau_update="batch")


def test_schedules():
    assert linear_warmup(0, 0.01, 10) == 0.01
    assert linear_warmup(5, 0.0, 10) == 0.5
    assert linear_warmup(20, 0.01, 10) == 1.0
    assert linear_warmup(3, 0.01, 0, end=4.0) == 4.0
    assert exponential_anneal(0, 1.0, 0.25, 10) == pytest.approx(1.0)
    assert exponential_anneal(5, 1.0, 0.25, 10) == pytest.approx(0.5)
    assert exponential_anneal(99, 1.0, 0.25, 10) == pytest.approx(0.25)
    assert linear_anneal(2.5, 1.0, 0.5, 5) == pytest.approx(0.75)


def test_the_gmm_start_and_the_flat_prior_train_and_are_refused_without_components(tmp_path, capsys):
    from pyro_mvae.cli import main

    quick = ["trainer.epochs=3", "trainer.eval_samples=20", "trainer.progress=false", "trainer.figures=false",
             "net.hidden=[32]", "net.latent_dim=4"]
    run = tmp_path / "run"
    assert main(["train", *quick, "prior=mixture", "prior.components=5", "prior.learn_weights=false",
                 "trainer.gmm_init_epoch=1", f"run_dir={run}"]) == 0
    state = torch.load(run / "best.pt", weights_only=True)["model"]
    assert torch.equal(state["prior.logits"], torch.zeros(5))  # flat: π never moved
    assert state["prior.scale_raw"].std() > 0  # the fitted σ differ by component (all equal at the start)
    assert main(["train", *quick, "prior=standard", "trainer.gmm_init_epoch=1", f"run_dir={tmp_path / 'no'}"]) == 2
    assert "prior 'standard' has no components" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_the_validation_iwae_every_n_epochs_on_the_first_images(digits, tmp_path):
    """trainer.val_iwae_every=2 scores epochs 0, 2 and the last (4) only; trainer.val_iwae_limit=30
    scores the first 30 validation images: the same number, under the same seed, as
    iwae_log_likelihood on those images."""
    from pathlib import Path

    from pyro_mvae.infer.iwae import iwae_log_likelihood
    from pyro_mvae.training.train import Run

    trainer = quick_trainer(epochs=5, val_iwae_samples=20, val_iwae_every=2, val_iwae_limit=30)
    fit(small_vae("standard", "gaussian"), digits, trainer, {"name": "trace"}, tmp_path / "run", {})
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if "val_iwae" in r] == [0, 2, 4]
    vae = small_vae("standard", "gaussian")
    run = Run(vae, digits, trainer, {"name": "trace"}, Path(tmp_path / "direct"), {}, seed=0)
    torch.manual_seed(3)
    got = run.validation_iwae()
    torch.manual_seed(3)
    expected = iwae_log_likelihood(vae, digits.val.x[:30], 20, trainer.eval_chunk_size, trainer.eval_batch_size,
                                   compile="false").mean().item()
    assert got == expected
