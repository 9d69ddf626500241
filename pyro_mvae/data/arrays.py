"""``data=arrays``: a user's images in one ``.npy`` / ``.npz`` file."""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyro_mvae.config import option
from pyro_mvae.data.own import OwnImagesConfig, split_own_images
from pyro_mvae.data.splits import Dataset
from pyro_mvae.errors import DataError


@dataclass
class ArraysConfig(OwnImagesConfig):
    """Options of a user's own images in one array file (``data=arrays data.path=FILE``)."""

    path: str | None = option(None, ".npy or .npz file: images (N, H, W), (N, C, H, W) or vectors (N, D) in [0, 1] "
                                    "or 0..255; an .npz holds them under 'x' (or as its only array), labels under 'y'")
    layout: str = option("auto", "of (N, ., ., .) images: channels_first (N, C, H, W) | channels_last (N, H, W, C), "
                                 "moved to channels first | auto: channels first, and an array whose last axis "
                                 "is 1 or 3 while its second is not (it looks channels last) is refused")

    def check(self):
        super().check()
        self.one_of("layout", ("auto", "channels_first", "channels_last"))


def load_arrays(device="cpu", **options) -> Dataset:
    """A user's images from one ``.npy`` / ``.npz`` file, split by a fixed permutation
    (:func:`~pyro_mvae.data.own.split_own_images`); integers 0..255 are scaled to
    [0, 1]; labels default to 0. ``options``: those of :class:`ArraysConfig`.

    Raises:
        ConfigError: for a bad option.
        DataError: for a missing or unreadable file, a wrong shape, NaN or infinite values,
            values outside [0, 1] and 0..255, or too few images to split; each names the file
            and the fix.
    """
    cfg = ArraysConfig.from_options(options, "data 'arrays'")
    x, y = _read_arrays(cfg.path)
    x = _channels_first(x, cfg.layout, cfg.path)  # (N, C, H, W) when 4-D
    x, levels = _unit_intensities(x, cfg.path)  # (N, ...) in [0, 1]
    return split_own_images("arrays", x, y, levels, cfg, _image_shape(x), device)


def _read_arrays(path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, D)`` and labels ``(N,)`` (zeros when the file has none)."""
    hint = "give data.path=FILE, a .npy or .npz file of images (N, H, W), (N, C, H, W) (channels first) or (N, D)"
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
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise DataError(f"{file} holds an array of shape {x.shape}: {hint}")
    y = np.zeros(len(x), dtype=np.int64) if y is None else np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{file}: labels 'y' must be {len(x)} integers, one per image; got {y.dtype} {y.shape}")
    return x, y


def _channels_first(x: np.ndarray, layout: str, path) -> np.ndarray:
    """Images ``(N, C, H, W)`` from a 4-D array in the given ``layout``; other arrays unchanged.

    Raises:
        DataError: under ``auto``, for an array that looks channels last (last axis 1 or 3, second
            axis not), naming the fix.
    """
    if x.ndim != 4 or layout == "channels_first":
        return x
    if layout == "channels_last":
        return np.moveaxis(x, -1, 1)  # (N, H, W, C) -> (N, C, H, W)
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        n, h, w, c = x.shape
        raise DataError(
            f"{path} holds images of shape {x.shape[1:]}: the last axis ({c}) looks like colour channels, so "
            f"these look like {n} images of {h}×{w} pixels stored channels last, but data=arrays reads (N, C, H, W) "
            f"and would take them for {h} channels of {w}×{c} pixels. Convert the file with "
            "x = np.moveaxis(x, -1, 1), or give data.layout=channels_last (data.layout=channels_first if the "
            "second axis really holds the channels)")
    return x


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


def _image_shape(x: np.ndarray) -> tuple[int, ...]:
    """(H, W) or (C, H, W) of images (N, H, W) or (N, C, H, W); for flat data (N, D) a square image
    when D is a square, else vectors (D,)."""
    if x.ndim > 2:
        return tuple(x.shape[1:])
    side = math.isqrt(x.shape[1])
    return (side, side) if side * side == x.shape[1] else (x.shape[1],)
