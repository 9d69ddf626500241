"""A run on the user's own encoder body and decoder (issue 23, item 3): `fit` writes it, the
config names no code, `load_run`, `evaluate_run` (IWAE, AIS, BDMC, figures) and a resume take the same modules again."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_images
from torch import nn

from pyro_mvae import TrainerConfig, build_from_config, build_vae, evaluate_run, fit, load_run, resume_run
from pyro_mvae.cli import main
from pyro_mvae.compose import trainer_settings
from pyro_mvae.data import load_arrays
from pyro_mvae.errors import ConfigError
from pyro_mvae.infer.ais import AISSettings
from pyro_mvae.training import checkpoints

LATENT = 4


def modules():
    """A fresh body x (B, 3, 8, 8) -> (B, 32) and decoder z (B, 4) -> logits (B, 3, 8, 8)."""
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 32), nn.ReLU())
    decoder = nn.Sequential(nn.Linear(LATENT, 8 * 64), nn.ReLU(), nn.Unflatten(1, (8, 8, 8)),
                            nn.Conv2d(8, 3, 3, padding=1))
    return {"encoder": body, "decoder": decoder}


@pytest.fixture
def rgb_file(tmp_path):
    """240 RGB 8×8 patches of scikit-learn's sample photograph, uint8, (N, C, H, W)."""
    photo = load_sample_images().images[1][:96, :160]  # (96, 160, 3)
    path = tmp_path / "patches.npy"
    np.save(path, photo.reshape(12, 8, 20, 8, 3).transpose(0, 2, 4, 1, 3).reshape(240, 3, 8, 8))
    return path


def test_an_own_network_run_loads_evaluates_and_resumes(rgb_file, tmp_path, capsys):
    data = load_arrays(path=str(rgb_file), batch_size=20)
    vae = build_vae(data.event_shape, {"name": "mixture", "components": 3}, {"name": "gaussian"},
                    {"name": "bernoulli"}, {"latent_dim": LATENT}, **modules())
    run = tmp_path / "run"
    trainer = TrainerConfig(epochs=2, eval_samples=20, progress=False)
    report = fit(vae, data, trainer, {"name": "trace"}, run, config={})
    config = (run / "config.yaml").read_text()
    assert "name: own" in config and "Sequential" not in config and "torch" not in config

    loaded, _, _, _ = load_run(run, **modules())  # fresh modules take the checkpoint's weights
    x = data.test.x[:5]
    torch.testing.assert_close(loaded.encoder.encode(x), vae.encoder.encode(x))
    result = evaluate_run(run, num_samples=20, progress=False, make_figures=True, bdmc=2,
                          bdmc_steps=(2,), ais=AISSettings(steps=5, chains=2, leapfrog=2), **modules())
    assert np.isfinite(result["iwae_ll"]) and (run / "figures" / "samples.png").stat().st_size > 0
    assert np.isfinite(result["ais"]["ll"]) and result["bdmc"]
    assert result["iwae_ll"] == pytest.approx(report["test_iwae_ll"], abs=5 * result["iwae_ll_se"] + 1)

    with pytest.raises(ConfigError, match="pass the same modules again"):
        load_run(run)
    assert main(["evaluate", str(run), "-K", "10", "--no-figures"]) == 2
    assert "net: own" in capsys.readouterr().err

    ckpt = checkpoints.load(run / "last.pt", resume=True)  # resume in Python by hand, for a third epoch
    ckpt["config"]["trainer"]["epochs"] = 3
    data, again = build_from_config(ckpt["config"], "cpu", **modules())
    fit(again, data, trainer_settings(ckpt["config"]), ckpt["config"]["objective"], run, ckpt["config"],
        resume=ckpt)
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2]


def test_an_own_network_run_resumes_from_python_and_the_command_line_says_how(rgb_file, tmp_path, capsys):
    data = load_arrays(path=str(rgb_file), batch_size=20)
    vae = build_vae(data.event_shape, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"latent_dim": LATENT}, **modules())
    run = tmp_path / "run"
    fit(vae, data, TrainerConfig(epochs=1, eval_samples=10, progress=False), {"name": "trace"}, run, config={})
    assert main(["train", f"resume={run}", "trainer.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "net: own" in err and f"pyro_mvae.resume_run('{run}', epochs=N, encoder=body, decoder=decoder)" in err
    assert "Traceback" not in err
    report = resume_run(run, epochs=2, **modules())  # the same modules again: a second epoch, then the evaluation
    assert report["epochs_run"] == 2 and (run / "eval.json").exists() and (run / "figures" / "samples.png").exists()
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]
