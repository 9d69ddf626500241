"""trainer.logger=mlflow: one MLflow run per run directory whose curves are metrics.jsonl's, continued
on resume without duplicates, one experiment per sweep, evaluate's section, the store's address."""

import json
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from pyro_mvae.cli import main  # noqa: E402
from pyro_mvae.tracking import mlflow_runs as tracking  # noqa: E402

QUICK = ["trainer.logger=mlflow", "trainer.eval_samples=20", "trainer.progress=false", "net.hidden=[32]",
         "net.latent_dim=4", "trainer.warmup_epochs=2"]


@pytest.fixture
def store(tmp_path, monkeypatch) -> MlflowClient:
    """A working directory of its own: the default store is its mlflow.db."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def runs_of(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_curve(client: MlflowClient, run_id: str, key: str, expected: list[tuple[int, float]]) -> None:
    """The metric's history in the store is ``expected``, (step, value) pairs: each step once."""
    got = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
    assert [step for step, _ in got] == [step for step, _ in expected]
    assert [value for _, value in got] == pytest.approx([value for _, value in expected])


def test_a_run_logs_its_config_curves_final_numbers_and_files(store, tmp_path):
    run_dir = tmp_path / "runs" / "a"
    args = [a for a in QUICK if not a.startswith("trainer.eval_samples")] + ["trainer.eval_samples=100"]  # for k̂
    args += ["prior=mixture", "trainer.epochs=3", "tags=[baseline,first]", "trainer.val_iwae_samples=20"]
    assert main(["train", *args, f"run_dir={run_dir}"]) == 0
    (run,) = runs_of(store, "pyro_mvae")
    assert run.info.status == "FINISHED"
    assert run.info.run_id == json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    assert run.data.params["prior.name"] == "mixture" and run.data.params["trainer.epochs"] == "3"
    metrics = lines(run_dir / "metrics.jsonl")
    assert all(m["val_elbo"] <= m["val_iwae"] + 1.0 for m in metrics)  # K = 20 against one sample, within noise
    for key in ("val_elbo", "train_elbo", "beta", "val_kl", "val_iwae"):  # the curves are the reference file's
        assert_curve(store, run.info.run_id, key, [(m["epoch"], m[key]) for m in metrics])
    seconds = [(t["epoch"], t["seconds"]) for t in lines(run_dir / "timings.jsonl")]
    assert_curve(store, run.info.run_id, "seconds", seconds)
    evaluation = json.loads((run_dir / "eval.json").read_text())
    for key in ("iwae_ll", "elbo", "khat_share_above_0.7", "active_units", "iwae_bits_per_dim", "cluster_accuracy"):
        assert run.data.metrics[f"final.{key}"] == pytest.approx(evaluation[key])
    assert run.data.metrics["test_iwae_ll"] == pytest.approx(json.loads((run_dir / "report.json").read_text())[
        "test_iwae_ll"])
    assert run.data.tags["pyro_mvae.version"] and run.data.tags["run_dir"] == str(run_dir.resolve())
    assert run.data.tags["tag.baseline"] == run.data.tags["tag.first"] == "true"
    assert json.loads((run_dir / "report.json").read_text())["tags"] == ["baseline", "first"]
    files = {a.path for a in store.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "report.json", "eval.json", "figures"} <= files
    assert "figures/samples.png" in {a.path for a in store.list_artifacts(run.info.run_id, "figures")}


