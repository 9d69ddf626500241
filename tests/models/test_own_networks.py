"""The priors, guides and estimators on networks of the user's own, and images of any shape
(issue 23): `build_vae(..., encoder=body, decoder=decoder)` for every prior × guide, `net=conv`
on (1, 8, 8), (1, 28, 28) and (3, 32, 32), shapes refused by name, a 0.1.0 conv checkpoint."""

import itertools
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from scipy.stats import bernoulli
from sklearn.datasets import load_sample_images
from torch import nn

from pyro_mvae.data import load_digits
from pyro_mvae.errors import ConfigError, PairingError
from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.models.nets import MLPBody, MLPDecoder
from pyro_mvae.models.registry import GUIDES, PRIORS, build_vae
from pyro_mvae.training import checkpoints

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "conv_0_1_0.pt"
LATENT = 3
BERNOULLI = {"name": "bernoulli"}


def rgb_patches(n: int, side: int) -> torch.Tensor:
    """``(n, 3, side, side)`` binary images: patches of scikit-learn's sample photograph, binarised."""
    photo = torch.tensor(load_sample_images().images[0], dtype=torch.float32) / 255  # (427, 640, 3)
    patches = photo.permute(2, 0, 1).unfold(1, side, side).unfold(2, side, side)  # (3, h, w, side, side)
    patches = patches.permute(1, 2, 0, 3, 4).reshape(-1, 3, side, side)[:n]  # (n, 3, side, side)
    return torch.bernoulli(patches, generator=torch.Generator().manual_seed(0))


class SmallCNN(nn.Module):
    """A body of the user's own: x ``(B, C, H, W)`` -> features ``(B, 24)``."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(6 * side * side, 24), nn.Tanh())

    def forward(self, x):
        return self.net(x)


def own_decoder(event_shape) -> nn.Module:
    """z ``(B, LATENT)`` -> logits ``(B, *event)``."""
    return nn.Sequential(nn.Linear(LATENT, 32), nn.ReLU(), nn.Linear(32, int(np.prod(event_shape))),
                         nn.Unflatten(1, tuple(event_shape)))


def _pairs() -> list[tuple[str, str]]:
    """Every registered (prior, guide) that makes a valid bound."""
    valid = []
    for prior, guide in itertools.product(PRIORS, GUIDES):
        try:
            build_vae(4, {"name": prior}, {"name": guide}, BERNOULLI, {"name": "mlp", "hidden": [4], "latent_dim": 2})
        except PairingError:
            continue
        valid.append((prior, guide))
    return valid


PAIRS = _pairs()


def test_the_pairs_cover_every_prior_and_guide():
    assert {p for p, _ in PAIRS} == set(PRIORS) and {g for _, g in PAIRS} == set(GUIDES)


def _sites(vae, x):
    """The guide's trace and the model's trace replayed on it."""
    guide = poutine.trace(vae.svi_guide).get_trace(x)
    return guide, poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)


@pytest.mark.parametrize("prior,guide", PAIRS)
def test_every_prior_and_guide_on_an_own_cnn_of_rgb_images(prior, guide):
    x = rgb_patches(6, 8)  # (6, 3, 8, 8)
    vae = build_vae((3, 8, 8), {"name": prior}, {"name": guide}, BERNOULLI, {"latent_dim": LATENT},
                    encoder=SmallCNN(3, 8), decoder=own_decoder((3, 8, 8)))
    assert vae.spec["net"] == {"name": "own", "latent_dim": LATENT}
    guide_trace, model_trace = _sites(vae, x)
    assert model_trace.nodes["x"]["fn"].event_shape == (3, 8, 8)
    assert model_trace.nodes["x"]["fn"].batch_shape == (6,)
    assert model_trace.nodes["z"]["value"].shape == (6, LATENT)
    for name in ("z", "c"):
        if name in guide_trace.nodes:
            assert guide_trace.nodes[name]["value"].shape[0] == 6 and model_trace.nodes[name]["value"].shape[0] == 6
    loss = build_objective("auto", vae=vae).loss_and_grads(vae.model, vae.svi_guide, x)
    assert np.isfinite(loss)
    for module in (vae.encoder.body, vae.encoder.head, vae.decoder):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("prior,guide", PAIRS)
def test_own_modules_give_the_same_bound_as_the_registered_net(prior, guide):
    """An own MLPBody/MLPDecoder with net=mlp's weights is net=mlp: the same loss, draw for draw."""
    data = load_digits()
    x = data.test.x[:5]  # (5, 1, 8, 8)
    shape, net = data.event_shape, {"name": "mlp", "hidden": [16], "latent_dim": LATENT}
    built = build_vae(shape, {"name": prior}, {"name": guide}, BERNOULLI, net)
    own = build_vae(shape, {"name": prior}, {"name": guide}, BERNOULLI, {"latent_dim": LATENT},
                    encoder=MLPBody(shape, [16]), decoder=MLPDecoder(LATENT, [16], shape))
    own.load_state_dict(built.state_dict())  # strict: the same parameter names
    losses = []
    for vae in (built, own):
        pyro.set_rng_seed(3)
        losses.append(build_objective("auto", vae=vae).loss(vae.model, vae.svi_guide, x))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_conv_nets_fit_each_image_shape_and_train(shape):
    x = torch.bernoulli(torch.full((4, *shape), 0.3), generator=torch.Generator().manual_seed(1))
    net = {"name": "conv", "channels": [4, 8], "hidden": [16], "latent_dim": LATENT}
    vae = build_vae(shape, {"name": "factorized_mixture"}, {"name": "relaxed_mixture"}, BERNOULLI, net)
    assert vae.decode(torch.zeros(2, 5, LATENT)).shape == (2, 5, *shape)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    elbo = build_objective("trace", vae=vae)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        losses.append(elbo.loss_and_grads(vae.model, vae.svi_guide, x))
        optimizer.step()
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns the images


