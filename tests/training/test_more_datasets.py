"""Binarised MNIST (.amat), Omniglot (chardata.mat) and image folders, on tiny files the tests
write in each format from real handwriting (scikit-learn's digits, padded to 28×28): read back
exactly, trained for one epoch from the CLI, and every bad file refused by name (exit 2, no run
directory)."""

import numpy as np
import pytest
import scipy.io
import torch

from formats import write_amat, write_chardata, write_folder
from pyro_mvae.cli import main
from pyro_mvae.data import load_binarized_mnist, load_folder, load_omniglot
from pyro_mvae.errors import DataNotFoundError

TINY_TRAINING = ["trainer.epochs=1", "trainer.eval_samples=5", "trainer.progress=false", "net.hidden=[16]",
                 "net.latent_dim=4"]


def _train(tmp_path, *overrides, figures=False):
    run = tmp_path / "run"
    return main(["train", *overrides, *TINY_TRAINING, f"trainer.figures={figures}", f"run_dir={run}"]), run


# Binarised MNIST: three .amat files, one image per line.

def test_binarized_mnist_keeps_its_files_split_and_binarisation(tmp_path, capsys):
    train, valid, test = write_amat(tmp_path)
    data = load_binarized_mnist(root=str(tmp_path), download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 12) and data.event_shape == (1, 28, 28)
    for split, x in ((data.train, train), (data.val, valid), (data.test, test)):
        static = split.x.numpy().reshape(len(x), 784)  # never re-binarised
        assert not split.dynamic and np.array_equal(static, x)
    assert torch.equal(next(data.train.batches(30)), data.train.x)
    assert len(load_binarized_mnist(root=str(tmp_path), download=False, limit=5).val) == 5
    code, run = _train(tmp_path, "data=binarized_mnist", f"data.root={tmp_path}", "data.download=false",
                       "data.batch_size=10")
    assert code == 0 and "binarized_mnist test (12 images)" in capsys.readouterr().out


