"""Multi-process training: 2 gloo ranks on CPU equal the 1-process computation they distribute.

Each rank draws its own noise (seed + rank), so the oracle is one process that replays both
ranks' shards of every global batch with their own RNG streams, sums their gradients and takes
one Adam step: exactly what DistributedDataParallel must compute, up to the order of the
floating-point sum.
"""

import pyro
import pytest
import torch

from pyro_mvae.cli import train
from pyro_mvae.compose import build_from_config, compose_config, trainer_settings
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.infer.steps import ELBOLoss, Stepper
from pyro_mvae.training.train import check_dataset, fit, make_optimizer

SEED, WORLD = 5, 2
OVERRIDES = ["data.limit=300", "data.val_size=100", "trainer.epochs=1", "trainer.warmup_epochs=0",
             "trainer.eval_samples=20", "trainer.eval_chunk_size=20", "trainer.progress=false", "net.hidden=[32]",
             "net.latent_dim=4", f"seed={SEED}"]


def replay_ranks(overrides: list[str], world: int) -> dict:
    """Parameters after one epoch, computed in this process as ``world`` ranks would."""
    config = compose_config(overrides)
    trainer = trainer_settings(config)
    torch.manual_seed(SEED)
    data, vae = build_from_config(config, torch.device("cpu"))
    elbo = build_objective(**config["objective"], vae=vae)
    optimizer = make_optimizer(vae, trainer.lr)
    vae.beta, vae.tau = trainer.beta(0), trainer.tau(0)
    streams = []
    for rank in range(world):  # what each rank's fit() draws before its first step
        pyro.set_rng_seed(SEED + rank)
        check_dataset(vae, data)
        streams.append(torch.get_rng_state())
    n, B = len(data.train), trainer.batch_size
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SEED * 1_000_003))
    with pyro.validation_enabled(False):
        for start in range(0, n, B):
            rows = data.train.x[order[start:start + B]]  # the global batch (B, D)
            optimizer.zero_grad()
            for rank in range(world):
                torch.set_rng_state(streams[rank])
                ELBOLoss(vae, elbo)(torch.bernoulli(rows[rank::world])).backward()  # grads add up
                streams[rank] = torch.get_rng_state()
            optimizer.step()
    return vae.state_dict()


@pytest.mark.parametrize("model", [["prior=standard", "guide=gaussian"],
                                   ["prior=factorized_mixture", "guide=relaxed_mixture"],
                                   ["prior=factorized_mixture", "guide=marginal_mixture"]])
def test_two_gloo_ranks_equal_one_process(tmp_path, model):
    overrides = OVERRIDES + model + [f"run_dir={tmp_path / 'run'}"]
    report = train(overrides + [f"trainer.devices={WORLD}"])
    assert report["processes"] == WORLD and report["n_test"] == 297
    trained = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    expected = replay_ranks(overrides, WORLD)
    for name, value in expected.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-4, atol=1e-5, msg=name)
    one_rank = replay_ranks(overrides, 1)  # the comparison is not vacuous: other noise, other result
    assert not all(torch.allclose(trained[k], v) for k, v in one_rank.items())


def test_objectives_without_a_differentiable_loss_are_refused_on_several_ranks(tmp_path):
    from pyro_mvae.training.distributed import Group

    config = compose_config(OVERRIDES + ["objective=tracegraph"])
    data, vae = build_from_config(config, torch.device("cpu"))
    with pytest.raises(ValueError, match="no differentiable loss"):
        fit(vae, data, trainer_settings(config), config["objective"], tmp_path / "run", {}, group=Group(0, 2))
    assert not (tmp_path / "run").exists()


def test_fast_and_svi_routes_give_the_same_loss_and_gradients():
    config = compose_config(OVERRIDES)
    torch.manual_seed(0)
    data, vae = build_from_config(config, torch.device("cpu"))
    x = next(data.train.batches(50))
    vae.tau = 0.7
    results = []
    for fast in (True, False):
        optimizer = torch.optim.SGD(vae.parameters(), lr=0.0)  # a step that moves nothing
        step = Stepper(vae, pyro.infer.Trace_ELBO(max_plate_nesting=1), optimizer, fast=fast, validate=True)
        pyro.set_rng_seed(1)
        loss = step(x)
        results.append((step.route, float(loss), [p.grad.clone() for p in vae.parameters()]))
    (route_a, loss_a, grads_a), (route_b, loss_b, grads_b) = results
    assert (route_a, route_b) == ("fast", "svi")
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b)
