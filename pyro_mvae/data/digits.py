"""scikit-learn's 8×8 handwritten digits: always present, the embedded default."""

from dataclasses import asdict, dataclass, replace

import numpy as np

from pyro_mvae.config import option
from pyro_mvae.data.splits import DataConfig, Dataset, make_dataset, take_first

DIGITS_TEST_SIZE = 297
"""Digits held out for test by a fixed permutation (seed 0)."""


@dataclass
class DigitsConfig(DataConfig):
    """Options of scikit-learn's 8×8 digits (1200 train / 300 validation / 297 test)."""

    val_size: int = option(300, "validation images, the last ones of the training pool")
    batch_size: int = option(20, "B, images per SVI step")
    binarize: bool = option(True, "train re-binarised every batch; validation/test binarised once")
    limit: int | None = option(None, "keep only the first `limit` training-pool and test images")
    dequantize: bool = option(False, "grey levels dequantised to a density on [0,1]^D "
                                     "(needs binarize=false, likelihood=gaussian)")

    def check(self):
        super().check()
        for name in ("val_size", "batch_size", "limit"):
            self.at_least(name, 1)


def load_digits(device="cpu", **options) -> Dataset:
    """scikit-learn's 1,797 8×8 handwritten digits (no download), intensities 0..16 scaled to [0, 1].

    ``options``: those of :class:`DigitsConfig` (defaults there). A fixed permutation (seed 0)
    holds out 297 test images; the rest is the training pool, whose last ``val_size`` images
    validate. ``limit`` keeps the first images of the pool and of the test set; ``dequantize``:
    grey levels (17 of them) dequantised to a density on [0, 1]^64.

    Raises:
        ConfigError: for an option digits do not have, or a bad value.
    """
    from sklearn.datasets import load_digits as sk_digits

    cfg = DigitsConfig.from_options(options, "data 'digits'")
    bunch = sk_digits()
    x, y = bunch.images / 16.0, bunch.target  # (1797, 8, 8), (1797,)
    order = np.random.RandomState(0).permutation(len(x))
    test_idx, pool_idx = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    pool = take_first((x[pool_idx], y[pool_idx]), cfg.limit)
    test = take_first((x[test_idx], y[test_idx]), cfg.limit)
    data = make_dataset("digits", pool, test, (8, 8), cfg.val_size, cfg.binarize, device,
                        17 if cfg.dequantize else None)
    return replace(data, spec={"name": "digits", **asdict(cfg)})
