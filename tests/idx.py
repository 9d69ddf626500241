"""Write MNIST-format IDX files (big-endian header, unsigned bytes), as LeCun's originals."""

import struct
from pathlib import Path

import numpy as np

FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim  # 0x08: unsigned byte
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.tobytes())


def write_tiny_mnist(root: Path, n_train: int, n_test: int, side: int = 28, seed: int = 0, folder: str = "MNIST"):
    """Random images in torchvision's layout root/<folder>/raw/ (MNIST, FashionMNIST, KMNIST);
    returns the arrays written."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for train, n in ((True, n_train), (False, n_test)):
        images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(raw / FILES[train][0], images)
        write_idx(raw / FILES[train][1], labels)
        arrays[train] = (images, labels)
    return arrays
