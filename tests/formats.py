"""Write tiny files in the formats of binarised MNIST (.amat), Omniglot (chardata.mat) and image
folders, from real handwriting (scikit-learn's digits)."""

import numpy as np
import scipy.io
from PIL import Image
from sklearn.datasets import load_digits as sk_digits


def digits_28(n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real digits as 28×28 intensities in [0, 1] (8×8 upsampled 3× and padded by 2), labels."""
    bunch = sk_digits()
    small = bunch.images[start:start + n] / 16.0  # (n, 8, 8)
    big = np.kron(small, np.ones((3, 3)))  # (n, 24, 24)
    return np.pad(big, ((0, 0), (2, 2), (2, 2))), bunch.target[start:start + n]


def write_amat(root, sizes=(30, 10, 12)) -> list[np.ndarray]:
    folder = root / "BinarizedMNIST"
    folder.mkdir(parents=True)
    written, start = [], 0
    for split, n in zip(("train", "valid", "test"), sizes):
        x = (digits_28(n, start)[0] > 0.5).astype(np.uint8).reshape(n, 784)
        np.savetxt(folder / f"binarized_mnist_{split}.amat", x, fmt="%d")
        written.append(x)
        start += n
    return written


def write_chardata(root, n_train=40, n_test=12) -> dict:
    (root / "OMNIGLOT").mkdir(parents=True)
    x, _ = digits_28(n_train + n_test)
    alphabets = np.arange(n_train + n_test) % 50
    one_hot = np.eye(50)[alphabets].T  # (50, N)
    columns = x.reshape(len(x), -1, order="F").T  # (784, N): column n is image n, column-major
    scipy.io.savemat(root / "OMNIGLOT" / "chardata.mat", {
        "data": columns[:, :n_train], "testdata": columns[:, n_train:],
        "target": one_hot[:, :n_train], "testtarget": one_hot[:, n_train:]})
    return {"train": (x[:n_train], alphabets[:n_train]), "test": (x[n_train:], alphabets[n_train:])}


def write_folder(root, n=60, rgb=False) -> dict:
    """Digits as 8-bit PNGs in root/<digit>/<i>.png; returns {path name: (levels, label)}."""
    bunch = sk_digits()
    written = {}
    for i in range(n):
        levels = np.round(bunch.images[i] * 255 / 16).astype(np.uint8)  # (8, 8)
        if rgb:  # the digit in red, its negative in green, blue constant
            levels = np.stack([levels, 255 - levels, np.full_like(levels, 40)], axis=-1)  # (8, 8, 3)
        folder = root / f"digit_{bunch.target[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(levels).save(folder / f"{i}.png")
        written[f"{i}.png"] = (levels, bunch.target[i])
    return written
