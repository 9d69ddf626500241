"""The README's and the docs' commands and Python snippets run as written and leave runs the
command line can use."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from doc_pages import block_after, blocks
from formats import write_amat, write_chardata, write_folder
from idx import write_tiny_mnist
from pyro_mvae.cli import main

PYTHON_PAGE = "docs/guide/python.md"
ROOT = Path(__file__).resolve().parents[1]


def test_the_readmes_python_example_trains_and_scores(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # a second time makes a run of its own (issue 45: it ended in FileExistsError)
        exec(compile(block_after("README.md", "## In Python"), "README", "exec"), {})
        mean, _, se, _ = capsys.readouterr().out.splitlines()[-1].split()  # "-23.10 ± 0.22 nats"
        mean, se = float(mean), float(se)
        assert -40 < mean < -15 and 0 < se < 1  # nats per 8×8 digit: between a good model and coin flips (-44)
    assert len(list((tmp_path / "runs").glob("readme-*/best.pt"))) == 2


@pytest.fixture(scope="module")
def snippet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        exec(compile(block_after(PYTHON_PAGE, "# From Python"), PYTHON_PAGE, "exec"), {})
    return root / "runs" / "example"


def test_a_run_fit_makes_from_python_evaluates_samples_and_resumes(snippet_run, capsys):
    assert main(["evaluate", str(snippet_run), "-K", "20", "--limit", "30", "--no-figures"]) == 0
    assert main(["sample", str(snippet_run), "-n", "4"]) == 0
    assert main(["train", f"resume={snippet_run}", "trainer.epochs=6", "trainer.eval_samples=10"]) == 0, \
        capsys.readouterr().err
    assert "IWAE log p(x) (K=10)" in capsys.readouterr().out


def test_the_config_snippet_trains_and_loads_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block_after(PYTHON_PAGE, "`compose_config` gives the command line's"), PYTHON_PAGE, "exec"),
         namespace)
    assert namespace["checkpoint"]["config"]["prior"]["name"] == "mixture"
    assert namespace["vae"].beta == 1.0 and (tmp_path / "runs" / "example2" / "report.json").exists()
    assert (tmp_path / "runs" / "example2" / "eval.json").exists()  # evaluate=evaluate_final


def test_the_m2_snippet_trains_a_classifier_with_pyros_svi(capsys):
    page = "docs/guide/semi_supervised.md"
    exec(compile(block_after(page, "## From Python and with"), page, "exec"), {})
    error = float(capsys.readouterr().out.split()[-1])  # "test error 0.123"
    assert error < 0.5  # chance is 0.9: the 100 labels taught q(c | x) the digits


def _commands() -> list[str]:
    """Every ``pyro-mvae`` line of the bash blocks of the README and the docs, comments dropped."""
    lines = []
    for _, block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("pyro-mvae") and line not in lines:
                lines.append(line)
    return lines


TINY = {"trainer.epochs": "1", "trainer.eval_samples": "5", "trainer.eval_limit": "20",
        "trainer.progress": "false", "trainer.figures": "false", "net.hidden": "[16]", "net.latent_dim": "4"}
ROOTED = {"mnist": {"data.val_size": "20"}, "fashion_mnist": {"data.val_size": "20"}, "binarized_mnist": {},
          "omniglot": {"data.val_size": "20"}}
"""Data sets read from data.root: the stand-in files the documented commands get, and their options."""
EXPERIMENT_DATA = {"vampprior_protocol": "mnist", "mnist_core": "mnist"}
"""Experiments that choose a data set read from data.root."""
EVALUATE = {"-K": "20", "--limit": "20", "--ais-steps": "5", "--bdmc-steps": "2,5"}
"""Options of `pyro-mvae evaluate` replaced by a tiny budget (the flag and its value)."""


def _tiny(command: str, root: Path, run: Path) -> list[str] | None:
    """The command's arguments with a tiny budget and local stand-ins, or None to skip it."""
    args = command.replace("RUN_DIR", str(run)).replace("runs/mnist_more_priors/RUN", str(run)).split()[1:]
    args = [str(run) if a in ("RUN_A", "RUN_B", "RUN_C") else a for a in args]
    if {"device=cuda", "cuda"} & set(args) and not torch.cuda.is_available():  # device=cuda, --device cuda
        return None
    if "-m" in args or any(a.startswith(("multirun/", "SWEEP_DIR")) for a in args):
        return None  # sweeps: tests/sweeps runs these grids and plans every study's
    if args[0] == "compare":  # the runs of a results section: the step's own run stands in
        args = [str(run) if a.startswith("runs/") else a for a in args]
    if args[0] == "evaluate":
        given = [a for a, b in zip(args, [None, *args]) if a not in EVALUATE and b not in EVALUATE]
        return given + [v for pair in EVALUATE.items() for v in pair] + ["--no-figures"]
    if args[0] != "train" or {"--help", "--cfg"} & set(args):
        return args
    if any(a.startswith("resume=") for a in args):  # only the one that trains further can run again
        further = any(a.startswith("trainer.epochs") for a in args)
        return ["train", f"resume={root / 'runs' / 'long'}", "trainer.epochs=2"] if further else None
    named = [a.split("=")[1] for a in args if a.startswith("data=")] or \
        [EXPERIMENT_DATA[a.split("=")[1]] for a in args if a.split("=")[1:] and a.split("=")[1] in EXPERIMENT_DATA]
    rooted = {"data.root": str(root / "data"), "data.download": "false", **ROOTED[named[0]]} \
        if named and named[0] in ROOTED else {}
    settings = TINY | rooted
    given = [a for a in args[1:] if a.split("=")[0] not in settings]
    return ["train", *given, *(f"{k}={v}" for k, v in settings.items())]