def test_missing_binarized_mnist_names_the_files_and_folder(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_binarized_mnist(root=str(tmp_path), download=False)
    for name in ("binarized_mnist_train.amat", "binarized_mnist_valid.amat", "binarized_mnist_test.amat",
                 str(tmp_path / "BinarizedMNIST"), "larocheh"):
        assert name in str(err.value)


@pytest.mark.parametrize("line,needle", [(" ".join(["0"] * 783), "could not be read"),
                                         (" ".join(["2"] * 784), "other than 0 and 1")])
def test_bad_amat_files_are_refused_by_name_without_a_run_directory(tmp_path, capsys, line, needle):
    write_amat(tmp_path)
    bad = tmp_path / "BinarizedMNIST" / "binarized_mnist_valid.amat"
    bad.write_text(bad.read_text() + line + "\n")
    code, run = _train(tmp_path, "data=binarized_mnist", f"data.root={tmp_path}", "data.download=false")
    err = capsys.readouterr().err
    assert code == 2 and needle in err and str(bad) in err and not run.exists()


# Omniglot: Burda et al.'s chardata.mat, one column-major image per column.

def test_omniglot_reads_images_upright_with_their_alphabets(tmp_path, capsys):
    written = write_chardata(tmp_path)
    data = load_omniglot(root=str(tmp_path), download=False, val_size=10, binarize=False)
    x, alphabets = written["test"]
    np.testing.assert_allclose(data.test.x.numpy(), x.reshape(12, 1, 28, 28), rtol=1e-6)  # not transposed
    assert data.test.y.tolist() == alphabets.tolist() and data.val.y.tolist() == written["train"][1][30:].tolist()
    binary = load_omniglot(root=str(tmp_path), download=False, val_size=10)
    assert binary.train.dynamic and binary.test.x.unique().tolist() == [0.0, 1.0]  # MNIST's protocol
    code, run = _train(tmp_path, "data=omniglot", f"data.root={tmp_path}", "data.download=false",
                       "data.val_size=10", "data.batch_size=10")
    assert code == 0 and "omniglot test (12 images)" in capsys.readouterr().out


def test_bad_or_missing_chardata_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(DataNotFoundError, match="chardata.mat"):
        load_omniglot(root=str(tmp_path), download=False)
    (tmp_path / "OMNIGLOT").mkdir()
    path = tmp_path / "OMNIGLOT" / "chardata.mat"
    for content, needle in ((b"<html>not found</html>", "could not be read as a MATLAB file"),
                            ({"data": np.ones((100, 5))}, "an array (784, N)")):
        path.unlink(missing_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else scipy.io.savemat(path, content)
        code, run = _train(tmp_path, "data=omniglot", f"data.root={tmp_path}", "data.download=false")
        err = capsys.readouterr().err
        assert code == 2 and needle in err and str(path) in err and not run.exists()


# Image folders: torchvision's ImageFolder layout, grey or RGB.

@pytest.mark.parametrize("rgb", [False, True])
def test_folder_images_are_read_exactly_split_and_trained(tmp_path, capsys, rgb):
    written = write_folder(tmp_path / "images", rgb=rgb)
    data = load_folder(path=str(tmp_path / "images"), size=8, grey=not rgb, binarize=False,
                       val_fraction=0.2, test_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (36, 12, 12)
    assert data.event_shape == ((3, 8, 8) if rgb else (1, 8, 8))
    by_label = {}
    for levels, label in written.values():
        flat = levels.transpose(2, 0, 1).reshape(-1) if rgb else levels.reshape(-1)  # channel first
        by_label.setdefault(label, []).append(flat / 255)
    for x, y in zip(data.test.x.numpy(), data.test.y.tolist()):  # every test image is one written
        assert min(np.abs(x.reshape(-1) - w).max() for w in by_label[y]) < 1e-6  # under its folder's label
    code, run = _train(tmp_path, "data=folder", f"data.path={tmp_path / 'images'}", "data.size=8",
                       f"data.grey={not rgb}", "data.batch_size=10", figures=rgb)
    assert code == 0 and "folder test (6 images)" in capsys.readouterr().out
    if rgb:  # figures of colour images: the RGB grid path
        assert (run / "figures" / "samples.png").stat().st_size > 0


def test_folder_resizes_to_the_size_asked(tmp_path):
    write_folder(tmp_path / "images", n=20)
    data = load_folder(path=str(tmp_path / "images"), size=28)
    assert data.event_shape == (1, 28, 28) and data.data_dim == 784


def test_bad_folders_are_refused_by_name_without_a_run_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_images" / "cats").mkdir(parents=True)
    write_folder(tmp_path / "broken", n=20)
    (tmp_path / "broken" / "digit_0" / "bad.png").write_bytes(b"not a png")
    (tmp_path / "file.png").write_bytes(b"")
    for path, needle in ((tmp_path / "empty", "holds no images"), (tmp_path / "no_images", "holds no images"),
                         (tmp_path / "broken", "bad.png could not be read"), (tmp_path / "file.png", "not a directory"),
                         ("null", "data=folder needs the directory")):
        code, run = _train(tmp_path, "data=folder", f"data.path={path}", "data.size=8")
        err = capsys.readouterr().err
        assert code == 2 and needle in err and not run.exists(), err


def test_absent_files_are_downloaded_and_a_failed_download_leaves_nothing(tmp_path, monkeypatch):
    """The download path, with a local HTTP server standing in for Larochelle's page: the files
    arrive in ROOT/<folder>/ and load; an address that fails (404) leaves no partial file and the
    error names the folder."""
    import threading
    from dataclasses import replace
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from pyro_mvae.data import binarized_mnist

    write_amat(tmp_path / "server")
    monkeypatch.setenv("no_proxy", "*")  # the local server, never through a proxy
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "server"))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        address = f"http://127.0.0.1:{server.server_address[1]}/"
        files = replace(binarized_mnist.FILES, url_base=address + "BinarizedMNIST/")
        monkeypatch.setattr(binarized_mnist, "FILES", files)
        data = load_binarized_mnist(root=str(tmp_path / "data"), download=True)
        assert len(data.test) == 12 and (tmp_path / "data" / "BinarizedMNIST" / "binarized_mnist_test.amat").is_file()
        monkeypatch.setattr(binarized_mnist, "FILES", replace(binarized_mnist.FILES, url_base=address + "absent/"))
        with pytest.raises(DataNotFoundError, match="the download failed") as err:
            load_binarized_mnist(root=str(tmp_path / "other"), download=True)
        server.shutdown()
    assert str(tmp_path / "other" / "BinarizedMNIST") in str(err.value)
    assert not list((tmp_path / "other").rglob("*.amat"))
