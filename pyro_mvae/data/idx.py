"""MNIST and the data sets torchvision reads in its format (Fashion-MNIST, KMNIST): four IDX
files in ``ROOT/<folder>/raw/``, 60k training and 10k test images of 28×28 grey levels."""

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from pyro_mvae.config import option
from pyro_mvae.data.digits import DigitsConfig
from pyro_mvae.data.splits import Dataset, make_dataset, resolve_root, take_first
from pyro_mvae.errors import DataNotFoundError

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
"""The four IDX files of MNIST and its look-alikes (training and test images and labels)."""


@dataclass
class MnistConfig(DigitsConfig):
    """Options of MNIST, Fashion-MNIST and KMNIST (50k train / 10k validation / 10k test)."""

    val_size: int = option(10000, "validation images, the last ones of the training file")
    batch_size: int = option(100, "B, images per SVI step")
    root: str | None = option(None, "folder holding MNIST/raw/ (FashionMNIST/raw/, KMNIST/raw/ for those); "
                                    "null: $PYRO_MVAE_DATA, else ~/.cache/pyro_mvae/data")
    download: bool = option(True, "download with torchvision when the files are absent")


@dataclass(frozen=True)
class IdxSet:
    """A 28×28 grey-level data set that torchvision reads from the four IDX files of
    :data:`MNIST_FILES` in ``ROOT/<folder>/raw/`` (60k train, 10k test)."""

    name: str
    folder: str  # torchvision's class name, which is also its folder under ROOT
    source: str  # where a user without torchvision's download can get the files


IDX_SETS = {s.name: s for s in (
    IdxSet("mnist", "MNIST", "http://yann.lecun.com/exdb/mnist/ or a mirror"),
    IdxSet("fashion_mnist", "FashionMNIST", "https://github.com/zalandoresearch/fashion-mnist (Xiao et al. 2017)"),
    IdxSet("kmnist", "KMNIST", "https://github.com/rois-codh/kmnist (Clanuwat et al. 2018)"))}
"""MNIST and the data sets that share its format, split and protocol.

:meta hide-value:
"""


def load_idx_set(name: str, root=None, device="cpu", **options) -> Dataset:
    """MNIST, Fashion-MNIST or KMNIST (``name``, a key of :data:`IDX_SETS`) through torchvision:
    50k train / 10k validation (the last 10k of the training file) / 10k test, the MNIST protocol.

    ``root``: folder holding ``<folder>/raw/`` (``MNIST/raw/``, ``FashionMNIST/raw/``,
    ``KMNIST/raw/``); defaults to ``$PYRO_MVAE_DATA``, else ``~/.cache/pyro_mvae/data``.
    ``options``: those of :class:`MnistConfig` (defaults there): downloaded when absent and
    ``download`` is true; ``limit`` keeps the first ``limit`` images of the training pool and of
    the test set; ``dequantize``: the 256 grey levels dequantised to a density on [0, 1]^784.

    Raises:
        ConfigError: for an option the data set does not have, or a bad value.
        DataNotFoundError: when the files are absent and cannot be downloaded; it names the
            four files and the folder they belong in.
    """
    spec = IDX_SETS[name]
    cfg = MnistConfig.from_options({"root": None if root is None else str(root), **options}, f"data '{name}'")
    folder = resolve_root(cfg.root)
    train, test = (_torchvision_idx(spec, folder, split, cfg.download) for split in (True, False))
    pool = take_first((train.data.numpy().astype(np.float32) / 255, train.targets.numpy()), cfg.limit)
    held_out = take_first((test.data.numpy().astype(np.float32) / 255, test.targets.numpy()), cfg.limit)
    data = make_dataset(name, pool, held_out, tuple(train.data.shape[1:]), cfg.val_size, cfg.binarize,
                        device, 256 if cfg.dequantize else None)
    return replace(data, spec={"name": name, **asdict(cfg)})


def load_mnist(root=None, device="cpu", **options) -> Dataset:
    """MNIST: :func:`load_idx_set` with ``name="mnist"``."""
    return load_idx_set("mnist", root, device, **options)


def _torchvision_idx(spec: IdxSet, root: Path, train: bool, download: bool):
    import torchvision.datasets

    try:
        return getattr(torchvision.datasets, spec.folder)(root=str(root), train=train, download=download)
    except (RuntimeError, OSError) as err:  # absent files, or a failed download
        raise DataNotFoundError(
            f"{spec.folder} could not be loaded from {root} ({err}). Place the four uncompressed IDX "
            f"files {', '.join(MNIST_FILES)} in {root / spec.folder / 'raw'}/ (torchvision's layout; "
            f"from {spec.source}), or point data.root / PYRO_MVAE_DATA at a folder that holds "
            f"{spec.folder}/raw/, or allow the download (data.download=true) on a machine with internet.") from err
