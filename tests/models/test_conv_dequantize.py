"""The convolutional nets trained on MNIST, and grey-level data dequantised to a true density."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from idx import write_tiny_mnist
from pyro_mvae.cli import main
from pyro_mvae.data import load_digits
from pyro_mvae.data.splits import dequantized_bits_per_dim
from pyro_mvae.errors import DataError


def test_conv_vae_trains_on_mnist_images(tmp_path):
    """400 real MNIST images when ../shared/data has them, else tiny random 28×28 IDX files."""
    root = SHARED_DATA
    if not (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        root = tmp_path / "data"
        write_tiny_mnist(root, n_train=400, n_test=100)
    run = tmp_path / "run"
    assert main(["train", "data=mnist", f"data.root={root}", "data.download=false", "data.limit=400",
                 "data.val_size=100", "net=conv", "net.hidden=[32]", "net.latent_dim=4",
                 "prior=standard", "guide=gaussian", "trainer.epochs=3", "trainer.eval_samples=30",
                 "trainer.progress=false", f"run_dir={run}"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and records[-1]["val_elbo"] > records[0]["val_elbo"]


def test_dequantised_digits_fill_their_grey_level_bins():
    data = load_digits(binarize=False, dequantize=True)
    assert data.levels == 17
    levels = torch.round(data.train.x * 16)  # the original grey level k of every pixel
    xb = next(data.train.batches(len(data.train)))
    assert bool(((xb > levels / 17) & (xb < (levels + 1) / 17)).all())  # (k + u)/17, 0 < u < 1
    again = next(data.train.batches(len(data.train)))
    assert not torch.equal(xb, again)  # fresh noise every batch
    torch.testing.assert_close(load_digits(binarize=False, dequantize=True).test.x, data.test.x)  # fixed
    with pytest.raises(DataError, match="binarize=false"):
        load_digits(binarize=True, dequantize=True)


def test_bits_per_dimension_of_dequantised_data():
    # the uniform density on [0, 1]^D (log p = 0) codes L levels in exactly log2 L bits
    assert dequantized_bits_per_dim(0.0, 64, 17) == pytest.approx(math.log2(17))
    assert dequantized_bits_per_dim(-64 * math.log(2), 64, 256) == pytest.approx(9.0)


def test_gaussian_likelihood_on_dequantised_digits_reports_both_units(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "data.binarize=false", "data.dequantize=true", "likelihood=gaussian",
                 "likelihood.learn_scale=true", "likelihood.scale=0.3", "prior=standard", "guide=gaussian",
                 "net.hidden=[32]", "net.latent_dim=4", "trainer.epochs=3", "trainer.eval_samples=50",
                 "trainer.progress=false", f"run_dir={run}"]) == 0
    report = json.loads((run / "report.json").read_text())
    expected = dequantized_bits_per_dim(report["test_iwae_ll"], 64, 17)
    assert report["test_bits_per_dim_discrete"] == pytest.approx(expected)
    assert np.isfinite(report["test_iwae_ll"])
    assert main(["train", "data.dequantize=true", f"run_dir={tmp_path / 'refused'}"]) == 2
    assert "binarize=false" in capsys.readouterr().err
