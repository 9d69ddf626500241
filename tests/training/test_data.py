"""Dataset loaders and the binarisation protocol, on real and on test-written IDX files."""

import numpy as np
import pytest
import torch

from idx import write_tiny_mnist
from pyro_mvae.data import load_digits, load_mnist
from pyro_mvae.data.splits import Split, binarize_fixed, make_dataset
from pyro_mvae.errors import DataError, DataNotFoundError

# The first labels of LeCun's files (train-labels-idx1-ubyte, t10k-labels-idx1-ubyte).
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_real_mnist_few_hundred_images(shared_mnist_root):
    data = load_mnist(root=shared_mnist_root, download=False, val_size=100, limit=400)
    assert data.event_shape == (1, 28, 28) and data.data_dim == 784
    assert (len(data.train), len(data.val), len(data.test)) == (300, 100, 400)
    assert data.train.y[:10].tolist() == FIRST_TRAIN_LABELS
    assert data.test.y[:10].tolist() == FIRST_TEST_LABELS
    assert data.train.dynamic and 0 < data.train.x.max() <= 1  # grey levels kept for training
    for split in (data.val, data.test):
        assert set(split.x.unique().tolist()) == {0.0, 1.0}
    ink = data.test.x.mean().item()  # MNIST is ~13% ink at binarisation of intensities
    assert 0.08 < ink < 0.18


