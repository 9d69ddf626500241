"""MLflow tracking of runs and sweeps: ``trainer.logger=mlflow`` (``pip install "pyro_mvae[tracking]"``).

- **The store**: ``$MLFLOW_TRACKING_URI`` (a server, or any store MLflow takes), else the SQLite
  file ``mlflow.db`` of the working directory (MLflow's own default, made absolute): no server.
  A sweep resolves both once and records them in its ``sweep.json``, where its jobs read them.
  ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` shows it.
- **The experiment**: ``$MLFLOW_EXPERIMENT_NAME``, else the sweep directory for a job of a sweep
  (``pyro-mvae train -m``: one experiment per sweep, one MLflow run per job), else ``pyro_mvae``.
- **The run**: one MLflow run per run directory, its ids in ``RUN_DIR/mlflow.json``. A resumed run
  continues the same MLflow run (the epochs are logged after each checkpoint, and a resume logs
  those of ``metrics.jsonl`` the store lacks, so no epoch is missing or logged twice);
  ``pyro-mvae evaluate`` adds its numbers and figures to it.
- **What is logged**: the flattened configuration as parameters; tags (package version, git
  commit, device, run directory, the run's ``tags``); every number of each epoch's metrics record
  and its seconds, at step = epoch; at the end the report's and ``eval.json``'s numbers (IWAE,
  ELBO, k̂ share, active units, bits per dimension, clustering scores where present) and the run's
  files (``config.yaml``, ``report.json``, ``eval.json``, ``figures/``) as artifacts.

``metrics.jsonl`` stays the reference: MLflow mirrors it for watching a study.
"""

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock (jobs side by side there are not tested)
    fcntl = None

from pyro_mvae import __version__
from pyro_mvae.errors import ConfigError
from pyro_mvae.storage import write_json_atomic
from pyro_mvae.tracking.loggers import flat_hparams

RECORD = "mlflow.json"
"""The file of a run directory that holds its MLflow store, experiment and run ids."""
DEFAULT_EXPERIMENT = "pyro_mvae"
"""The experiment of a run outside a sweep when ``$MLFLOW_EXPERIMENT_NAME`` is not set."""
RUN_FILES = ("config.yaml", "report.json", "eval.json")
"""A run directory's files logged as artifacts at the end (with ``figures/``)."""


def client_class():
    """MLflow's ``MlflowClient``.

    Raises:
        ConfigError: without the mlflow package (the message says how to install it).
    """
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as err:
        raise ConfigError("trainer.logger=mlflow needs the mlflow package: pip install \"pyro_mvae[tracking]\" "
                          "(or trainer.logger=none)") from err
    return MlflowClient


