"""Evaluation in eval mode (issue 34): with BatchNorm and Dropout networks of the user's own, an
image's IWAE, AIS and ELBO do not depend on the images that share its batch, evaluation leaves the
running statistics alone, and the caller's train mode comes back afterwards."""

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO
from torch import nn

from pyro_mvae.data import load_digits
from pyro_mvae.data.splits import Split
from pyro_mvae.evaluation import figures
from pyro_mvae.infer.ais import ais_log_likelihood
from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.models.modes import eval_mode
from pyro_mvae.models.registry import build_vae
from pyro_mvae.training.report import evaluate_elbo

LATENT = 4


def batchnorm_vae(prior: str = "factorized_mixture", guide: str = "gaussian"):
    """A digits VAE on networks with BatchNorm and Dropout, trained 30 SVI steps in train mode."""
    pyro.set_rng_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Dropout(0.3))
    decoder = nn.Sequential(nn.Linear(LATENT, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Dropout(0.3),
                            nn.Linear(48, 64), nn.Unflatten(1, (1, 8, 8)))
    vae = build_vae((1, 8, 8), {"name": prior}, {"name": guide}, {"name": "bernoulli"}, {"latent_dim": LATENT},
                    encoder=body, decoder=decoder)
    data = load_digits()
    optimizer, elbo = torch.optim.Adam(vae.parameters(), lr=3e-3), Trace_ELBO(max_plate_nesting=1)
    vae.train()
    for step in range(30):
        optimizer.zero_grad()
        elbo.loss_and_grads(vae.model, vae.svi_guide, data.train.x[50 * step % 1000:][:50].bernoulli())
        optimizer.step()
    return vae, data.test.x[:200].bernoulli(generator=torch.Generator().manual_seed(1))  # (200, 1, 8, 8)


def running_statistics(vae) -> list[torch.Tensor]:
    return [b.clone() for name, b in vae.named_buffers() if "running" in name or "num_batches" in name]


def neighbours_swapped(x: torch.Tensor, keep: int) -> torch.Tensor:
    """The first 100 images with every one but ``keep`` replaced by another test image."""
    other = x[100:200].clone()
    other[keep] = x[keep]
    return other


def test_the_networks_really_depend_on_the_batch_in_train_mode():  # the tests below have power
    vae, x = batchnorm_vae()
    vae.train()
    torch.manual_seed(0)
    alone = vae.encoder.body(x[:1].repeat(2, 1, 1, 1))[0]
    torch.manual_seed(0)
    assert not torch.allclose(alone, vae.encoder.body(x[:100])[0], atol=1e-3)


@pytest.mark.parametrize("prior,guide", [("factorized_mixture", "gaussian"), ("mixture", "relaxed_mixture")])
def test_an_images_iwae_does_not_depend_on_its_batch_and_running_statistics_stay(prior, guide):
    vae, x = batchnorm_vae(prior, guide)
    before = running_statistics(vae)
    estimates = []
    for batch in (x[:100], neighbours_swapped(x, keep=7)):
        pyro.set_rng_seed(5)  # the same draws for each position of the batch
        estimates.append(iwae_log_likelihood(vae, batch, num_samples=200, chunk_size=50))  # (100,)
    torch.testing.assert_close(estimates[1][7], estimates[0][7], rtol=0, atol=1e-4)  # nats, float rounding
    assert (estimates[1] - estimates[0]).abs().max() > 0.1  # the other images did change
    for a, b in zip(before, running_statistics(vae), strict=True):
        assert torch.equal(a, b)  # evaluating did not move BatchNorm's statistics
    assert vae.training and vae.decoder[1].training  # the caller's train mode is back


def test_an_image_scored_alone_scores_as_in_a_batch_of_100():
    vae, x = batchnorm_vae()
    pyro.set_rng_seed(6)
    alone = iwae_log_likelihood(vae, x[:20], num_samples=2000, chunk_size=2000, batch_size=1)  # (20,)
    pyro.set_rng_seed(7)
    in_batch = iwae_log_likelihood(vae, x[:100], num_samples=2000, chunk_size=500)[:20]
    # other draws: equal within the Monte Carlo error of K = 2000 (in train mode BatchNorm would
    # normalise a lone image by itself: see the first test)
    assert (alone - in_batch).abs().max() < 0.1, (alone - in_batch)


def test_ais_and_the_validation_elbo_do_not_depend_on_the_batch():
    vae, x = batchnorm_vae()
    before = running_statistics(vae)
    estimates = []
    for batch in (x[:100], neighbours_swapped(x, keep=3)):
        pyro.set_rng_seed(5)
        estimates.append(ais_log_likelihood(vae, batch[:10], steps=5, chains=2, leapfrog=2)[0])  # (10,)
    torch.testing.assert_close(estimates[1][3], estimates[0][3], rtol=0, atol=1e-4)
    elbos = []
    for batch in (x[:100], neighbours_swapped(x, keep=3)):
        pyro.set_rng_seed(5)
        elbos.append(vae.elbo_terms(batch))  # ((100,), (100,))
    for a, b in zip(*elbos, strict=True):
        torch.testing.assert_close(b[3], a[3], rtol=0, atol=1e-4)
    for a, b in zip(before, running_statistics(vae), strict=True):
        assert torch.equal(a, b)
    assert vae.training


def test_validation_figures_and_sampling_leave_the_running_statistics(tmp_path):
    vae, x = batchnorm_vae()
    before = running_statistics(vae)
    evaluate_elbo(vae, Split(x, torch.zeros(len(x)), dynamic=False), 50)
    figures.reconstructions(vae, x, (1, 8, 8), tmp_path / "rec.png")
    figures.samples(vae, (1, 8, 8), tmp_path / "samples.png")
    vae.sample(10)
    for a, b in zip(before, running_statistics(vae), strict=True):
        assert torch.equal(a, b)


def test_eval_mode_restores_each_submodules_own_mode_and_nests():
    vae, _ = batchnorm_vae()
    vae.train()
    vae.decoder[1].eval()  # a user's frozen BatchNorm inside a model in train mode
    with eval_mode(vae):
        assert not any(m.training for m in vae.modules())
        with eval_mode(vae.decoder):
            pass
        assert not vae.decoder.training
    assert vae.training and vae.encoder.body[2].training and not vae.decoder[1].training