def test_full_real_mnist_split_sizes(shared_mnist_root):
    data = load_mnist(root=shared_mnist_root, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (50000, 10000, 10000)
    counts = torch.bincount(data.test.y, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_from_idx_files_written_by_the_test(tmp_path):
    arrays = write_tiny_mnist(tmp_path, n_train=30, n_test=12)
    data = load_mnist(root=tmp_path, download=False, val_size=10)
    images, labels = arrays[True]
    np.testing.assert_allclose(data.train.x.numpy(), images[:20].reshape(20, 1, 28, 28) / 255, rtol=1e-6)
    assert data.train.y.tolist() == labels[:20].tolist()
    assert data.val.y.tolist() == labels[20:].tolist()
    assert data.test.y.tolist() == arrays[False][1].tolist()


def test_environment_variable_gives_the_root(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path, n_train=30, n_test=5)
    monkeypatch.setenv("PYRO_MVAE_DATA", str(tmp_path))
    assert len(load_mnist(download=False, val_size=10).test) == 5


def test_missing_mnist_names_the_files_and_folder(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_mnist(root=tmp_path / "absent", download=False)
    message = str(err.value)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    assert str(tmp_path / "absent" / "MNIST" / "raw") in message


def test_fixed_binarisation_is_repeatable_and_dynamic_is_not():
    a, b = load_digits(), load_digits()
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.val.x, b.val.x)
    x = torch.full((1000, 64), 0.3)
    assert torch.equal(binarize_fixed(x), binarize_fixed(x))
    assert binarize_fixed(x).mean().item() == pytest.approx(0.3, abs=0.01)
    first, second = next(a.train.batches(50)), next(a.train.batches(50))
    assert not torch.equal(first, second)  # training images are re-binarised every batch
    assert set(first.unique().tolist()) <= {0.0, 1.0}


def test_dynamic_binarisation_draws_each_pixel_from_its_bernoulli():
    """A dynamic split's batches against the binomial law: on 4,000 draws of each of 64 real digit
    intensities (some exactly 0 and 1), each pixel's count of ones lies in its binomial's central
    99.99% interval, and the counts' chi-square over the non-degenerate pixels is in range."""
    from scipy import stats

    p = load_digits(binarize=False).train.x[0].reshape(64).double()  # (64,) grey levels k/16
    split = Split(p.expand(4000, 64), torch.zeros(4000), dynamic=True)
    draws = next(split.batches(4000))  # (4000, 64)
    assert draws.dtype == p.dtype and set(draws.unique().tolist()) <= {0.0, 1.0}
    ones = draws.sum(0).numpy()
    low, high = stats.binom.interval(0.9999, 4000, p.numpy())
    assert ((ones >= low) & (ones <= high)).all()
    inside = (p > 0) & (p < 1)
    q = p[inside].numpy()
    chi2 = (((ones[inside.numpy()] - 4000 * q) ** 2) / (4000 * q * (1 - q))).sum()
    assert stats.chi2.sf(chi2, int(inside.sum())) > 1e-4


def test_digits_splits_are_disjoint_and_complete():
    data = load_digits()
    assert (len(data.train), len(data.val), len(data.test)) == (1200, 300, 297)
    assert data.event_shape == (1, 8, 8)


def test_batches_cover_the_split_once():
    data = load_digits(binarize=False)
    seen = torch.cat(list(data.val.batches(64, shuffle=True)))
    assert seen.shape == data.val.x.shape
    torch.testing.assert_close(seen.sum(0), data.val.x.sum(0))


def test_nan_pixels_are_refused():
    x = np.random.rand(20, 4, 4)
    x[3, 1, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        make_dataset("bad", (x, np.zeros(20)), (x[:5], np.zeros(5)), (4, 4), 5, True, "cpu")


def test_out_of_range_intensities_are_refused():
    x = np.random.rand(20, 4, 4) * 255
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        make_dataset("bad", (x, np.zeros(20)), (x[:5], np.zeros(5)), (4, 4), 5, True, "cpu")


@pytest.mark.parametrize("name,folder", [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_mnist_format_sets_read_their_own_folder_and_train_from_the_cli(name, folder, tmp_path, capsys):
    """Fashion-MNIST and KMNIST: the same IDX files under ROOT/<folder>/raw/, MNIST's protocol
    (images and labels as written, dynamic binarisation of training images), one epoch of training."""
    from pyro_mvae.cli import main
    from pyro_mvae.data import load_idx_set

    arrays = write_tiny_mnist(tmp_path / "data", n_train=40, n_test=10, folder=folder)
    data = load_idx_set(name, root=tmp_path / "data", download=False, val_size=10)
    np.testing.assert_allclose(data.train.x.numpy(), arrays[True][0][:30].reshape(30, 1, 28, 28) / 255, rtol=1e-6)
    assert data.test.y.tolist() == arrays[False][1].tolist() and data.spec["name"] == name
    assert data.test.x.unique().tolist() == [0.0, 1.0]  # test images binarised once
    with pytest.raises(DataNotFoundError, match=f"{tmp_path / 'data' / 'absent' / folder / 'raw'}"):
        load_idx_set(name, root=tmp_path / "data" / "absent", download=False)
    run = tmp_path / "run"
    assert main(["train", f"data={name}", f"data.root={tmp_path / 'data'}", "data.download=false",
                 "data.val_size=10", "trainer.epochs=1", "trainer.eval_samples=5", "trainer.progress=false",
                 "trainer.figures=false", "net.hidden=[16]", "net.latent_dim=4", f"run_dir={run}"]) == 0
    assert f"{name} test (10 images)" in capsys.readouterr().out


def _arrays_run(tmp_path, path, *extra, run_name="run"):
    from pyro_mvae.cli import main

    run = tmp_path / run_name
    code = main(["train", "data=arrays", f"data.path={path}", "data.batch_size=10", "trainer.epochs=1",
                 "trainer.eval_samples=5", "trainer.progress=false", "trainer.figures=false", "net.hidden=[16]",
                 "net.latent_dim=4", f"run_dir={run}", *extra])
    return code, run


def test_arrays_split_real_digits_by_a_fixed_permutation_and_train(tmp_path, capsys):
    """scikit-learn's digits saved as a user would (uint8 0..255, labels in an .npz): every image
    lands in exactly one split, the same one for the same seed, scaled by 1/255; one epoch trains."""
    from sklearn.datasets import load_digits as sk_digits

    from pyro_mvae.data import load_arrays

    images = (sk_digits().images[:200] * 255 / 16).round().astype(np.uint8)  # (200, 8, 8)
    np.savez(tmp_path / "digits.npz", x=images, y=np.arange(200))
    data = load_arrays(path=str(tmp_path / "digits.npz"), binarize=False, val_fraction=0.2, test_fraction=0.1)
    assert (len(data.train), len(data.val), len(data.test)) == (140, 40, 20) and data.event_shape == (1, 8, 8)
    ids = torch.cat([data.train.y, data.val.y, data.test.y]).sort().values
    assert ids.tolist() == list(range(200))  # labels carry the image index: a partition
    np.testing.assert_allclose(data.test.x.numpy(), images[data.test.y.numpy()].reshape(20, 1, 8, 8) / 255, rtol=1e-6)
    again = load_arrays(path=str(tmp_path / "digits.npz"), binarize=False, val_fraction=0.2, test_fraction=0.1)
    assert torch.equal(again.test.y, data.test.y)
    np.save(tmp_path / "flat.npy", images.reshape(200, 64) / 255.0)  # floats in [0, 1], (N, D)
    code, run = _arrays_run(tmp_path, tmp_path / "flat.npy")
    assert code == 0 and "arrays test (20 images)" in capsys.readouterr().out


def test_arrays_keep_channels_first_images_and_vectors(tmp_path, capsys):
    """(N, C, H, W) stays (C, H, W) and trains with net=conv; (N, D) with D not a square is a
    vector (D,): net=mlp trains on it, net=conv is refused by name."""
    from sklearn.datasets import load_sample_images

    from pyro_mvae.data import load_arrays

    photo = load_sample_images().images[0][:96, :160]  # (96, 160, 3) uint8
    rgb = photo.reshape(12, 8, 20, 8, 3).transpose(0, 2, 4, 1, 3).reshape(240, 3, 8, 8)  # (240, 3, 8, 8)
    np.save(tmp_path / "rgb.npy", rgb)
    data = load_arrays(path=str(tmp_path / "rgb.npy"))
    assert data.event_shape == (3, 8, 8) and data.train.x.shape[1:] == (3, 8, 8)
    code, run = _arrays_run(tmp_path, tmp_path / "rgb.npy", "net=conv", "net.channels=[4]")
    assert code == 0, capsys.readouterr().err
    vectors = (rgb.reshape(240, -1)[:, :10] > 128)  # (240, 10) booleans
    np.save(tmp_path / "vectors.npy", vectors)
    assert load_arrays(path=str(tmp_path / "vectors.npy")).event_shape == (10,)
    code, run = _arrays_run(tmp_path, tmp_path / "vectors.npy", run_name="vectors")
    assert code == 0, capsys.readouterr().err
    code, run = _arrays_run(tmp_path, tmp_path / "vectors.npy", "net=conv", run_name="conv_vectors")
    assert code == 2 and "net=conv needs images of shape (C, H, W), got data of shape (10,)" in capsys.readouterr().err


def test_a_relative_data_path_is_stored_absolute_and_the_run_evaluates_from_elsewhere(tmp_path, monkeypatch,
                                                                                        capsys):
    from sklearn.datasets import load_digits as sk_digits

    from pyro_mvae.cli import main

    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "digits.npy", sk_digits().images[:200] / 16)  # (200, 8, 8)
    monkeypatch.chdir(tmp_path)
    code, run = _arrays_run(tmp_path, "data/digits.npy")
    assert code == 0, capsys.readouterr().err
    assert f"path: {tmp_path / 'data' / 'digits.npy'}" in (run / "config.yaml").read_text()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["evaluate", str(run), "-K", "10", "--no-figures"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_arrays_are_refused_with_the_fix_unless_the_layout_is_given(tmp_path, capsys, channels):
    """(N, H, W, C) as PIL and TensorFlow store images: refused (exit 2, no run directory) naming
    np.moveaxis; data.layout=channels_last moves the axis and gives the same images as channels first."""
    from sklearn.datasets import load_digits as sk_digits

    from pyro_mvae.data import load_arrays

    first = np.repeat(sk_digits().images[:200, None] / 16, channels, axis=1)  # (200, C, 8, 8)
    np.save(tmp_path / "last.npy", np.moveaxis(first, 1, -1))  # (200, 8, 8, C)
    np.save(tmp_path / "first.npy", first)
    code, run = _arrays_run(tmp_path, tmp_path / "last.npy")
    err = capsys.readouterr().err
    assert code == 2 and "np.moveaxis(x, -1, 1)" in err and "data.layout=channels_last" in err and not run.exists()
    moved = load_arrays(path=str(tmp_path / "last.npy"), layout="channels_last")
    assert moved.event_shape == (channels, 8, 8)
    assert torch.equal(moved.train.x, load_arrays(path=str(tmp_path / "first.npy")).train.x)
    code, run = _arrays_run(tmp_path, tmp_path / "last.npy", "data.layout=channels_last")
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("array,needle", [
    (np.full((30, 8, 8), np.nan), "NaN or infinite"),
    (np.full((30, 8, 8), 300.0), "rescale"),
    (-np.ones((30, 64)), "rescale"),
    (np.ones(30), "shape (30,)"),
    (np.ones((3, 64)) / 2, "too few"),
])
def test_bad_array_files_are_refused_by_name_without_a_run_directory(tmp_path, capsys, array, needle):
    np.save(tmp_path / "bad.npy", array)
    code, run = _arrays_run(tmp_path, tmp_path / "bad.npy")
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "bad.npy" in err and not run.exists()


def test_a_missing_or_foreign_array_file_says_what_to_give(tmp_path, capsys):
    for path in (tmp_path / "absent.npy", tmp_path / "images.csv"):
        code, run = _arrays_run(tmp_path, path)
        assert code == 2 and "a .npy or .npz file" in capsys.readouterr().err and not run.exists()
    code, _ = _arrays_run(tmp_path, "null")
    assert code == 2 and "data=arrays needs the file" in capsys.readouterr().err
