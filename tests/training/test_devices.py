"""A run trained on a GPU is read back and evaluated on a CPU with the same weights (and the same
images), and its report names the device it trained on."""

import json

import pytest
import torch

from pyro_mvae.cli import main

QUICK = ["trainer.eval_samples=200", "trainer.progress=false", "trainer.figures=false", "net.hidden=[64]",
         "net.latent_dim=8", "seed=3", "prior=factorized_mixture", "guide=relaxed_mixture", "trainer.epochs=3"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_run_trained_on_cuda_evaluates_on_cpu_to_the_same_log_likelihood(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *QUICK, "device=cuda", f"run_dir={run}"]) == 0
    assert json.loads((run / "report.json").read_text())["environment"]["device"].startswith("cuda")
    on_gpu = json.loads((run / "eval.json").read_text())
    assert main(["evaluate", str(run), "--device", "cpu", "-K", "200", "--no-figures"]) == 0
    on_cpu = json.loads((run / "eval.json").read_text())
    assert on_cpu["n"] == on_gpu["n"] == 297  # every digits test image, binarised alike on both devices
    # independent draws of K = 200 particles on the same images and weights: the means over 297 images
    # agree to the estimators' own noise (~0.02 nats), far inside the spread over images (± 0.2)
    assert abs(on_cpu["iwae_ll"] - on_gpu["iwae_ll"]) < 0.1, (on_cpu["iwae_ll"], on_gpu["iwae_ll"])
