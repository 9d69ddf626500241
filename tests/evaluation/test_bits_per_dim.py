"""Bits per dimension count every value of an image (issue 34): nats / (D ln 2) with D = C·H·W,
for digits (1, 8, 8), MNIST-shaped (1, 28, 28) and RGB (3, 8, 8) images."""

import math

import pyro
import pytest
import torch

from pyro_mvae.data import load_digits
from pyro_mvae.evaluation.evaluate import score_images
from pyro_mvae.models.registry import build_vae


@pytest.mark.parametrize("event_shape", [(1, 8, 8), (1, 28, 28), (3, 8, 8)])
def test_bits_per_dimension_divide_by_every_value_of_an_image(event_shape):
    pyro.set_rng_seed(0)
    vae = build_vae(event_shape, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [16], "latent_dim": 2})
    if event_shape == (1, 8, 8):
        x = load_digits().test.x[:30].bernoulli()  # (30, 1, 8, 8) real digits
    else:
        x = torch.rand(30, *event_shape).bernoulli()  # (30, *event)
    _, report = score_images(vae, x, torch.zeros(30), num_samples=30, chunk_size=30)
    D = math.prod(event_shape)  # 64, 784, 192
    assert report["iwae_bits_per_dim"] == pytest.approx(-report["iwae_ll"] / (D * math.log(2)), rel=1e-12)
    assert report["iwae_bits_per_dim_se"] == pytest.approx(report["iwae_ll_se"] / (D * math.log(2)), rel=1e-12)
    assert 0.3 < report["iwae_bits_per_dim"] < 3  # binary images: about 1 bit per pixel untrained, not D times that
