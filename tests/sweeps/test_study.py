"""Optuna searches whose study lives in SQLite (hydra.sweeper.storage): the same command continues
it, a larger n_trials extends it with new points, compare lists its trials, two processes share it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
import optuna  # noqa: E402

from pyro_mvae.cli import main  # noqa: E402

TINY = ["trainer.epochs=1", "trainer.eval_samples=10", "trainer.figures=false", "net.hidden=[16]",
        "net.latent_dim=4", "trainer.progress=false"]
SEARCH = ["hydra/sweeper=optuna", "hydra.sweeper.sampler.seed=0", "hydra.sweeper.study_name=tiny",
          "trainer.lr=tag(log,interval(1e-4,1e-2))", "prior.components=choice(2,3)"]


def storage(path: Path) -> str:
    return f"sqlite:///{path}"


def trials(path: Path, name: str = "tiny") -> list:
    return optuna.load_study(study_name=name, storage=storage(path)).get_trials()


def search(sweep_dir: Path, db: Path, n_trials: int) -> list[str]:
    return ["train", "-m", *SEARCH, *TINY, f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.storage={storage(db)}",
            f"hydra.sweep.dir={sweep_dir}"]


def test_the_same_command_continues_the_study_and_more_trials_extend_it(tmp_path, capsys):
    sweep_dir, db = tmp_path / "search", tmp_path / "study.db"
    assert main(search(sweep_dir, db, 2)) == 0
    first = trials(db)
    assert [t.state for t in first] == [optuna.trial.TrialState.COMPLETE] * 2
    capsys.readouterr()
    assert main(search(sweep_dir, db, 2)) == 0  # the study has its trials: nothing is drawn or trained
    assert "has its 2 trials" in capsys.readouterr().out and len(trials(db)) == 2
    assert main(search(sweep_dir, db, 3)) == 0  # one more, at a new point (the sampler reseeded)
    third = trials(db)
    assert len(third) == 3 and third[2].params not in [t.params for t in first]
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert len(record["jobs"]) == 3 and record["study"] == {"name": "tiny", "storage": storage(db), "n_trials": 3}
    best = max(third, key=lambda t: t.value)
    assert record["best"]["metric"]["value"] == pytest.approx(best.value)  # the study's best is the sweep's
    capsys.readouterr()
    assert main(["compare", str(sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Optuna study 'tiny' in {storage(db)}: 3 trials, 3 complete; best: trial {best.number}" in out
    assert out.count("| complete |") == 3


def test_two_processes_share_one_study(tmp_path):
    db = tmp_path / "shared.db"
    assert main(search(tmp_path / "first", db, 1)) == 0  # the study and its tables exist before both start
    launches = [subprocess.Popen([sys.executable, "-m", "pyro_mvae.cli", *search(tmp_path / name, db, 3)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for name in ("machine_a", "machine_b")]
    outputs = [launch.communicate(timeout=300)[0] for launch in launches]
    assert [launch.returncode for launch in launches] == [0, 0], outputs
    shared = trials(db)
    assert len(shared) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in shared)  # 1 + 2 + 2
    for name in ("machine_a", "machine_b"):  # each ran the 2 trials the study lacked when it started
        assert len(json.loads((tmp_path / name / "sweep.json").read_text())["jobs"]) == 2


def test_a_stopped_search_continues_its_unfinished_trial_where_it_stopped(tmp_path, capsys):
    sweep_dir, db = tmp_path / "search", tmp_path / "study.db"
    command = [a for a in search(sweep_dir, db, 2) if a != "trainer.epochs=1"] + ["trainer.epochs=20"]
    process = subprocess.Popen([sys.executable, "-m", "pyro_mvae.cli", *command], start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 90
    while not any(len(p.read_text().splitlines()) >= 2 for p in sweep_dir.glob("*/metrics.jsonl")):
        assert time.time() < deadline and process.poll() is None, process.communicate()[0]
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGTERM)  # stops the first trial mid-training
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    (stopped,) = [p.parent for p in sweep_dir.glob("*/last.pt")]
    assert not (stopped / "report.json").exists()
    epochs_before = len((stopped / "metrics.jsonl").read_text().splitlines())
    capsys.readouterr()
    assert main(command) == 0  # the same command: that trial resumes in its directory, then the second
    assert "2 trials to run of 2, 1 of them resumed" in capsys.readouterr().out
    metrics = [json.loads(line) for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(20)) and epochs_before < 20  # continued, not restarted
    complete = [t for t in trials(db) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2 and len(list(sweep_dir.glob("*/report.json"))) == 2
