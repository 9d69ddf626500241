"""Datasets as tensors on the training device, and the binarisation protocol (DESIGN.md §2).

Training images keep their grey levels in [0, 1] and are re-binarised at every batch
(x ~ Bernoulli(intensity)); validation and test images are binarised once with a fixed seed, so
every run and every model is scored on the same binary images. Batches are index slices of
tensors that already sit on the device: no per-item DataLoader work. The loaders of the data
sets, and their registry, are in :mod:`pyro_mvae.data`.
"""

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pyro_mvae.config import Settings, option
from pyro_mvae.errors import DataError

FIXED_BINARIZATION_SEED = 1234
"""Seed of the one-off binarisation of validation and test images (same on every device)."""

DEFAULT_ROOT = Path("~/.cache/pyro_mvae/data")


@dataclass
class DataConfig(Settings):
    """Options every data set of the package has (a registered data set's ``Config`` subclasses it
    to have them too)."""

    GROUP = "data"
    labelled: int | None = option(None, "semi-supervised M2: N training images keep their labels, balanced by "
                                        "class and chosen by the run's seed (RUN_DIR/labelled.json), the rest "
                                        "are unlabelled; needs prior=mixture with one component per class and a "
                                        "mixture guide (null: every image unlabelled)")

    def check(self):
        self.at_least("labelled", 1)


@dataclass
class Split:
    """One split: data ``x (N, *event)`` (images ``(N, C, H, W)``) and labels ``y (N,)`` on one device.

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
                group=None, start: int = 0) -> Iterator[torch.Tensor]:
        """Yield batches ``(B, *event)`` (the last may be smaller), binarised afresh when dynamic.

        ``shuffle``: in a random order drawn from a generator seeded with ``seed`` (the same
        order on every rank), or from torch's global RNG when ``seed`` is None. ``group``: the
        processes training one model (anything with ``world`` and ``shard(x)``, such as
        :class:`pyro_mvae.training.distributed.Group`; None: this process alone). With several
        ranks, each global batch of ``batch_size`` rows is split between them (rank r keeps
        rows r, r + W, ...: ``(≈B/W, *event)``); a last batch with fewer rows than ranks is dropped.
        ``start``: skip the first batches without drawing anything (resuming mid-epoch).
        """
        n, world = len(self), 1 if group is None else group.world
        order = None
        if shuffle:
            generator = None if seed is None else torch.Generator(self.x.device).manual_seed(seed)
            order = torch.randperm(n, generator=generator, device=self.x.device)
        for first in range(start * batch_size, n, batch_size):
            if n - first < world:
                break
            rows = slice(first, first + batch_size) if order is None else order[first:first + batch_size]
            xb = self.x[rows] if world == 1 else group.shard(self.x[rows])
            if self.dequantize_levels is not None:
                xb = dequantize(xb, self.dequantize_levels, torch.rand_like(xb))
            yield torch.bernoulli(xb) if self.dynamic else xb

    def head(self, n: int | None) -> "Split":
        """The first n rows ``(n, *event)`` as a split of the same kind (all of them when n is None)."""
        return self if n is None else Split(self.x[:n], self.y[:n], self.dynamic, self.dequantize_levels)

    def shard(self, group) -> "Split":
        """This rank's rows of the split (``group``: see :meth:`batches`)."""
        if group is None or group.world == 1:
            return self
        return Split(group.shard(self.x), group.shard(self.y), self.dynamic, self.dequantize_levels)


@dataclass
class Dataset:
    """Train, validation and test splits of data of shape ``event_shape``: ``(C, H, W)`` for images
    (channel first, as torchvision's ``ToTensor``; C = 1 for grey images), ``(D,)`` for vectors;
    each split's x is ``(N, *event)``."""

    name: str
    train: Split
    val: Split
    test: Split
    event_shape: tuple[int, ...]
    levels: int | None = None
    """Grey levels L of dequantised data (digits 17, MNIST 256); None for binary data."""
    spec: dict | None = None
    """The data config that loads this data set again (``build_dataset(spec, device)``)."""

    @property
    def labelled(self) -> int | None:
        """N, the training images that keep their labels (``data.labelled``, semi-supervised M2;
        :mod:`pyro_mvae.data.labelled`), read from :attr:`spec`; None: every image unlabelled."""
        return (self.spec or {}).get("labelled")

    @property
    def data_dim(self) -> int:
        """D = C·H·W, the number of values of one image."""
        return int(np.prod(self.event_shape))

    def splits(self) -> dict[str, Split]:
        """``{"train": ..., "val": ..., "test": ...}``, the three splits by name."""
        return {"train": self.train, "val": self.val, "test": self.test}


def check_intensities(x: torch.Tensor, name: str) -> None:
    """Raises :class:`~pyro_mvae.errors.DataError` unless x is finite with every value in [0, 1]."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise DataError(f"{name}: {int(bad.sum())} NaN or infinite pixel values; clean the data first")
    if bool(((x < 0) | (x > 1)).any()):
        raise DataError(f"{name}: pixel intensities must lie in [0, 1], found "
                        f"[{x.min().item():.3g}, {x.max().item():.3g}]; rescale the images")


def binarize_fixed(x: torch.Tensor) -> torch.Tensor:
    """x ~ Bernoulli(intensity) with :data:`FIXED_BINARIZATION_SEED`, drawn on the CPU, same shape
    (``torch.bernoulli``, kept: these are the validation and test images every run is scored on)."""
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

    ``x`` arrays are ``(N, *image_shape)`` intensities in [0, 1], ``image_shape`` ``(H, W)`` (grey),
    ``(C, H, W)`` or ``(D,)`` (vectors); the splits hold them as ``(N, *event)``, ``(N, C, H, W)``
    for images (:func:`event_shape_of`). With ``binarize`` the training
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

    event_shape = event_shape_of(image_shape)

    def flat(a):
        x = tensor(a).reshape(len(a), *event_shape)  # (N, *event)
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
        event_shape=event_shape, levels=dequantize_levels)


def resolve_root(root) -> Path:
    """``root``, else ``$PYRO_MVAE_DATA``, else ``~/.cache/pyro_mvae/data``, user-expanded."""
    chosen = root or os.environ.get("PYRO_MVAE_DATA") or DEFAULT_ROOT
    return Path(chosen).expanduser()


def take_first(pair, limit):
    """``(x[:limit], y[:limit])`` of ``pair = (x, y)``; the pair itself when ``limit`` is None."""
    return pair if limit is None else (pair[0][:limit], pair[1][:limit])


def event_shape_of(image_shape) -> tuple[int, ...]:
    """The event shape of data of shape ``image_shape``: ``(C, H, W)`` for images ``(H, W)``
    (C = 1) or ``(C, H, W)``; ``(D,)`` for vectors ``(D,)``."""
    shape = tuple(int(n) for n in image_shape)
    return (1, *shape) if len(shape) == 2 else shape


def as_image_batch(images: torch.Tensor, event_shape) -> torch.Tensor:
    """Data ``(N, *event)`` (or flattened ``(N, D)``) -> images ``(N, C, H, W)`` on the CPU, clamped
    to [0, 1], for drawing; vectors ``(D,)`` are drawn as 1 × D strips."""
    shape = event_shape_of(event_shape)
    image = shape if len(shape) == 3 else (1, 1, *shape)  # a vector (D,) as a 1 × D strip
    return images.detach().float().cpu().clamp(0, 1).reshape(-1, *image)
