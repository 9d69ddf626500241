"""Training steps with the networks under torch.compile: the same draws give the eager step's loss
and gradients to float32 rounding (a ragged last batch included), the modules and checkpoints are
unchanged, a compiler failure falls back with a notice, and `auto` trains eagerly."""

import copy

import pyro
import pytest
import torch

from pyro_mvae.data import load_digits
from pyro_mvae.infer import compiled
from pyro_mvae.infer.steps import Stepper
from pyro_mvae.models.registry import build_vae

NO_COMPILER = compiled.toolchain_problem()


def _twin_steppers(device="cpu"):
    """Two steppers of one digits VAE (the seed's factorized mixture, relaxed guide) on ``device``,
    eager and with the networks compiled, and 137 binarised training images."""
    pyro.set_rng_seed(0)
    data = load_digits()
    vae = build_vae(data.event_shape, prior={"name": "factorized_mixture", "components": 3},
                    guide={"name": "relaxed_mixture"}, likelihood={"name": "bernoulli"},
                    net={"name": "mlp", "hidden": [64, 64], "latent_dim": 8}).to(device)
    vae.tau = 0.5
    twin = copy.deepcopy(vae)
    elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)
    eager = Stepper(vae, elbo, torch.optim.Adam(vae.parameters(), lr=1e-3))
    other = Stepper(twin, elbo, torch.optim.Adam(twin.parameters(), lr=1e-3),
                    networks=compiled.CompiledNetworks(twin))
    return eager, other, data.train.x[:137].bernoulli().to(device)  # (137, 1, 8, 8)


def _step_both(eager, other, x):
    """One step of each on the same draws: the losses (0-dim) and the gradients of each parameter."""
    losses = []
    for stepper in (eager, other):
        pyro.set_rng_seed(7)
        losses.append(stepper(x))
    grads = [(a.grad, b.grad) for a, b in zip(eager.vae.parameters(), other.vae.parameters(), strict=True)]
    return losses, grads


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor needs a C++ compiler: {NO_COMPILER}")
def test_a_compiled_training_step_equals_the_eager_step_on_the_same_draws(capsys, device):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # no graphs of other tests' networks: the count below is this test's
    eager, other, x = _twin_steppers(device)
    counters.clear()
    for xb in (x[:100], x[:100], x[100:]):  # a ragged last batch (37 images) after two full ones
        (loss_e, loss_c), grads = _step_both(eager, other, xb)
        assert loss_e.abs() > 100  # nats summed over the batch: the comparison is not of zeros
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=0)  # float32 rounding of a sum
        for g_e, g_c in grads:
            torch.testing.assert_close(g_c, g_e, rtol=1e-4, atol=1e-5)
    assert other.compiled, capsys.readouterr().err  # no fallback
    assert counters["stats"]["unique_graphs"] == 4  # body and decoder, at B = 100 and then B dynamic
    for a, b in zip(eager.vae.parameters(), other.vae.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)  # three Adam steps moved them alike
    assert "forward" not in vars(other.vae.decoder) and "forward" not in vars(other.vae.encoder.body)
    assert other.vae.state_dict().keys() == eager.vae.state_dict().keys()  # checkpoints unchanged


def test_a_compiler_failure_in_training_falls_back_to_eager_with_one_notice(monkeypatch, capsys):
    def broken_compile(fn, **options):
        def fails(*args):
            raise RuntimeError("no backend here")
        return fails

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    eager, other, x = _twin_steppers()
    for xb in (x[:100], x[100:]):
        (loss_e, loss_c), grads = _step_both(eager, other, xb)
        assert torch.equal(loss_c, loss_e) and all(torch.equal(g_c, g_e) for g_e, g_c in grads)
    assert not other.compiled
    assert capsys.readouterr().err.count("torch.compile failed (RuntimeError: no backend here)") == 2  # per network


def test_auto_trains_eagerly_and_true_compiles_the_networks():
    assert not compiled.resolve_training("auto", "cpu") and not compiled.resolve_training("auto", "cuda")
    assert not compiled.resolve_training("false", "cpu")
    if NO_COMPILER is None:
        assert compiled.resolve_training("true", "cpu") and compiled.resolve_training(True, "cpu")


def test_training_compiled_without_a_compiler_is_refused_before_the_run_exists(tmp_path, monkeypatch, capsys):
    from pyro_mvae.cli import main

    monkeypatch.setenv("CXX", "/nonexistent/g++")
    run = tmp_path / "run"
    assert main(["train", "trainer.compile=true", "trainer.epochs=1", f"run_dir={run}"]) == 2
    assert not run.exists()
    assert "needs a C++ compiler" in capsys.readouterr().err
