"""Long runs survive: resume equals uninterrupted, SIGINT / SIGKILL, divergence, crafted checkpoints."""

import dataclasses
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyro_mvae.cli import main
from pyro_mvae.data import load_digits
from pyro_mvae.data.splits import Split
from pyro_mvae.errors import Diverged, RunError
from pyro_mvae.infer.compiled import toolchain_problem
from pyro_mvae.models.registry import build_vae
from pyro_mvae.training.checkpoints import load as read_checkpoint
from pyro_mvae.training.train import TrainerConfig, fit

QUICK = ["trainer.eval_samples=30", "trainer.progress=false", "trainer.figures=false", "trainer.warmup_epochs=2",
         "net.hidden=[32]", "net.latent_dim=4", "seed=3"]
MODELS = {
    "standard": ["prior=standard", "guide=gaussian"],
    "relaxed": ["prior=factorized_mixture", "guide=relaxed_mixture", "trainer.tau_update=step",
                "trainer.tau_anneal_epochs=3"],
    "decaying_average": ["prior=mixture", "guide=discrete_mixture", "guide.baseline=decaying_average",
                         "objective=tracegraph"],
    "marginal": ["prior=factorized_mixture", "guide=marginal_mixture"],
    "gumbel_rao": ["prior=mixture", "guide=relaxed_mixture", "guide.estimator=gumbel_rao"],
    "gmm_init": ["prior=mixture", "guide=gaussian", "trainer.gmm_init_epoch=2"],  # the fit at the resume point
    "semi_supervised": ["prior=mixture", "guide=relaxed_mixture", "data.labelled=50"],  # labelled batches too
}


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical parameters, optimiser moments and metrics."""
    for name in ("last.pt", "best.pt"):
        ca, cb = (torch.load(d / name, weights_only=True) for d in (a, b))
        for key, value in ca["model"].items():
            assert torch.equal(value, cb["model"][key]), (name, key)
        for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize("model", MODELS)
def test_stop_and_resume_equals_uninterrupted(tmp_path, model, device):
    whole, split = tmp_path / "whole", tmp_path / "split"
    run = [*QUICK, *MODELS[model], f"device={device.type}"]
    assert main(["train", *run, "trainer.epochs=4", f"run_dir={whole}"]) == 0
    assert main(["train", *run, "trainer.epochs=2", f"run_dir={split}"]) == 0
    assert main(["train", f"resume={split}", "trainer.epochs=4"]) == 0
    assert_same_run(whole, split)


NO_COMPILER = toolchain_problem()


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor needs a C++ compiler: {NO_COMPILER}")
def test_stop_and_resume_compiled_equals_uninterrupted(tmp_path):  # training's networks and evaluation
    whole, split = tmp_path / "whole", tmp_path / "split"
    compiled = [*QUICK, *MODELS["standard"], "trainer.compile=true", "trainer.eval_samples=300"]
    assert main(["train", *compiled, "trainer.epochs=3", f"run_dir={whole}"]) == 0
    assert main(["train", *compiled, "trainer.epochs=1", f"run_dir={split}"]) == 0
    assert main(["train", f"resume={split}", "trainer.epochs=3"]) == 0
    assert_same_run(whole, split)
    reports = [json.loads((run / "eval.json").read_text()) for run in (whole, split)]
    assert all(report["compiled"] for report in reports)  # the final evaluation ran compiled
    assert all(json.loads((run / "report.json").read_text())["compiled_training"] for run in (whole, split))
    assert reports[0]["iwae_ll"] == reports[1]["iwae_ll"]  # same weights, same draws: the same estimate


def _train_in_subprocess(run_dir: Path, epochs: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "pyro_mvae.cli", "train", *QUICK, *MODELS["relaxed"],
               f"trainer.epochs={epochs}", f"run_dir={run_dir}", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigint_mid_epoch_leaves_a_run_that_resumes_to_the_uninterrupted_result(tmp_path):
    run = tmp_path / "interrupted"
    proc = _train_in_subprocess(run, epochs=30)
    _wait_for(run / "last.pt", proc)  # a state, not a time: the handler is in place and epoch 0 done
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "resume=" in err and "Traceback" not in err
    stopped = read_checkpoint(run / "last.pt", resume=True)["progress"]
    assert 1 <= stopped["epoch"] < 30 and stopped["batch"] >= 1, stopped  # mid-epoch, after a step
    epochs = stopped["epoch"] + 2  # finish the interrupted epoch and one more
    assert main(["train", f"resume={run}", f"trainer.epochs={epochs}"]) == 0
    whole = tmp_path / "whole"
    assert main(["train", *QUICK, *MODELS["relaxed"], f"trainer.epochs={epochs}", f"run_dir={whole}"]) == 0
    assert_same_run(whole, run)


def _metric_lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_the_final_evaluation_stops_cleanly_and_resume_evaluates(tmp_path, signum):
    run = tmp_path / "run"
    proc = _train_in_subprocess(run, 2, "trainer.eval_samples=100000", "trainer.eval_chunk_size=100")
    deadline = time.monotonic() + 300
    while _metric_lines(run) < 2:  # a state: both epochs written, the evaluation under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signum and "Traceback" not in err, err
    assert "final evaluation" in err and f"resume={run}" in err  # wherever after the last step it landed
    assert not (run / "report.json").exists() and _metric_lines(run) == 2
    assert main(["train", f"resume={run}", "trainer.eval_samples=20", "trainer.eval_limit=30"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert (report["K"], report["n_test"], report["epochs_run"]) == (20, 30, 2)
    assert _metric_lines(run) == 2  # straight to the evaluation: no epoch trained again


def test_sigkill_at_random_moments_always_leaves_loadable_checkpoints(tmp_path):
    rng = random.Random(0)
    for attempt in range(4):
        run = tmp_path / f"killed{attempt}"
        proc = _train_in_subprocess(run, epochs=50)
        # odd attempts start their clock after the first checkpoint, so that a loaded machine
        # (a slow first epoch) still has kills that land mid-run with a checkpoint to resume
        _wait_for(run / ("last.pt" if attempt % 2 else "config.yaml"), proc)
        time.sleep(rng.uniform(0.5, 4.0))
        proc.kill()
        proc.communicate()
        for name in ("last.pt", "best.pt"):
            if (run / name).exists():  # absent only when killed during the first epoch
                read_checkpoint(run / name, resume=name == "last.pt")
        if (run / "metrics.jsonl").exists():  # whole lines only, one per finished epoch
            lines = (run / "metrics.jsonl").read_text().splitlines()
            assert [json.loads(line)["epoch"] for line in lines] == list(range(len(lines)))
    resumable = [p for p in tmp_path.iterdir() if (p / "last.pt").exists()]
    assert resumable, "no kill landed after the first epoch: lengthen the waits"
    epochs = read_checkpoint(resumable[0] / "last.pt", resume=True)["progress"]["epoch"] + 1
    assert main(["train", f"resume={resumable[0]}", f"trainer.epochs={epochs}"]) == 0


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor needs a C++ compiler: {NO_COMPILER}")
def test_sigkill_in_a_compiled_final_evaluation_leaves_a_run_that_resumes_and_evaluates(tmp_path):
    run = tmp_path / "run"
    proc = _train_in_subprocess(run, 2, "trainer.compile=true", "trainer.eval_samples=100000")
    deadline = time.monotonic() + 300
    while _metric_lines(run) < 2:  # both epochs written: compiling or evaluating
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(random.Random(1).uniform(0.5, 6.0))  # into the compilation or the compiled chunks
    proc.kill()
    proc.communicate()
    read_checkpoint(run / "last.pt", resume=True)
    assert not (run / "eval.json").exists()  # the evaluation never finished: no eval.json, not half of one
    assert main(["train", f"resume={run}", "trainer.eval_samples=50", "trainer.eval_limit=40"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["compiled"] and report["K"] == 50 and report["n"] == 40


class CorruptedSplit(Split):
    """A training split whose batch number ``bad`` (of every epoch) holds NaNs: a planted fault."""

    bad = 7

    def batches(self, *args, **kwargs):
        for i, xb in enumerate(super().batches(*args, **kwargs)):
            yield xb * float("nan") if i == self.bad and len(xb) < len(self) else xb


def _corrupted_digits():
    data = load_digits()
    return dataclasses.replace(data, train=CorruptedSplit(**vars(data.train)))


def _small_vae():
    torch.manual_seed(0)
    return build_vae((1, 8, 8), {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                     {"name": "mlp", "hidden": [32], "latent_dim": 4})


def test_a_planted_nan_stops_the_run_at_its_step_naming_the_site(tmp_path):
    trainer = TrainerConfig(epochs=2, batch_size=20, eval_samples=30, progress=False)
    with pytest.raises(Diverged) as caught:
        fit(_small_vae(), _corrupted_digits(), trainer, {"name": "trace"}, tmp_path / "run", {})
    message = str(caught.value)
    assert "step 7 (epoch 0, batch 7" in message and "site 'x'" in message
    assert "Last good checkpoint: none yet" in message and "on_nonfinite=skip" in message


def test_skipping_non_finite_steps_counts_them(tmp_path):
    trainer = TrainerConfig(epochs=2, batch_size=20, eval_samples=30, progress=False, on_nonfinite="skip")
    vae = _small_vae()
    report = fit(vae, _corrupted_digits(), trainer, {"name": "trace"}, tmp_path / "run", {})
    assert report["skipped_steps"] == 2  # one corrupted batch per epoch
    assert all(torch.isfinite(p).all() for p in vae.parameters())


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/pyro_mvae_unpickle_marker")


def test_a_checkpoint_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / "best.pt"
    torch.save({"model": _RunsCode()}, path)  # torch.save pickles the object's __reduce__
    with pytest.raises(RunError, match="corrupted or not a pyro_mvae checkpoint"):
        read_checkpoint(path)
    assert not MARKER.exists()
    with open(path, "wb") as f:  # a bare pickle, not even a torch archive
        pickle.dump(_RunsCode(), f)
    with pytest.raises(RunError):
        read_checkpoint(path)
    assert not MARKER.exists()


def test_checkpoints_of_another_version_or_with_missing_keys_are_refused(tmp_path):
    assert main(["train", *QUICK, "trainer.epochs=1", f"run_dir={tmp_path / 'run'}"]) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    torch.save(ckpt | {"version": "7.0.0"}, tmp_path / "other.pt")
    with pytest.raises(RunError, match="written by pyro_mvae 7.0.0"):
        read_checkpoint(tmp_path / "other.pt")
    torch.save({k: v for k, v in ckpt.items() if k != "rng"}, tmp_path / "partial.pt")
    with pytest.raises(RunError, match=r"lacks \['rng'\]"):
        read_checkpoint(tmp_path / "partial.pt", resume=True)


def test_resume_refuses_other_settings_and_finished_runs(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *QUICK, "trainer.epochs=1", f"run_dir={run}"]) == 0
    assert main(["train", f"resume={run}", "trainer.lr=0.1"]) == 2
    assert "only trainer.epochs, trainer.progress, trainer.threads, trainer.eval_limit" in capsys.readouterr().err
    assert main(["train", f"resume={run}"]) == 2
    assert "has finished its 1 epochs" in capsys.readouterr().err
    assert main(["train", f"resume={tmp_path / 'nowhere'}"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    early = tmp_path / "early"  # frozen parameters: the validation ELBO moves by noise only, and
    # 12 records in a row (probability 1/12!) are needed to escape patience 1
    assert main(["train", *QUICK, "trainer.epochs=12", "trainer.patience=1", "trainer.lr=1e-12",
                 "trainer.warmup_epochs=0", f"run_dir={early}"]) == 0
    assert main(["train", f"resume={early}", "trainer.epochs=20"]) == 2
    assert "stopped early" in capsys.readouterr().err


def test_the_stop_message_starts_a_line_of_its_own_after_the_progress_bar(tmp_path):
    run = tmp_path / "barred"
    quick = [a for a in QUICK if not a.startswith("trainer.progress")]
    command = [sys.executable, "-m", "pyro_mvae.cli", "train", *quick, *MODELS["relaxed"], "trainer.epochs=30",
               "trainer.progress=true", f"run_dir={run}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(run / "last.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130
    assert "step/s" in err  # the bar was drawn
    assert "\npyro-mvae: stopped by signal 2" in err, err[-300:]