def _write_user_arrays(root: Path) -> None:
    """The documented example files of `data=arrays`, made of 300 real digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    np.save(root / "images.npy", (bunch.images[:300] * 255 / 16).round().astype(np.uint8))  # (N, 8, 8)
    np.savez(root / "faces.npz", x=bunch.data[:300] / 16, y=bunch.target[:300])  # (N, 64) in [0, 1]
    np.save(root / "photos.npy", np.repeat(bunch.images[:300, :, :, None] / 16, 3, axis=-1))  # (N, 8, 8, 3)


@pytest.mark.parametrize("command", _commands())
def test_every_documented_command_runs(command, tmp_path_factory, monkeypatch, capsys):
    root = tmp_path_factory.getbasetemp() / "readme_commands"
    if not root.exists():
        write_tiny_mnist(root / "data", n_train=120, n_test=40)
        write_tiny_mnist(root / "data", n_train=120, n_test=40, folder="FashionMNIST")
        write_amat(root / "data")
        write_chardata(root / "data")
        write_folder(root / "my_images")
        (root / "runs").mkdir()
        _write_user_arrays(root)
    monkeypatch.chdir(root)
    run = root / "runs" / "first"
    if not run.exists():
        assert main(_tiny("pyro-mvae train", root, run) + [f"run_dir={run}"]) == 0
    args = _tiny(command, root, run)
    if args is None:
        pytest.skip("needs a GPU, a sweep (tests/sweeps), or a run a page's previous step left running")
    assert main(args) == 0, (args, capsys.readouterr().err)


def test_the_model_guides_formulas_are_typeset():
    """Issue 45: formulas of the model family page are LaTeX for MathJax (as the tutorials'), not
    Unicode text such as `Σ_c π_c N(μ_c, diag σ_c²)`."""
    text = (ROOT / "docs" / "guide" / "models.md").read_text()
    prose = re.sub(r"`[^`]*`", "", re.sub(r"\$[^$\n]+\$", "", re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)))
    left = re.findall(r".{0,20}(?:Σ|Π_|∂|N\(μ|σ_\w|π_\w).{0,20}", prose)
    assert not left, left
    assert text.count("$") >= 40