def open_client(uri: str):
    """An ``MlflowClient`` of the store ``uri``, made while holding a lock file of that store: the
    client sets up an SQLite store's tables when it finds some missing (which ones depends on the
    MLflow modules a process imported), and two jobs of a sweep doing so at once collide in
    MLflow's migrations (seen: ``table _alembic_tmp_tags already exists``)."""
    cls = client_class()
    digest = hashlib.md5(uri.encode(), usedforsecurity=False).hexdigest()
    with open(Path(tempfile.gettempdir()) / f"pyro_mvae_mlflow_{digest}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        client = cls(uri)
        client.search_experiments(max_results=1)  # the store, set up now
    return client


def tracking_uri(run_dir: Path | None = None) -> str:
    """The store of a sweep's job as its sweep recorded it (``sweep.json``'s ``mlflow``: a launcher's
    worker may run in another working directory), else ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<working directory>/mlflow.db``."""
    recorded = _sweep_store(run_dir)
    if recorded:
        return recorded["tracking_uri"]
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def experiment_name(run_dir: Path) -> str:
    """The experiment of a sweep's job as its sweep recorded it, else ``$MLFLOW_EXPERIMENT_NAME``,
    else the sweep directory when ``run_dir`` is a sweep's job (its parent holds ``sweep.json``),
    else :data:`DEFAULT_EXPERIMENT`."""
    recorded = _sweep_store(run_dir)
    if recorded:
        return recorded["experiment"]
    if os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return os.environ["MLFLOW_EXPERIMENT_NAME"]
    parent = Path(run_dir).resolve().parent
    return str(parent) if (parent / "sweep.json").exists() else DEFAULT_EXPERIMENT


def _sweep_store(run_dir: Path | None) -> dict | None:
    """``{"tracking_uri", "experiment"}`` that the sweep holding ``run_dir`` recorded, if any."""
    record = None if run_dir is None else Path(run_dir).resolve().parent / "sweep.json"
    return json.loads(record.read_text()).get("mlflow") if record is not None and record.exists() else None


def experiment_id(client, name: str) -> str:
    """The id of experiment ``name`` in ``client``'s store, created when absent (by another
    process meanwhile too: then read again)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another job of the sweep created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def prepare(sweep_dir: Path) -> dict:
    """Create the store and the experiment of a sweep's jobs before they start side by side (two
    processes setting up one SQLite store at once can collide); returns what the sweep records
    (``sweep.json``'s ``mlflow``) so that every job, wherever its launcher runs it, logs there."""
    job = Path(sweep_dir) / "job"
    uri, name = tracking_uri(), experiment_name(job)
    experiment_id(open_client(uri), name)
    return {"tracking_uri": uri, "experiment": name}


def numbers(record: dict, prefix: str = "") -> dict[str, float]:
    """The finite int and float values of ``record``'s top level, keys prefixed (booleans and
    nested values left out)."""
    return {prefix + key: float(value) for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


class MLflowLogger:
    """The MLflow run of one run directory (see the module docstring): opened when the run
    starts, or reopened from ``RUN_DIR/mlflow.json`` (a resume continues it from ``first_epoch``;
    ``attach_only``: for ``evaluate``, its status left alone).

    Raises:
        ConfigError: without the mlflow package.
    """

    def __init__(self, run_dir: Path, images_every: int = 0, first_epoch: int = 0, config: dict | None = None,
                 attach_only: bool = False):
        self.run_dir, self.warned = Path(run_dir), False
        saved = self.run_dir / RECORD
        if saved.exists():
            ids = json.loads(saved.read_text())
            self.client, self.run_id = open_client(ids["tracking_uri"]), ids["run_id"]
            if not attach_only:
                self._call(self.client.update_run, self.run_id, status="RUNNING")
                self._backfill(first_epoch)
            return
        uri = tracking_uri(self.run_dir)
        self.client = open_client(uri)
        name = experiment_name(self.run_dir)
        run = self.client.create_run(experiment_id(self.client, name), run_name=self.run_dir.name,
                                     tags=run_tags(config or {}, self.run_dir))
        self.run_id = run.info.run_id
        write_json_atomic(saved, {"tracking_uri": uri, "experiment": name,
                                  "experiment_id": run.info.experiment_id, "run_id": self.run_id})
        self._log(params=flat_hparams(config or {}))

    def epoch(self, record: dict, vae, data) -> None:
        """Every number of one epoch's metrics record (with its ``seconds``) at step = epoch."""
        self._log(metrics=numbers({k: v for k, v in record.items() if k != "epoch"}), step=record["epoch"])

    def close(self, report: dict | None = None, hparams: dict | None = None) -> None:
        """At the end of training: the report's and ``eval.json``'s numbers, the run's files, and
        the run marked finished (``report`` None: stopped, marked killed)."""
        if report is None:
            self._call(self.client.set_terminated, self.run_id, "KILLED")
            return
        evaluation = self.run_dir / "eval.json"
        final = numbers(report) | (numbers(json.loads(evaluation.read_text()), "final.") if evaluation.exists() else {})
        self._log(metrics=final, step=report.get("epochs_run", 0))  # a resumed run's end: a later step
        log_files(self.client, self.run_id, self.run_dir)
        self._call(self.client.set_terminated, self.run_id, "FINISHED")

    def _backfill(self, first_epoch: int) -> None:
        """Log the epochs before ``first_epoch`` of ``metrics.jsonl`` that the store lacks (a
        session killed between its checkpoint and its logging)."""
        logged = {m.step for m in self.client.get_metric_history(self.run_id, "val_elbo")}
        path, timings = self.run_dir / "metrics.jsonl", self.run_dir / "timings.jsonl"
        seconds = {r["epoch"]: r["seconds"] for r in _lines(timings)}
        for record in _lines(path):
            if record["epoch"] < first_epoch and record["epoch"] not in logged:
                self.epoch(record | {"seconds": seconds.get(record["epoch"], float("nan"))}, None, None)

    def _log(self, metrics: dict | None = None, params: dict | None = None, step: int = 0) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        self._call(self.client.log_batch, self.run_id,
                   metrics=[Metric(k, v, now, step) for k, v in (metrics or {}).items()],
                   params=[Param(k, str(v)) for k, v in (params or {}).items()])

    def _call(self, method, *args, **kwargs) -> None:
        """A logging call; a store that fails is one warning and the run goes on (metrics.jsonl
        keeps every number)."""
        try:
            method(*args, **kwargs)
        except Exception as err:  # any store error: the run is worth more than its dashboard
            if not self.warned:
                print(f"warning: MLflow logging failed ({type(err).__name__}: {err}); training goes on, "
                      f"{self.run_dir / 'metrics.jsonl'} keeps the numbers", file=sys.stderr)
                self.warned = True


def run_tags(config: dict, run_dir: Path) -> dict[str, str]:
    """The MLflow tags of a run: package version, git commit, run directory, the config's
    ``tags`` (each ``tag.<name>``, and all of them as ``tags``)."""
    from pyro_mvae.tracking.provenance import git_commit

    tags = list(config.get("tags") or [])
    return {"pyro_mvae.version": __version__, "git_commit": str(git_commit()), "run_dir": str(run_dir.resolve()),
            "tags": ",".join(tags), **{f"tag.{t}": "true" for t in tags}}


def log_files(client, run_id: str, run_dir: Path, artifact_path: str | None = None) -> None:
    """The run's files (:data:`RUN_FILES` present) and ``figures/`` as artifacts of ``run_id``."""
    for name in RUN_FILES:
        if (run_dir / name).exists():
            client.log_artifact(run_id, str(run_dir / name), artifact_path)
    if (run_dir / "figures").is_dir():
        figures = f"{artifact_path}/figures" if artifact_path else "figures"
        client.log_artifacts(run_id, str(run_dir / "figures"), figures)


def log_evaluation(run_dir: Path, report: dict) -> bool:
    """Add a ``pyro-mvae evaluate`` of ``run_dir`` to its MLflow run, when it has one
    (``RUN_DIR/mlflow.json``): ``eval.json``'s numbers as ``evaluate.<split>.<key>`` and the files
    under ``evaluate/``. Returns whether it did (without mlflow installed: a warning, not an error,
    since the evaluation itself is written)."""
    logger = _attached(run_dir)
    if logger is None:
        return False
    logger._log(metrics=numbers(report, f"evaluate.{report['split']}."), step=report.get("epoch", 0))
    logger._call(log_files, logger.client, logger.run_id, Path(run_dir), "evaluate")
    return True


def log_numbers(run_dir: Path, metrics: dict[str, float], step: int = 0) -> bool:
    """Add ``metrics`` to the run's MLflow run, when it has one (a sweep job's ``search.<metric>``)."""
    logger = _attached(run_dir)
    if logger is not None:
        logger._log(metrics=numbers(metrics), step=step)
    return logger is not None


def log_figures(run_dir: Path) -> bool:
    """Add ``RUN_DIR/figures/`` (drawn after training) to the run's MLflow run, when it has one."""
    logger = _attached(run_dir)
    if logger is not None and (Path(run_dir) / "figures").is_dir():
        logger._call(logger.client.log_artifacts, logger.run_id, str(Path(run_dir) / "figures"), "figures")
    return logger is not None


def _attached(run_dir: Path) -> MLflowLogger | None:
    """The MLflow run of ``run_dir`` when it has one and mlflow is installed (else a warning)."""
    if not (Path(run_dir) / RECORD).exists():
        return None
    try:
        return MLflowLogger(run_dir, attach_only=True)
    except ConfigError as err:
        print(f"warning: {run_dir} has an MLflow run and {err}; nothing was logged to it", file=sys.stderr)
        return None


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
