"""Datasets as tensors on the training device, and the binarisation protocol (DESIGN.md §2).

Training images keep their grey levels in [0, 1] and are re-binarised at every batch
(x ~ Bernoulli(intensity)); validation and test images are binarised once with a fixed seed, so
every run and every model is scored on the same binary images. Batches are index slices of
tensors that already sit on the device: no per-item DataLoader work.
"""

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from pyro_mvae.config import Settings, lookup, option
from pyro_mvae.errors import DataError, DataNotFoundError
from pyro_mvae.training.distributed import SINGLE, Group

FIXED_BINARIZATION_SEED = 1234
"""Seed of the one-off binarisation of validation and test images (same on every device)."""

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEFAULT_ROOT = Path("~/.cache/pyro_mvae/data")


@dataclass
class Split:
    """One split: images ``x (N, D)`` and labels ``y (N,)`` on one device.

    ``dynamic=True``: x holds intensities in [0, 1], binarised afresh by :meth:`batches`.
    ``dequantize_levels=L``: x holds L grey levels k/(L−1), dequantised afresh by
    :meth:`batches` to (k + u)/L, u ~ U(0, 1) (:func:`dequantize`).
    """

    x: torch.Tensor
    y: torch.Tensor
    dynamic: bool
    dequantize_levels: int | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def batches(self, batch_size: int, shuffle: bool = False, seed: int | None = None,
                group: Group = SINGLE, start: int = 0) -> Iterator[torch.Tensor]:
        """Yield batches ``(B, D)`` (the last may be smaller), binarised afresh when dynamic.

        ``shuffle``: in a random order drawn from a generator seeded with ``seed`` (the same
        order on every rank), or from torch's global RNG when ``seed`` is None. With several
        ranks, each global batch of ``batch_size`` rows is split between them (rank r keeps
        rows r, r + W, ...: ``(≈B/W, D)``); a last batch with fewer rows than ranks is dropped.
        ``start``: skip the first batches without drawing anything (resuming mid-epoch).
        """
        n = len(self)
        order = None
        if shuffle:
            generator = None if seed is None else torch.Generator(self.x.device).manual_seed(seed)
            order = torch.randperm(n, generator=generator, device=self.x.device)
        for first in range(start * batch_size, n, batch_size):
            if n - first < group.world:
                break
            rows = slice(first, first + batch_size) if order is None else order[first:first + batch_size]
            xb = group.shard(self.x[rows])
            if self.dequantize_levels is not None:
                xb = dequantize(xb, self.dequantize_levels, torch.rand_like(xb))
            yield torch.bernoulli(xb) if self.dynamic else xb

    def shard(self, group: Group) -> "Split":
        """This rank's rows of the split (see :meth:`Group.shard`)."""
        return self if group.world == 1 else Split(group.shard(self.x), group.shard(self.y), self.dynamic,
                                                   self.dequantize_levels)


@dataclass
class Dataset:
    """Train, validation and test splits of flattened images of shape ``image_shape``."""

    name: str
    train: Split
    val: Split
    test: Split
    image_shape: tuple[int, ...]
    levels: int | None = None
    """Grey levels L of dequantised data (digits 17, MNIST 256); None for binary data."""
    spec: dict | None = None
    """The data config that loads this data set again (``build_dataset(spec, device)``)."""

    @property
    def data_dim(self) -> int:
        return int(np.prod(self.image_shape))

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}


def check_intensities(x: torch.Tensor, name: str) -> None:
    """Raises :class:`DataError` unless x is finite with every value in [0, 1]."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise DataError(f"{name}: {int(bad.sum())} NaN or infinite pixel values; clean the data first")
    if bool(((x < 0) | (x > 1)).any()):
        raise DataError(f"{name}: pixel intensities must lie in [0, 1], found "
                        f"[{x.min().item():.3g}, {x.max().item():.3g}]; rescale the images")


def binarize_fixed(x: torch.Tensor) -> torch.Tensor:
    """x ~ Bernoulli(intensity) with :data:`FIXED_BINARIZATION_SEED`, drawn on the CPU: ``(N, D)``."""
    gen = torch.Generator().manual_seed(FIXED_BINARIZATION_SEED)
    return torch.bernoulli(x.cpu(), generator=gen).to(x.device)


def dequantize(x: torch.Tensor, levels: int, u: torch.Tensor) -> torch.Tensor:
    """Uniform dequantisation: grey level k = round(x (L − 1)) -> (k + u) / L ∈ (0, 1), same shape.

    A density p on [0, 1]^D then bounds the probability of the L-level image:
    log P(k) ≥ E_u[log p((k + u)/L)] − D log L (Theis et al. 2016), so its log-likelihood in nats
    converts to bits per dimension of the discrete data by :func:`dequantized_bits_per_dim`.
    """
    return (torch.round(x * (levels - 1)) + u) / levels


def dequantized_bits_per_dim(log_density: float, data_dim: int, levels: int) -> float:
    """Bits per dimension of L-level images from the mean log-density (nats) of their
    dequantised versions: (−log p + D ln L) / (D ln 2), an upper bound on the discrete model's."""
    return (-log_density + data_dim * math.log(levels)) / (data_dim * math.log(2))


