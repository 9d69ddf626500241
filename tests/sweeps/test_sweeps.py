"""`pyro-mvae train -m` on Hydra's launchers and sweepers (issue 22), on digits with tiny
networks: every job is an ordinary run, the same run `pyro-mvae train` makes with its overrides;
a bad grid is refused whole before anything is written; a stopped sweep resumes; a search
returns the metric each job's report holds."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pyro_mvae.cli import main

TINY = ["trainer.epochs=1", "trainer.eval_samples=10", "trainer.figures=false", "net.hidden=[16]",
        "net.latent_dim=4"]


def _sweep(sweep_dir: Path, *overrides: str) -> int:
    return main(["train", "-m", *overrides, *TINY, f"hydra.sweep.dir={sweep_dir}"])


def _record(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "sweep.json").read_text())


@pytest.fixture(scope="module")
def joblib_grid(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("joblib") / "grid"
    code = _sweep(sweep_dir, "prior=standard,mixture", "seed=0,1", "hydra/launcher=joblib",
                  "hydra.launcher.n_jobs=2")
    return code, sweep_dir


def test_a_grid_on_joblib_makes_one_ordinary_run_per_job(joblib_grid, tmp_path, capsys):
    code, sweep_dir = joblib_grid
    assert code == 0
    names = {"prior=standard,seed=0", "prior=standard,seed=1", "prior=mixture,seed=0", "prior=mixture,seed=1"}
    assert {p.name for p in sweep_dir.iterdir() if p.is_dir()} == names
    record = _record(sweep_dir)
    assert record["grid"] == {"prior": "standard,mixture", "seed": "0,1"}
    assert {job["dir"] for job in record["jobs"]} == names and {job["state"] for job in record["jobs"]} == {"done"}
    job = sweep_dir / "prior=mixture,seed=1"
    config = yaml.safe_load((job / "config.yaml").read_text())
    assert (config["prior"]["name"], config["seed"], config["trainer"]["threads"]) == ("mixture", 1, 1)
    # the same run by hand: the same numbers (one thread both, same seed)
    assert main(["train", "prior=mixture", "seed=1", *TINY, f"run_dir={tmp_path / 'by_hand'}"]) == 0
    by_hand = json.loads((tmp_path / "by_hand" / "report.json").read_text())
    in_sweep = json.loads((job / "report.json").read_text())
    assert in_sweep["test_iwae_ll"] == by_hand["test_iwae_ll"] and in_sweep["best_val_elbo"] == by_hand["best_val_elbo"]
    # and every command that takes a run directory takes it
    assert main(["evaluate", str(job), "-K", "10", "--no-figures"]) == 0
    assert main(["sample", str(job), "-n", "4"]) == 0 and (job / "samples.png").exists()


def test_compare_aggregates_seeds_as_computed_by_hand(joblib_grid, capsys):
    _, sweep_dir = joblib_grid
    capsys.readouterr()
    assert main(["compare", str(sweep_dir), "--baseline", "prior=standard", "--format", "csv"]) == 0
    rows = {row["label"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    per_image = {}
    for prior in ("standard", "mixture"):
        seeds = []
        for seed in (0, 1):
            with open(sweep_dir / f"prior={prior},seed={seed}" / "per_datapoint_test.csv") as f:
                seeds.append(np.array([float(r["iwae_10"]) for r in csv.DictReader(f)]))  # (N,)
        per_image[prior] = (seeds[0] + seeds[1]) / 2
        row = rows[f"prior={prior}"]
        assert row["seeds"] == "0,1"
        assert float(row["iwae"]) == pytest.approx(per_image[prior].mean(), abs=1e-9)
        images_se = per_image[prior].std(ddof=1) / np.sqrt(per_image[prior].size)
        assert float(row["iwae_se_images"]) == pytest.approx(images_se, abs=1e-9)
        seeds_se = np.std([s.mean() for s in seeds], ddof=1) / np.sqrt(2)
        assert float(row["iwae_se_seeds"]) == pytest.approx(seeds_se, abs=1e-9)
    diff = per_image["mixture"] - per_image["standard"]
    assert float(rows["prior=mixture"]["delta"]) == pytest.approx(diff.mean(), abs=1e-9)
    assert float(rows["prior=mixture"]["delta_se"]) == pytest.approx(diff.std(ddof=1) / np.sqrt(diff.size), abs=1e-9)
    assert rows["prior=standard"]["delta"] == ""
    assert main(["compare", str(sweep_dir), "--baseline", "prior=standard"]) == 0
    assert "Scored on digits, all 297 test images, K = 10; paired Δ against prior=standard" in capsys.readouterr().out


def test_compare_refuses_to_pair_runs_scored_on_other_images(joblib_grid, tmp_path, capsys):
    _, sweep_dir = joblib_grid
    assert main(["train", "prior=standard", *TINY, "trainer.eval_limit=50", f"run_dir={tmp_path / 'fewer'}"]) == 0
    capsys.readouterr()
    assert main(["compare", str(sweep_dir), str(tmp_path / "fewer")]) == 2
    assert "different images" in capsys.readouterr().err
    assert main(["compare", str(sweep_dir), str(tmp_path / "fewer"), "--limit", "60"]) == 2
    assert "scored on 50 images, fewer than --limit 60" in capsys.readouterr().err
    assert main(["compare", str(sweep_dir), str(tmp_path / "fewer"), "--limit", "50", "--format", "csv"]) == 0
    rows = {row["label"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    standard = [*sweep_dir.glob("prior=standard,*"), tmp_path / "fewer"]  # one row, its runs as seeds

    def first_50(run, key):
        with open(run / "per_datapoint_test.csv") as f:
            return np.mean([float(row[key]) for row, _ in zip(csv.DictReader(f), range(50))])
    for key, column in (("iwae_10", "iwae"), ("elbo", "elbo")):  # by hand from the per-image CSVs
        expected = np.mean([first_50(run, key) for run in standard])
        assert float(rows["prior=standard"][column]) == pytest.approx(expected, rel=1e-9)
    # once the run is also evaluated as the others were, compare finds that evaluation among the kept ones
    assert main(["evaluate", str(tmp_path / "fewer"), "-K", "10", "--no-figures"]) == 0
    assert main(["evaluate", str(tmp_path / "fewer"), "-K", "10", "--limit", "20", "--no-figures"]) == 0  # latest
    capsys.readouterr()
    assert main(["compare", str(sweep_dir), str(tmp_path / "fewer"), "--format", "csv"]) == 0
    rows = {row["label"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    kept = tmp_path / "fewer" / "evaluations" / "test-297-K10-iwae-seed0.csv"
    with open(kept) as f:
        fewer = np.mean([float(row["iwae_10"]) for row in csv.DictReader(f)])
    whole = [np.mean([float(r["iwae_10"]) for r in csv.DictReader(open(run / "per_datapoint_test.csv"))])
             for run in standard[:-1]]
    assert float(rows["prior=standard"]["iwae"]) == pytest.approx(np.mean([*whole, fewer]), rel=1e-9)


def test_submitit_local_runs_the_same_grid(tmp_path):
    sweep_dir = tmp_path / "grid"
    assert _sweep(sweep_dir, "prior=standard,mixture", "guide=gaussian,flow", "hydra/launcher=submitit_local") == 0
    assert {job["state"] for job in _record(sweep_dir)["jobs"]} == {"done"}
    assert len(list(sweep_dir.glob("*/report.json"))) == 4


def test_a_grid_with_one_bad_value_is_refused_whole(tmp_path, capsys):
    sweep_dir = tmp_path / "grid"
    assert _sweep(sweep_dir, "prior=standard,mixture", "trainer.lr=0.001,-1") == 2
    err = capsys.readouterr().err
    assert "2 of the 4 jobs of the grid cannot run; nothing was started" in err
    assert "prior=mixture trainer.lr=-1" in err and "trainer.lr must be" in err
    assert not sweep_dir.exists()


def test_invalid_pairings_are_refused_or_skipped_and_listed(tmp_path, capsys):
    grid = ["prior=standard,mixture", "guide=gaussian,marginal_mixture"]
    assert _sweep(tmp_path / "refused", *grid) == 2
    assert "skip_invalid=true" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    sweep_dir = tmp_path / "skipping"
    assert _sweep(sweep_dir, *grid, "skip_invalid=true") == 0
    record = _record(sweep_dir)
    assert [job["overrides"][:2] for job in record["skipped"]] == [["prior=standard", "guide=marginal_mixture"]]
    assert "has_components" in record["skipped"][0]["reason"]
    assert len(record["jobs"]) == 3 and {p.name for p in sweep_dir.iterdir() if p.is_dir()} == {
        "guide=gaussian,prior=standard", "guide=gaussian,prior=mixture", "guide=marginal_mixture,prior=mixture"}


def test_a_missing_plugin_names_the_extra(tmp_path, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "hydra_plugins.hydra_joblib_launcher" else find_spec(name, *a))
    assert _sweep(tmp_path / "grid", "seed=0,1", "hydra/launcher=joblib") == 2
    assert "pip install 'pyro_mvae[sweeps]'" in capsys.readouterr().err


def test_a_failed_job_does_not_stop_the_others(tmp_path, capsys):
    sweep_dir = tmp_path / "grid"  # lr = 1e30 makes the first step's loss non-finite
    assert _sweep(sweep_dir, "trainer.lr=0.001,1e30", "trainer.on_nonfinite=stop") == 1
    done, failed = _record(sweep_dir)["jobs"]
    assert done["state"] == "done" and done["dir"] == "trainer.lr=0.001"
    assert failed["state"] == "failed" and "Diverged" in failed["reason"] and "lr=1e" in failed["dir"]
    assert f"failed: {' '.join(failed['overrides'])}" in capsys.readouterr().out
    assert main(["compare", str(sweep_dir)]) == 0  # the evaluated job; the failed one is named
    out = capsys.readouterr().out
    assert f"(not evaluated yet, left out: {failed['dir']})" in out
    assert _sweep(sweep_dir, "trainer.lr=0.001,1e30", "trainer.on_nonfinite=stop") == 1  # retried, fails alike
    retried = _record(sweep_dir)["jobs"][1]
    assert retried["state"] == "failed" and "Diverged" in retried["reason"] and retried["time"] >= failed["time"]
    assert len([line for line in out.splitlines() if line.startswith("| ")]) == 2  # the header and one row


def test_a_stopped_sweep_resumes_when_run_again(tmp_path, capsys):
    sweep_dir = tmp_path / "grid"
    command = ["train", "-m", "seed=0,1", "trainer.epochs=15", *TINY[1:], f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen(["pyro-mvae", *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = sweep_dir / "seed=0"
    deadline = time.time() + 120
    while not (first / "metrics.jsonl").exists() or len((first / "metrics.jsonl").read_text().splitlines()) < 3:
        assert time.time() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    record = _record(sweep_dir)
    assert [job["state"] for job in record["jobs"]] == ["interrupted", "not started"]
    assert (first / "last.pt").exists() and not (first / "report.json").exists()
    assert main(command) == 0  # the same command: the first job resumes, the second starts
    resumed = json.loads((first / "environment.json").read_text())["resumed"]
    assert len(resumed) == 1 and resumed[0]["at_epoch"] >= 3
    assert [job["state"] for job in _record(sweep_dir)["jobs"]] == ["done", "done"]
    reports = {p: p.read_bytes() for p in sweep_dir.glob("*/report.json")}
    capsys.readouterr()
    assert main(command) == 0  # once more: nothing is trained again
    assert capsys.readouterr().out.count("finished in an earlier launch") == 2
    assert {p: p.read_bytes() for p in sweep_dir.glob("*/report.json")} == reports


def test_an_optuna_search_maximises_the_metric_the_jobs_report(tmp_path, capsys):
    sweep_dir = tmp_path / "search"
    search = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=0",
              "trainer.lr=tag(log,interval(1e-4,1e-2))", "prior.components=choice(2,3)"]
    assert _sweep(sweep_dir, *search) == 0
    record = _record(sweep_dir)
    assert record["kind"] == "search" and len(record["jobs"]) == 3
    values = {}
    for job in record["jobs"]:
        report = json.loads((sweep_dir / job["dir"] / "report.json").read_text())
        assert job["metric"] == {"name": "best_val_elbo", "value": report["best_val_elbo"]}
        values[job["dir"]] = report["best_val_elbo"]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(values.values()) == record["best"]["metric"]["value"]
    assert record["best"]["dir"] == max(values, key=values.get)
    capsys.readouterr()
    assert _sweep(sweep_dir, *search) == 0  # the same seed draws the same trials: nothing trains again
    assert capsys.readouterr().out.count("finished in an earlier launch") == 3


def test_a_search_refuses_to_minimise_and_checks_its_range(tmp_path, capsys):
    search = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "trainer.lr=interval(1e-4,1e-2)"]
    assert _sweep(tmp_path / "a", *search, "hydra.sweeper.direction=minimize") == 2
    assert "maximise" in capsys.readouterr().err
    assert _sweep(tmp_path / "b", *search, "prior.components=choice(3,0)") == 2
    assert "prior.components=0" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_the_val_iwae_metric_is_an_iwae_estimate_above_the_elbo(tmp_path):
    sweep_dir = tmp_path / "grid"
    assert _sweep(sweep_dir, "seed=0,1", "search_metric=val_iwae", "trainer.eval_samples=200") == 0
    for job in _record(sweep_dir)["jobs"]:
        report = json.loads((sweep_dir / job["dir"] / "report.json").read_text())
        assert job["metric"]["name"] == "val_iwae" and job["metric"]["value"] > report["best_val_elbo"]


def test_jobs_paused_at_max_time_continue_with_the_same_command(tmp_path, capsys, monkeypatch):
    """A job that reaches trainer.max_time is recorded ``paused`` while the others go on; the sweep
    exits 3, and the same command continues the paused job from its last.pt (a cluster's requeue
    does the same). The clock advances 0.05 s per read (twice a step): 1 s is ten steps."""
    import itertools
    from types import SimpleNamespace

    from pyro_mvae.training import train
    ticks = itertools.count()
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=time.perf_counter,
                                                       monotonic=lambda: 0.05 * next(ticks)))
    sweep_dir = tmp_path / "grid"
    command = ["train", "-m", "trainer.max_time=1s", "trainer.epochs=1,2", "data.batch_size=100", *TINY[1:],
               f"hydra.sweep.dir={sweep_dir}"]  # 12 steps an epoch
    assert main(command) == 3
    record = _record(sweep_dir)
    assert [job["state"] for job in record["jobs"]] == ["paused", "paused"]
    assert "reached trainer.max_time=1s" in record["jobs"][0]["reason"]
    assert "run the same command again to continue them" in capsys.readouterr().err
    for _ in range(5):
        if main(command) == 0:
            break
    assert [job["state"] for job in _record(sweep_dir)["jobs"]] == ["done", "done"]
    assert json.loads((sweep_dir / "trainer.epochs=2" / "report.json").read_text())["epochs_run"] == 2
