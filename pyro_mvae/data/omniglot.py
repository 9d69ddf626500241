"""``data=omniglot``: the 28×28 Omniglot of Burda, Grosse & Salakhutdinov 2016 (``chardata.mat``,
24,345 training and 8,070 test characters of 50 alphabets), read with scipy."""

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from pyro_mvae.config import option
from pyro_mvae.data.files import Files
from pyro_mvae.data.splits import DataConfig, Dataset, make_dataset, resolve_root, take_first
from pyro_mvae.errors import DataError

FILES = Files(folder="OMNIGLOT", names=("chardata.mat",),
              url_base="https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/",
              source="Burda, Grosse & Salakhutdinov 2016, 'Importance Weighted Autoencoders'")
"""A MATLAB file with ``data`` (784, 24345) and ``testdata`` (784, 8070) intensities in [0, 1],
each column one image stored column-major; ``target`` / ``testtarget`` (50, N) one-hot alphabets."""


@dataclass
class OmniglotConfig(DataConfig):
    """Options of Omniglot (23,000 train / 1,345 validation / 8,070 test, as Tomczak & Welling 2018)."""

    val_size: int = option(1345, "validation images, the last ones of the training pool")
    batch_size: int = option(100, "B, images per SVI step")
    binarize: bool = option(True, "train re-binarised every batch; validation/test binarised once")
    limit: int | None = option(None, "keep only the first `limit` training-pool and test images")
    root: str | None = option(None, "folder holding OMNIGLOT/chardata.mat; "
                                    "null: $PYRO_MVAE_DATA, else ~/.cache/pyro_mvae/data")
    download: bool = option(True, "download from the IWAE repository when the file is absent")

    def check(self):
        super().check()
        for name in ("val_size", "batch_size", "limit"):
            self.at_least(name, 1)


def load_omniglot(device="cpu", **options) -> Dataset:
    """Burda et al.'s Omniglot: the training pool (24,345, its last ``val_size`` validate) and the
    test set (8,070), intensities in [0, 1] binarised as MNIST's (dynamic for training, fixed for
    validation and test); labels are the alphabets 0..49. ``options``: those of
    :class:`OmniglotConfig`; images ``(N, 1, 28, 28)``, ``event_shape`` (1, 28, 28).

    Raises:
        ConfigError: for a bad option.
        DataNotFoundError: for an absent file that cannot be downloaded (names file and folder).
        DataError: for a file that is not such a MATLAB file (names the file).
    """
    cfg = OmniglotConfig.from_options(options, "data 'omniglot'")
    (path,) = FILES.locate(resolve_root(cfg.root), cfg.download)
    mat = _read_mat(path)
    pool = take_first(_images_and_alphabets(mat, "data", "target", path), cfg.limit)
    test = take_first(_images_and_alphabets(mat, "testdata", "testtarget", path), cfg.limit)
    data = make_dataset("omniglot", pool, test, (28, 28), cfg.val_size, cfg.binarize, device)
    return replace(data, spec={"name": "omniglot", **asdict(cfg)})


def _read_mat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except Exception as err:  # scipy raises ValueError, IndexError, ... for a foreign or truncated file
        raise DataError(f"{path} could not be read as a MATLAB file ({err}): download it again") from err


def _images_and_alphabets(mat: dict, images: str, targets: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` (each column of ``mat[images]`` is one image, column-major) and
    alphabet labels ``(N,)``."""
    if images not in mat or mat[images].ndim != 2 or mat[images].shape[0] != 784:
        raise DataError(f"{path} must hold '{images}', an array (784, N) with one 28×28 image per column "
                        f"(Burda et al.'s chardata.mat); download it again")
    x = mat[images].T.reshape(-1, 28, 28).transpose(0, 2, 1).astype(np.float32)  # (N, 784) -> (N, 28, 28), rows
    y = mat[targets].argmax(axis=0) if targets in mat else np.zeros(len(x), dtype=np.int64)  # (50, N) -> (N,)
    return x, y