def dequantize_fixed(x: torch.Tensor, levels: int) -> torch.Tensor:
    """:func:`dequantize` with noise from :data:`FIXED_BINARIZATION_SEED` (validation, test)."""
    gen = torch.Generator().manual_seed(FIXED_BINARIZATION_SEED)
    return dequantize(x, levels, torch.rand(x.shape, generator=gen).to(x.device))  # device: CPU draw, moved


def make_dataset(name: str, train_pool, test, image_shape, val_size: int, binarize: bool,
                 device, dequantize_levels: int | None = None) -> Dataset:
    """Split ``train_pool = (x, y)`` into train and its last ``val_size`` images as validation.

    ``x`` arrays are ``(N, *image_shape)`` intensities in [0, 1]. With ``binarize`` the training
    split is dynamic and validation/test are binarised once; with ``dequantize_levels`` = L the
    training split is dequantised afresh every batch and validation/test once (fixed seed);
    with neither all keep their grey levels.

    Raises:
        DataError: for a validation size that leaves no training images, bad intensities, or
            both binarisation and dequantisation.
    """
    if binarize and dequantize_levels:
        raise DataError("data.dequantize needs grey levels: set data.binarize=false with it "
                        "(and likelihood=gaussian)")
    (x_pool, y_pool), (x_test, y_test) = train_pool, test
    if not 0 < val_size < len(x_pool):
        suggestion = max(1, len(x_pool) // 6)
        raise DataError(f"data.val_size={val_size} must be between 1 and {len(x_pool) - 1}: the {name} "
                        f"training pool holds {len(x_pool)} images (after data.limit, if given); give "
                        f"e.g. data.val_size={suggestion} (a sixth of the pool, as MNIST's 10k of 60k)")

    def tensor(a, dtype=torch.float32):
        return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

    def flat(a):
        x = tensor(a).reshape(len(a), -1)  # (N, D)
        check_intensities(x, name)
        return x

    cut = len(x_pool) - val_size
    x_train, x_val, x_te = flat(x_pool[:cut]), flat(x_pool[cut:]), flat(x_test)
    if binarize:
        x_val, x_te = binarize_fixed(x_val), binarize_fixed(x_te)
    if dequantize_levels:
        x_val, x_te = dequantize_fixed(x_val, dequantize_levels), dequantize_fixed(x_te, dequantize_levels)
    return Dataset(
        name=name,
        train=Split(x_train, tensor(y_pool[:cut], torch.long), dynamic=binarize,
                    dequantize_levels=dequantize_levels),
        val=Split(x_val, tensor(y_pool[cut:], torch.long), dynamic=False),
        test=Split(x_te, tensor(y_test, torch.long), dynamic=False),
        image_shape=tuple(image_shape), levels=dequantize_levels)


DIGITS_TEST_SIZE = 297
"""Digits held out for test by a fixed permutation (seed 0)."""


@dataclass
class DigitsConfig(Settings):
    """Options of scikit-learn's 8×8 digits (1200 train / 300 validation / 297 test)."""

    GROUP = "data"
    val_size: int = option(300, "validation images, the last ones of the training pool")
    batch_size: int = option(20, "B, images per SVI step")
    binarize: bool = option(True, "train re-binarised every batch; validation/test binarised once")
    limit: int | None = option(None, "keep only the first `limit` training-pool and test images")
    dequantize: bool = option(False, "grey levels dequantised to a density on [0,1]^D "
                                     "(needs binarize=false, likelihood=gaussian)")

    def check(self):
        for name in ("val_size", "batch_size", "limit"):
            self.at_least(name, 1)


@dataclass
class MnistConfig(DigitsConfig):
    """Options of MNIST, Fashion-MNIST and KMNIST (50k train / 10k validation / 10k test)."""

    val_size: int = option(10000, "validation images, the last ones of the training file")
    batch_size: int = option(100, "B, images per SVI step")
    root: str | None = option(None, "folder holding MNIST/raw/ (FashionMNIST/raw/, KMNIST/raw/ for those); "
                                    "null: $PYRO_MVAE_DATA, else ~/.cache/pyro_mvae/data")
    download: bool = option(True, "download with torchvision when the files are absent")


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
    pool, test = _limit((x[pool_idx], y[pool_idx]), cfg.limit), _limit((x[test_idx], y[test_idx]), cfg.limit)
    data = make_dataset("digits", pool, test, (8, 8), cfg.val_size, cfg.binarize, device,
                        17 if cfg.dequantize else None)
    return replace(data, spec={"name": "digits", **asdict(cfg)})


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
"""MNIST and the data sets that share its format, split and protocol."""


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
    pool = _limit((train.data.numpy().astype(np.float32) / 255, train.targets.numpy()), cfg.limit)
    held_out = _limit((test.data.numpy().astype(np.float32) / 255, test.targets.numpy()), cfg.limit)
    data = make_dataset(name, pool, held_out, tuple(train.data.shape[1:]), cfg.val_size, cfg.binarize,
                        device, 256 if cfg.dequantize else None)
    return replace(data, spec={"name": name, **asdict(cfg)})


def load_mnist(root=None, device="cpu", **options) -> Dataset:
    """MNIST: :func:`load_idx_set` with ``name="mnist"``."""
    return load_idx_set("mnist", root, device, **options)


@dataclass
class ArraysConfig(Settings):
    """Options of a user's own images in one array file (``data=arrays data.path=FILE``)."""

    GROUP = "data"
    path: str | None = option(None, ".npy or .npz file: images (N, H, W) or (N, D) in [0, 1] or 0..255; "
                                    "an .npz holds them under 'x' (or as its only array), labels under 'y'")
    val_fraction: float = option(0.1, "share of the images held out for validation")
    test_fraction: float = option(0.1, "share of the images held out for test")
    split_seed: int = option(0, "seed of the permutation that splits the file")
    batch_size: int = option(100, "B, images per SVI step")
    binarize: bool = option(True, "train re-binarised every batch; validation/test binarised once")
    limit: int | None = option(None, "keep only the first `limit` training-pool and test images")
    dequantize: bool = option(False, "256 grey levels dequantised to a density on [0,1]^D (integer "
                                     "0..255 data; needs binarize=false, likelihood=gaussian)")

    def check(self):
        self.positive("val_fraction", below=1.0)
        self.positive("test_fraction", below=1.0)
        if self.val_fraction + self.test_fraction >= 1:
            self._fail("test_fraction", f"a number < {1 - self.val_fraction:g} (with val_fraction, below 1)")
        for name in ("batch_size", "limit"):
            self.at_least(name, 1)


def load_arrays(device="cpu", **options) -> Dataset:
    """A user's images from one ``.npy`` / ``.npz`` file, split by a fixed permutation
    (``split_seed``) into test (``test_fraction``), validation (``val_fraction``) and train;
    integers 0..255 are scaled to [0, 1]; labels default to 0. ``options``: those of
    :class:`ArraysConfig`.

    Raises:
        ConfigError: for a bad option.
        DataError: for a missing or unreadable file, a wrong shape, NaN or infinite values,
            values outside [0, 1] and 0..255, or too few images to split; each names the file
            and the fix.
    """
    cfg = ArraysConfig.from_options(options, "data 'arrays'")
    x, y = _read_arrays(cfg.path)
    x, levels = _unit_intensities(x, cfg.path)  # (N, ...) in [0, 1]
    if cfg.dequantize and levels is None:
        raise DataError(f"data.dequantize needs integer grey levels 0..255; {cfg.path} holds floats in [0, 1]")
    n = len(x)
    n_test, n_val = round(cfg.test_fraction * n), round(cfg.val_fraction * n)
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise DataError(f"{cfg.path} holds {n} images: too few for data.val_fraction={cfg.val_fraction} and "
                        f"data.test_fraction={cfg.test_fraction} to leave at least one image in each split")
    order = np.random.RandomState(cfg.split_seed).permutation(n)
    pool = _limit((x[order[n_test:]], y[order[n_test:]]), cfg.limit)
    test = _limit((x[order[:n_test]], y[order[:n_test]]), cfg.limit)
    val_size = max(1, round(len(pool[0]) * n_val / (n - n_test)))
    data = make_dataset("arrays", pool, test, _image_shape(x), val_size, cfg.binarize, device,
                        levels if cfg.dequantize else None)
    return replace(data, spec={"name": "arrays", **asdict(cfg)})


def _read_arrays(path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` or ``(N, D)`` and labels ``(N,)`` (zeros when the file has none)."""
    hint = "give data.path=FILE, a .npy or .npz file of images (N, H, W) or (N, D)"
    if path is None:
        raise DataError(f"data=arrays needs the file: {hint}")
    file = Path(path).expanduser()
    if file.suffix not in (".npy", ".npz") or not file.is_file():
        raise DataError(f"{file} is not an existing .npy or .npz file: {hint}")
    try:
        loaded = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{file} could not be read as a NumPy array file ({err}): {hint}") from err
    if file.suffix == ".npz":
        names = list(loaded.keys())
        key = "x" if "x" in names else names[0] if len(names) == 1 else None
        if key is None:
            raise DataError(f"{file} holds arrays {names}: name the images 'x' (and the labels 'y')")
        x, y = loaded[key], loaded["y"] if "y" in names else None
    else:
        x, y = loaded, None
    if x.ndim not in (2, 3) or len(x) == 0:
        raise DataError(f"{file} holds an array of shape {x.shape}: {hint}")
    y = np.zeros(len(x), dtype=np.int64) if y is None else np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{file}: labels 'y' must be {len(x)} integers, one per image; got {y.dtype} {y.shape}")
    return x, y


def _unit_intensities(x: np.ndarray, path) -> tuple[np.ndarray, int | None]:
    """x scaled to [0, 1] as float32, and 256 when it held integer grey levels 0..255."""
    if x.dtype == bool:
        return x.astype(np.float32), None
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path} holds {x.dtype} values: images must be numbers in [0, 1] or 0..255")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(1)
    if bad.any():
        raise DataError(f"{path}: image {int(np.argmax(bad))} (and {int(bad.sum()) - 1} more) holds NaN or "
                        "infinite values: remove or repair them")
    low, high = float(x.min()), float(x.max())
    if 0 <= low and high <= 1 and not np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32), None
    if 0 <= low and high <= 255 and np.all(x == np.round(x)):
        return (x / 255).astype(np.float32), 256
    raise DataError(f"{path} holds values in [{low:g}, {high:g}]: images must be in [0, 1] or integers 0..255; "
                    "rescale them")


def _image_shape(x: np.ndarray) -> tuple[int, int]:
    """(H, W) of images (N, H, W); for flat images (N, D) a square side when D is one, else (1, D)."""
    if x.ndim == 3:
        return tuple(x.shape[1:])
    side = math.isqrt(x.shape[1])
    return (side, side) if side * side == x.shape[1] else (1, x.shape[1])


def resolve_root(root) -> Path:
    """``root``, else ``$PYRO_MVAE_DATA``, else ``~/.cache/pyro_mvae/data``, user-expanded."""
    chosen = root or os.environ.get("PYRO_MVAE_DATA") or DEFAULT_ROOT
    return Path(chosen).expanduser()


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


def _limit(pair, limit):
    return pair if limit is None else (pair[0][:limit], pair[1][:limit])


@dataclass(frozen=True)
class DataSource:
    """A registered data set: its loader (``device`` and the keyword options of ``Config``) and
    its typed options."""

    name: str
    load: Callable
    Config: type[Settings]


DATASETS = {s.name: s for s in (DataSource("digits", load_digits, DigitsConfig),
                                *(DataSource(name, partial(load_idx_set, name), MnistConfig) for name in IDX_SETS),
                                DataSource("arrays", load_arrays, ArraysConfig))}
"""Data set name -> :class:`DataSource`."""


def build_dataset(data: Mapping, device) -> Dataset:
    """Load the data set ``data["name"]`` with its other options (``batch_size`` is the trainer's).

    Raises:
        ConfigError: for an unregistered name or a bad option.
        DataError: for files that cannot be found, or bad images.
    """
    options = dict(data)
    return lookup(DATASETS, "data", options.pop("name")).load(device=device, **options)