def test_resume_continues_the_same_run_and_fills_what_a_kill_left_unlogged(store, tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "b"
    logged = tracking.MLflowLogger.epoch

    def lose_epoch_1(self, record, vae, data):  # as if killed between epoch 1's checkpoint and its logging
        if record["epoch"] != 1:
            logged(self, record, vae, data)

    monkeypatch.setattr(tracking.MLflowLogger, "epoch", lose_epoch_1)
    assert main(["train", *QUICK, "trainer.epochs=2", f"run_dir={run_dir}"]) == 0
    monkeypatch.setattr(tracking.MLflowLogger, "epoch", logged)
    assert main(["train", f"resume={run_dir}", "trainer.epochs=4"]) == 0
    (run,) = runs_of(store, "pyro_mvae")  # no second run
    expected = [(m["epoch"], m["val_elbo"]) for m in lines(run_dir / "metrics.jsonl")]
    assert len(expected) == 4
    assert_curve(store, run.info.run_id, "val_elbo", expected)
    assert run.info.status == "FINISHED"


def test_evaluate_adds_its_section_to_the_run(store, tmp_path):
    run_dir = tmp_path / "runs" / "c"
    assert main(["train", *QUICK, "trainer.epochs=1", "trainer.figures=false", f"run_dir={run_dir}"]) == 0
    assert main(["evaluate", str(run_dir), "-K", "30", "--split", "val", "--no-figures"]) == 0
    (run,) = runs_of(store, "pyro_mvae")
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["split"] == "val" and evaluation["K"] == 30
    assert run.data.metrics["evaluate.val.iwae_ll"] == pytest.approx(evaluation["iwae_ll"])
    assert "evaluate/eval.json" in {a.path for a in store.list_artifacts(run.info.run_id, "evaluate")}


def test_a_sweep_is_one_experiment_with_one_run_per_job_and_a_rerun_adds_none(store, tmp_path):
    sweep_dir = tmp_path / "multirun" / "grid"
    command = ["train", "-m", *QUICK, "trainer.epochs=1", "trainer.figures=false", "prior=standard,mixture",
               "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}"]  # side by side
    assert main(command) == 0
    runs = runs_of(store, str(sweep_dir.resolve()))
    assert sorted(r.data.params["prior.name"] for r in runs) == ["mixture", "standard"]
    assert all(r.info.status == "FINISHED" and "final.iwae_ll" in r.data.metrics for r in runs)
    returned = sorted(json.loads(p.read_text())["metric"]["value"] for p in sweep_dir.glob("*/job.json"))
    assert sorted(r.data.metrics["search.best_val_elbo"] for r in runs) == pytest.approx(returned)
    assert main(command) == 0  # every job finished: nothing trains, nothing is logged again
    assert len(runs_of(store, str(sweep_dir.resolve()))) == 2


def test_the_tracking_uri_and_experiment_name_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "my study")
    assert main(["train", *QUICK, "trainer.epochs=1", "trainer.figures=false", f"run_dir={tmp_path / 'd'}"]) == 0
    assert not (tmp_path / "mlflow.db").exists()
    assert len(runs_of(MlflowClient(uri), "my study")) == 1


def test_without_mlflow_the_run_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "mlflow.tracking", None)  # as if not installed
    assert main(["train", *QUICK, "trainer.epochs=1", f"run_dir={tmp_path / 'e'}"]) == 2
    assert 'pip install "pyro_mvae[tracking]"' in capsys.readouterr().err and not (tmp_path / "e").exists()


def test_a_sweeps_job_logs_where_its_sweep_recorded_whatever_its_working_directory(tmp_path, monkeypatch):
    """A launcher's reused worker may run in another directory (seen: joblib's loky workers kept the
    directory of an earlier sweep): the job reads the store and experiment from sweep.json."""
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    recorded = {"tracking_uri": f"sqlite:///{tmp_path / 'sweep.db'}", "experiment": "the sweep"}
    (sweep_dir / "sweep.json").write_text(json.dumps({"mlflow": recorded}))
    monkeypatch.chdir(tmp_path / "sweep")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.tracking_uri(sweep_dir / "job") == recorded["tracking_uri"]
    assert tracking.experiment_name(sweep_dir / "job") == "the sweep"
    assert tracking.tracking_uri(tmp_path / "alone") == "sqlite:///elsewhere.db"  # not a sweep's job
