"""``data=binarized_mnist``: the fixed binarisation of MNIST by Larochelle & Murray 2011 (the
static-MNIST protocol of Burda et al. 2016 and of the VampPrior tables, Tomczak & Welling 2018)."""

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from pyro_mvae.config import option
from pyro_mvae.data.files import Files
from pyro_mvae.data.splits import DataConfig, Dataset, make_dataset, resolve_root
from pyro_mvae.errors import DataError

FILES = Files(folder="BinarizedMNIST",
              names=tuple(f"binarized_mnist_{split}.amat" for split in ("train", "valid", "test")),
              url_base="http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",
              source="Larochelle & Murray 2011, 'The Neural Autoregressive Distribution Estimator'")
"""50,000 / 10,000 / 10,000 images, one per line of 784 numbers 0 or 1 separated by spaces."""


@dataclass
class BinarizedMnistConfig(DataConfig):
    """Options of statically binarised MNIST (its files fix the 50k / 10k / 10k split)."""

    batch_size: int = option(100, "B, images per SVI step")
    limit: int | None = option(None, "keep only the first `limit` images of each file")
    root: str | None = option(None, "folder holding BinarizedMNIST/binarized_mnist_{train,valid,test}.amat; "
                                    "null: $PYRO_MVAE_DATA, else ~/.cache/pyro_mvae/data")
    download: bool = option(True, "download from Larochelle's page when the files are absent")

    def check(self):
        super().check()
        for name in ("batch_size", "limit"):
            self.at_least(name, 1)


def load_binarized_mnist(device="cpu", **options) -> Dataset:
    """Larochelle & Murray's binarised MNIST: train (50,000), validation (10,000) and test
    (10,000) from their three ``.amat`` files, every split already binary and never re-binarised
    (static binarisation). The files carry no labels: every label is 0. ``options``: those of
    :class:`BinarizedMnistConfig`; images ``(N, 1, 28, 28)``, ``event_shape`` (1, 28, 28).

    Raises:
        ConfigError: for a bad option.
        DataNotFoundError: for absent files that cannot be downloaded (names files and folder).
        DataError: for a file that is not 784 zeros and ones per line (names the file).
    """
    cfg = BinarizedMnistConfig.from_options(options, "data 'binarized_mnist'")
    train, valid, test = (_read_amat(path, cfg.limit) for path in FILES.locate(resolve_root(cfg.root), cfg.download))
    labels = [np.zeros(len(x), dtype=np.int64) for x in (train, valid, test)]
    pool = (np.concatenate([train, valid]), np.concatenate(labels[:2]))  # validation: the last len(valid)
    data = make_dataset("binarized_mnist", pool, (test, labels[2]), (28, 28), len(valid), False, device)
    return replace(data, spec={"name": "binarized_mnist", **asdict(cfg)})


def _read_amat(path: Path, limit: int | None) -> np.ndarray:
    """The first ``limit`` images of one ``.amat`` file: ``(N, 784)`` float32 zeros and ones."""
    fix = "each line must hold one image: 784 numbers 0 or 1 separated by spaces; download the file again"
    try:
        x = np.loadtxt(path, dtype=np.float32, ndmin=2, max_rows=limit)
    except ValueError as err:
        raise DataError(f"{path} could not be read ({err}): {fix}") from err
    if x.shape[1:] != (784,) or len(x) == 0 or not np.isin(x, (0.0, 1.0)).all():
        raise DataError(f"{path} holds an array of shape {x.shape} with values other than 0 and 1: {fix}")
    return x