def test_conv_defaults_on_mnist_are_the_0_1_0_networks():
    vae = build_vae((1, 28, 28), {"name": "standard"}, {"name": "gaussian"}, BERNOULLI, {"name": "conv"})
    convs = [m for m in vae.encoder.body.convs if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 32, (4, 4), (2, 2), (1, 1)), (32, 64, (4, 4), (2, 2), (1, 1))]
    assert vae.encoder.body.mlp[0].in_features == 64 * 7 * 7 and vae.encoder.head.in_features == 300


def test_a_0_1_0_conv_checkpoint_loads_and_scores_the_same():
    """Written by 0.1.0 (format 2, encoder keys `encoder.net.*`) with the script in fixtures/README.md."""
    ckpt = torch.load(FIXTURE, weights_only=True)
    config, expected, x = ckpt["config"], ckpt["expected"], ckpt["x"].reshape(-1, 1, 28, 28)
    vae = build_vae((1, 28, 28), config["prior"], config["guide"], config["likelihood"], config["net"])
    checkpoints.load(FIXTURE, into=vae)
    with torch.no_grad():
        logits, loc, scale = vae.encoder.component_params(x)
        z = vae.encoder.mean(x)
        decoded = vae.decode(z)
        got = {"logits": logits, "loc": loc, "scale": scale, "z": z, "decoded": decoded.flatten(1),
               "log_lik": vae.likelihood(decoded).log_prob(x), "log_q": vae.encoder.posterior(x).log_prob(z)}
    for key, value in expected.items():  # to float32 rounding: a CPU with other kernels (AVX512) rounds otherwise
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-5, msg=key)


def test_the_likelihood_scores_every_pixel_of_an_rgb_image_as_scipy_does():
    x = rgb_patches(3, 8)  # (3, 3, 8, 8)
    vae = build_vae((3, 8, 8), {"name": "standard"}, {"name": "gaussian"}, BERNOULLI, {"latent_dim": LATENT},
                    encoder=SmallCNN(3, 8), decoder=own_decoder((3, 8, 8)))
    decoded = vae.decode(torch.randn(3, LATENT))  # (3, 3, 8, 8) logits
    expected = bernoulli.logpmf(x.numpy(), torch.sigmoid(decoded).detach().double().numpy()).reshape(3, -1).sum(1)
    np.testing.assert_allclose(vae.likelihood(decoded).log_prob(x).detach().numpy(), expected, rtol=1e-5)


def test_own_networks_are_scored_by_iwae():
    x = rgb_patches(4, 8)
    vae = build_vae((3, 8, 8), {"name": "vamp", "components": 4}, {"name": "gaussian"}, BERNOULLI,
                    {"latent_dim": LATENT}, encoder=SmallCNN(3, 8), decoder=own_decoder((3, 8, 8)))
    assert vae.prior.pseudo_inputs.shape == (4, 3, 8, 8)
    ll = iwae_log_likelihood(vae, x, num_samples=20)
    assert ll.shape == (4,) and torch.isfinite(ll).all() and (ll < 0).all()


def test_wrong_network_shapes_are_refused_naming_the_expected_shape():
    def build(encoder, decoder, **kw):
        return build_vae((3, 8, 8), {"name": "standard"}, {"name": "gaussian"}, BERNOULLI, {"latent_dim": LATENT},
                         encoder=encoder, decoder=decoder, **kw)

    with pytest.raises(ConfigError, match=r"\(B, 3, 8, 8\).*gave \(2, 192\)"):
        build(SmallCNN(3, 8), nn.Linear(LATENT, 192))  # flat logits
    with pytest.raises(ConfigError, match=r"features \(B, F\).*gave \(2, 6, 8, 8\)"):
        build(SmallCNN(3, 8).net[:2], own_decoder((3, 8, 8)))  # no flatten
    with pytest.raises(ConfigError, match=r"fails on data of shape \(B, 3, 8, 8\)"):
        build(SmallCNN(1, 8), own_decoder((3, 8, 8)))  # a grey-image body
    with pytest.raises(ConfigError, match="not features=10"):
        build(SmallCNN(3, 8), own_decoder((3, 8, 8)), features=10)
    with pytest.raises(ConfigError, match="give both encoder= and decoder="):
        build(SmallCNN(3, 8), None)
    with pytest.raises(ConfigError, match="needs images of shape \\(C, H, W\\)"):
        build_vae(64, {"name": "standard"}, {"name": "gaussian"}, BERNOULLI, {"name": "conv"})
    with pytest.raises(ConfigError, match="leaves no pixel"):
        build_vae((1, 8, 8), {"name": "standard"}, {"name": "gaussian"}, BERNOULLI,
                  {"name": "conv", "channels": [4, 4, 4, 4]})
