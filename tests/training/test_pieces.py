"""Runs done in pieces: trainer.max_time stops cleanly (exit 3, last.pt, a "continue with" line),
the same command continues a stopped run, and the pieces add up bit for bit to one whole run;
early stopping counts from the end of the warm-up, as the published protocol does."""

import itertools
import json
import time
from types import SimpleNamespace

import pytest
from test_resume import QUICK, assert_same_run

from pyro_mvae.cli import main
from pyro_mvae.compose import compose_config
from pyro_mvae.errors import ConfigError
from pyro_mvae.training import train
from pyro_mvae.training.train import TrainerConfig, duration_seconds, patience_exhausted

PROTOCOL = ["experiment=vampprior_protocol", "data=digits", "net.hidden=[32,16]", "net.latent_dim=4",
            "trainer.eval_samples=30", "trainer.figures=false", "trainer.warmup_epochs=2", "seed=3"]


@pytest.mark.parametrize("text,seconds", [("2h50m", 10200), ("45m", 2700), ("90s", 90), ("1h30m15s", 5415),
                                          ("3h", 10800)])
def test_durations(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "2.5h", "10", "5 minutes", "m"])
def test_bad_durations_are_refused(text):
    assert duration_seconds(text) is None
    with pytest.raises(ConfigError, match="trainer.max_time must be "):
        TrainerConfig(max_time=text)


def test_patience_counts_from_the_end_of_the_warmup():
    """The published code resets its counter during the warm-up (epochs < 100) and stops when more
    than its patience of epochs pass without a better validation loss."""
    trainer = {"patience": 3, "warmup_epochs": 10}
    assert not patience_exhausted({"epoch": 9, "best_epoch": 0}, trainer)  # 8 epochs without, all in warm-up
    assert not patience_exhausted({"epoch": 12, "best_epoch": 0}, trainer)  # epochs 10, 11 counted
    assert patience_exhausted({"epoch": 13, "best_epoch": 0}, trainer)  # epochs 10, 11, 12
    assert not patience_exhausted({"epoch": 14, "best_epoch": 11}, trainer)
    assert patience_exhausted({"epoch": 15, "best_epoch": 11}, trainer | {"warmup_epochs": 0})


def pieces(run_dir, budget: str, limit: int = 40) -> int:
    """Run the same command until it finishes; the number of pieces it took."""
    command = ["train", *PROTOCOL, "trainer.epochs=5", f"trainer.max_time={budget}", f"run_dir={run_dir}"]
    for piece in range(1, limit + 1):
        code = main(command)
        if code == 0:
            return piece
        assert code == 3
    raise AssertionError("the run did not finish")


@pytest.fixture
def slow_clock(monkeypatch):
    """The training loop's clock advances 0.05 s each time it is read (twice a step): a second of
    trainer.max_time is ten steps, however fast this machine is."""
    ticks = itertools.count()
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=time.perf_counter,
                                                       monotonic=lambda: 0.05 * next(ticks)))


def test_pieces_add_up_to_the_whole_run(tmp_path, capsys, slow_clock):
    """A run stopped every ten steps and continued by the same command each time ends bit-identical
    to the run trained in one go: parameters, Adam's moments (AdamNormGrad, the protocol's), metrics."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["train", *PROTOCOL, "trainer.epochs=5", f"run_dir={whole}"]) == 0
    assert pieces(split, "1s") > 4  # 5 epochs of 12 steps
    err = capsys.readouterr()
    assert "reached trainer.max_time=1s at epoch" in err.err
    assert f"Continue with: pyro-mvae train resume={split}" in err.err
    assert f"continuing the run in {split} from epoch" in err.out
    assert_same_run(whole, split)
    report = json.loads((split / "report.json").read_text())
    assert report["epochs_run"] == 5
    assert main(["train", *PROTOCOL, "trainer.epochs=5", f"run_dir={split}"]) == 2  # finished: refused
    assert "has finished its 5 epochs" in capsys.readouterr().err


def test_same_run_dir_with_other_settings_is_refused(tmp_path, capsys, slow_clock):
    run_dir = tmp_path / "r"
    assert main(["train", *QUICK, "trainer.epochs=2", "trainer.max_time=1s", f"run_dir={run_dir}"]) == 3
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["train", *QUICK, "trainer.epochs=2", "trainer.lr=0.01", f"run_dir={run_dir}"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run with other settings (trainer.lr: 0.01 here, 0.001 in the run)" in err
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_the_protocol_config():
    """experiment=vampprior_protocol is the published protocol; prior=vamp adds its pseudo-inputs,
    and every route of the studies composes with it."""
    config = compose_config(["experiment=vampprior_protocol", "prior=vamp"])
    assert config["data"]["name"] == "mnist" and config["data"]["batch_size"] == 100
    assert config["net"] == {"name": "gated_mlp", "hidden": [300, 300], "latent_dim": 40, "init": "he"}
    assert config["guide"] | {} == {"name": "gaussian", "scale": "logvar", "logvar_min": -6.0, "logvar_max": 2.0}
    assert config["prior"] == {"name": "vamp", "components": 500, "pseudo_inputs": "hardtanh", "init_mean": 0.05,
                               "init_std": 0.01}
    trainer = config["trainer"]
    assert (trainer["optimizer"], trainer["lr"], trainer["epochs"], trainer["patience"]) == \
        ("adam_normgrad", 0.0005, 2000, 50)
    betas = [TrainerConfig(**trainer).beta(epoch) for epoch in range(101)]  # the published β = epoch / 100, 1-based
    assert betas == pytest.approx([min(1.0, (epoch + 1) / 100) for epoch in range(101)])
    assert (trainer["eval_samples"], trainer["eval_limit"]) == (5000, None)
    for route in ("standard_gaussian", "fm3_gaussian", "mix10_marginal", "flow_gaussian", "vamp_gaussian"):
        composed = compose_config(["experiment=vampprior_protocol", f"route={route}"])
        assert composed["guide"]["scale"] == "logvar"
        assert ("pseudo_inputs" in composed["prior"]) == (route == "vamp_gaussian")
        if route == "vamp_gaussian":
            assert composed["prior"]["pseudo_inputs"] == "hardtanh"
