"""``data=folder``: a directory of images in torchvision's ``ImageFolder`` layout."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pyro_mvae.config import option
from pyro_mvae.data.own import OwnImagesConfig, split_own_images
from pyro_mvae.data.splits import Dataset
from pyro_mvae.errors import DataError

LAYOUT = "DIR/<class>/<image>.png (or .jpg, .bmp, ...: torchvision's ImageFolder layout, one sub-folder per class)"


@dataclass
class FolderConfig(OwnImagesConfig):
    """Options of a user's own image files (``data=folder data.path=DIR``)."""

    path: str | None = option(None, f"directory of images: {LAYOUT}")
    size: int = option(28, "images resized to size × size pixels")
    grey: bool = option(True, "converted to one grey channel; false keeps the 3 RGB channels")

    def check(self):
        super().check()
        self.at_least("size", 1)


def load_folder(device="cpu", **options) -> Dataset:
    """Every image under ``data.path`` (torchvision's ``ImageFolder``: the sub-folder is the
    label), converted to grey (``grey``) or RGB, resized to ``size`` × ``size``, its 8-bit levels
    scaled to [0, 1], split by a fixed permutation
    (:func:`~pyro_mvae.data.own.split_own_images`). ``event_shape`` is
    ``(1, size, size)`` grey, ``(3, size, size)`` RGB. ``options``: those of :class:`FolderConfig`.

    Raises:
        ConfigError: for a bad option.
        DataError: for a missing directory, one without class sub-folders or images, an image
            file that cannot be read (named), or too few images to split.
    """
    cfg = FolderConfig.from_options(options, "data 'folder'")
    images = _image_folder(cfg)
    x = np.empty((len(images), 1 if cfg.grey else 3, cfg.size, cfg.size), dtype=np.float32)  # (N, C, H, W)
    for i in tqdm(range(len(images)), desc=f"reading {cfg.path}", leave=False, disable=len(images) < 5000):
        x[i] = _read(images, i)
    y = np.asarray(images.targets, dtype=np.int64)  # (N,)
    shape = (cfg.size, cfg.size) if cfg.grey else (3, cfg.size, cfg.size)
    return split_own_images("folder", x.reshape(len(x), *shape) / 255, y, 256, cfg, shape, device)


def _image_folder(cfg: FolderConfig):
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    if cfg.path is None:
        raise DataError(f"data=folder needs the directory: give data.path=DIR, with {LAYOUT}")
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a directory: give data.path=DIR, with {LAYOUT}")
    grey = [transforms.Grayscale(1)] if cfg.grey else []  # ImageFolder's loader gives RGB
    to_array = transforms.Compose([*grey, transforms.Resize((cfg.size, cfg.size)), transforms.PILToTensor()])
    try:
        return ImageFolder(str(root), transform=to_array)
    except FileNotFoundError as err:  # no class folder, or no image in any
        raise DataError(f"{root} holds no images to read ({err}); the layout is {LAYOUT}") from err


def _read(images, i: int) -> np.ndarray:
    """Image ``i`` as 8-bit levels ``(C, size, size)``, or a DataError naming its file."""
    try:
        return images[i][0].numpy()
    except OSError as err:  # PIL's UnidentifiedImageError and truncated files
        raise DataError(f"{images.samples[i][0]} could not be read as an image ({err}): remove or repair it") from err
