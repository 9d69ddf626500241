"""A user's own images (``data=arrays``, ``data=folder``): the options and the split they share.

There is no standard split: a fixed permutation (``data.split_seed``) holds out
``data.test_fraction`` of the images for test and ``data.val_fraction`` for validation.
"""

from dataclasses import asdict, dataclass, replace

import numpy as np

from pyro_mvae.config import option
from pyro_mvae.data.splits import DataConfig, Dataset, make_dataset, take_first
from pyro_mvae.errors import DataError


@dataclass
class OwnImagesConfig(DataConfig):
    """Options shared by ``data=arrays`` and ``data=folder`` (``path`` is each one's own)."""

    val_fraction: float = option(0.1, "share of the images held out for validation")
    test_fraction: float = option(0.1, "share of the images held out for test")
    split_seed: int = option(0, "seed of the permutation that splits the images")
    batch_size: int = option(100, "B, images per SVI step")
    binarize: bool = option(True, "train re-binarised every batch; validation/test binarised once")
    limit: int | None = option(None, "keep only the first `limit` training-pool and test images")
    dequantize: bool = option(False, "256 grey levels dequantised to a density on [0,1]^D (8-bit "
                                     "images; needs binarize=false, likelihood=gaussian)")

    def check(self):
        super().check()
        self.positive("val_fraction", below=1.0)
        self.positive("test_fraction", below=1.0)
        if self.val_fraction + self.test_fraction >= 1:
            self._fail("test_fraction", f"a number < {1 - self.val_fraction:g} (with val_fraction, below 1)")
        for name in ("batch_size", "limit"):
            self.at_least(name, 1)


def split_own_images(name: str, x: np.ndarray, y: np.ndarray, levels: int | None, cfg: OwnImagesConfig,
                     image_shape: tuple[int, ...], device) -> Dataset:
    """Split images ``x (N, *image_shape)`` in [0, 1] with labels ``y (N,)`` by a permutation
    seeded with ``cfg.split_seed`` into test, validation and train (:class:`OwnImagesConfig`).

    ``levels``: 256 for 8-bit grey levels (what ``cfg.dequantize`` needs), None for floats.

    Raises:
        DataError: when dequantisation is asked of float images, or the fractions leave a split
            empty; both name ``cfg.path``.
    """
    if cfg.dequantize and levels is None:
        raise DataError(f"data.dequantize needs integer grey levels 0..255; {cfg.path} holds floats in [0, 1]")
    n = len(x)
    n_test, n_val = round(cfg.test_fraction * n), round(cfg.val_fraction * n)
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise DataError(f"{cfg.path} holds {n} images: too few for data.val_fraction={cfg.val_fraction} and "
                        f"data.test_fraction={cfg.test_fraction} to leave at least one image in each split")
    order = np.random.RandomState(cfg.split_seed).permutation(n)
    pool = take_first((x[order[n_test:]], y[order[n_test:]]), cfg.limit)
    test = take_first((x[order[:n_test]], y[order[:n_test]]), cfg.limit)
    val_size = max(1, round(len(pool[0]) * n_val / (n - n_test)))
    data = make_dataset(name, pool, test, image_shape, val_size, cfg.binarize, device,
                        levels if cfg.dequantize else None)
    return replace(data, spec={"name": name, **asdict(cfg)})
