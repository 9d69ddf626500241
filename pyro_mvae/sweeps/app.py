"""``pyro-mvae train -m``: many runs on Hydra's multirun, its launchers and its sweepers.

The command checks every job first (:mod:`pyro_mvae.sweeps.grid`), writes the sweep's record,
then hands the overrides to Hydra's own ``--multirun``: the launcher (``hydra/launcher=basic``,
``joblib``, ``submitit_local``, ``submitit_slurm``) runs :func:`run_job` once per job, the sweeper
(basic grid, ``optuna``) decides the jobs. Each job is an ordinary run directory
``hydra.sweep.dir/<its overrides>``; running the same command again skips the jobs that
finished, resumes those that stopped and starts the rest. SIGINT or SIGTERM to this process stops
the jobs the launcher runs elsewhere on this machine (:mod:`pyro_mvae.sweeps.stop`).
"""

import json
import os
import re
import shlex
import shutil
import signal
import sys
import threading
from pathlib import Path

import hydra
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from pyro_mvae.compose import check_config, compose_config, register_configs, resolve_objective
from pyro_mvae.errors import ConfigError, Interrupted, JobsFailed, PairingError, TimeLimitReached
from pyro_mvae.infer.iwae import iwae_log_likelihood
from pyro_mvae.runs import load_run, resolve_device
from pyro_mvae.session import resumed_config, train_rank
from pyro_mvae.storage import write_json_atomic
from pyro_mvae.sweeps import study
from pyro_mvae.sweeps.grid import check_jobs, plan
from pyro_mvae.sweeps.record import finish_record, start_record, stopped_by, summary, write_job_state
from pyro_mvae.sweeps.stop import stop_jobs_on_signals
from pyro_mvae.tracking import mlflow_runs as tracking
from pyro_mvae.training.checkpoints import holds_run
from pyro_mvae.training.distributed import SINGLE
from pyro_mvae.training.signals import interrupt_on_stop_signals

_SWEEP_PROCESS: int | None = None
"""The id of the process running :func:`multirun`; a job in another process runs in a launcher's
worker (joblib's loky processes, submitit's job processes)."""


def multirun(overrides: list[str]) -> dict:
    """Run the sweep ``overrides`` describe; returns its record (``sweep.json``).

    Raises:
        ConfigError: a job that cannot run (every such job named; nothing is written), a missing
            plugin, or a search told to minimise.
        JobsFailed: when the launcher returns with jobs failed or not run (the record says which).
        Interrupted: SIGINT or SIGTERM to this process or to a job (the sweep stops; the record
            says where).
        TimeLimitReached: every job is done or ``paused`` at ``trainer.max_time``, some paused.
    """
    global _SWEEP_PROCESS
    _SWEEP_PROCESS = os.getpid()
    if not any(o.startswith("trainer.progress=") for o in overrides):
        overrides = [*overrides, "trainer.progress=false"]  # side-by-side jobs share a terminal
    sweep = plan(overrides)
    skipped = check_jobs(sweep)
    sweep_dir = _sweep_dir(sweep)
    launch = [*overrides, f"hydra.sweep.dir={_quoted(sweep_dir)}", *_naming(sweep, overrides),
              *_search_settings(sweep, overrides)]
    command = shlex.join(["pyro-mvae", "train", "-m", *overrides])
    record = start_record(sweep_dir, command, sweep.grid, sweep.jobs, skipped, sweep.search)
    if compose_config(sweep.jobs[0])["trainer"]["logger"] == "mlflow":  # one experiment, made before the jobs
        record["mlflow"] = tracking.prepare(sweep_dir)
        write_json_atomic(sweep_dir / "sweep.json", record)  # where the jobs read the store and experiment
        print(f"sweep: MLflow experiment {record['mlflow']['experiment']!r} in {record['mlflow']['tracking_uri']}")
    trials = sweep.hydra["sweeper"].get("n_trials", "?")
    jobs = f"a search of {trials} trials" if sweep.search else f"{len(record['jobs'])} jobs"
    print(f"sweep: {jobs} in {sweep_dir}" + (f" ({len(skipped)} skipped)" if skipped else ""), flush=True)
    if trials_left := _continued_study(sweep, sweep_dir, record):
        launch = [o for o in launch if o.split("=", 1)[0] not in {t.split("=", 1)[0] for t in trials_left}] \
            + trials_left
    hydra_code = 0
    with stop_jobs_on_signals(sweep_dir, record, sweep.hydra["launcher"]["_target_"]) as stop:
        if not any(o == "hydra.sweeper.n_trials=0" for o in launch):
            hydra_code = _launch(launch)  # left where it stands when stopped by a signal
    record = finish_record(sweep_dir, record, sweep.varying_keys())
    text, complete = summary(record)
    print(text)
    if stop or hydra_code > 128:
        raise Interrupted(stop.signum or hydra_code - 128, f"the sweep was stopped; its record is "
                          f"{sweep_dir / 'sweep.json'}; run the same command again to resume it")
    if not complete and not hydra_code and all(job["state"] in ("done", "paused") for job in record["jobs"]):
        raise TimeLimitReached(f"jobs of the sweep reached trainer.max_time; its record is {sweep_dir / 'sweep.json'}; "
                               "run the same command again to continue them")
    if not complete or hydra_code:
        raise JobsFailed(f"not every job of the sweep is done; its record is {sweep_dir / 'sweep.json'}; "
                         "run the same command again to resume the stopped jobs and retry the failed ones")
    return record


def _continued_study(sweep, sweep_dir: Path, record: dict) -> list[str]:
    """For a search whose study has a storage (:mod:`pyro_mvae.sweeps.study`): record the study,
    and launch only the trials it still lacks (``hydra.sweeper.n_trials``), those this sweep left
    unfinished first."""
    sweeper = sweep.hydra["sweeper"]
    if not sweep.search or not sweeper.get("storage"):
        return []
    name, n_trials = sweeper.get("study_name"), int(sweeper["n_trials"])
    storage = str(_resolved(sweep, "hydra.sweeper.storage", sweep_dir))
    if not name:
        raise ConfigError("a search with hydra.sweeper.storage needs hydra.sweeper.study_name: the study to "
                          "continue (e.g. hydra.sweeper.study_name=my_search)")
    record["study"] = {"name": name, "storage": storage, "n_trials": n_trials}
    remaining, resumed, held = study.continue_study(storage, name, n_trials, sweep_dir)
    note = (f"the study {name!r} has its {n_trials} trials: raise hydra.sweeper.n_trials to run more"
            if remaining == 0 else f"{remaining} trials to run of {n_trials}, {resumed} of them resumed")
    print(f"sweep: Optuna study {name!r} in {storage}: {note}", flush=True)
    seed = (sweeper.get("sampler") or {}).get("seed")
    reseed = [f"hydra.sweeper.sampler.seed={int(seed) + held}"] if held and seed is not None else []
    return [f"hydra.sweeper.n_trials={remaining}", *reseed]


def _sweep_dir(sweep) -> Path:
    """``hydra.sweep.dir`` resolved once here, so that the record and the jobs share it."""
    return Path(_resolved(sweep, "hydra.sweep.dir"))


def _resolved(sweep, key: str, sweep_dir: Path | None = None):
    """The value of the Hydra setting ``key`` (``hydra.sweep.dir``, ``hydra.sweeper.storage``) in the
    sweep's composed config, its interpolations resolved (against ``sweep_dir`` when given)."""
    register_configs()
    given = [] if sweep_dir is None else [f"hydra.sweep.dir={_quoted(sweep_dir)}"]
    with initialize_config_module(config_module="pyro_mvae.conf", version_base=None):
        config = compose(config_name="config", overrides=sweep.jobs[0] + sweep.hydra_overrides + given,
                         return_hydra_config=True)
        return OmegaConf.select(config, key)


def _quoted(path: Path) -> str:
    text = str(path)
    return text if re.fullmatch(r"[\w./-]+", text) else "'" + text.replace("'", "\\'") + "'"


def _naming(sweep, overrides: list[str]) -> list[str]:
    """Name each job's directory by the overrides that vary (Hydra's ``override_dirname`` with
    the constant keys excluded); a sweep of one job writes into ``run``."""
    if any(o.startswith(("hydra.sweep.subdir=", "hydra.job.config.override_dirname.")) for o in overrides):
        return []
    if not sweep.grid:
        return ["hydra.sweep.subdir=run"]
    constant = sorted({o.split("=", 1)[0].lstrip("+~") for o in sweep.jobs[0]} - set(sweep.grid))
    return [f"hydra.job.config.override_dirname.exclude_keys=[{','.join(repr(k) for k in constant)}]"]


def _search_settings(sweep, overrides: list[str]) -> list[str]:
    """A search maximises the job's ``search_metric`` and goes on past failed trials."""
    if not sweep.search:
        return []
    given = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}
    if given.get("hydra.sweeper.direction", "maximize") != "maximize":
        raise ConfigError("every job returns its search_metric, higher is better: the search must "
                          "maximise it; drop hydra.sweeper.direction or set it to maximize")
    extra = [] if "hydra.sweeper.direction" in given else ["hydra.sweeper.direction=maximize"]
    return extra + ([] if "hydra.sweeper.max_failure_rate" in given else ["hydra.sweeper.max_failure_rate=1.0"])


@hydra.main(config_path="pkg://pyro_mvae.conf", config_name="config", version_base=None)
def _hydra_main(config) -> float | None:
    return run_job(config)


def _launch(overrides: list[str]) -> int:
    """Hydra's ``--multirun`` with these overrides; its exit code (1 when a job raised, 128 + the
    signal when one was stopped by a signal)."""
    register_configs()
    argv, sys.argv = sys.argv, ["pyro-mvae", "--multirun", *overrides]
    try:
        _hydra_main()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = argv
    return 0


def run_job(config) -> float | None:
    """One job of a sweep, run by the launcher in its own directory: train it (or resume it from
    ``last.pt``, or read the report of an earlier launch) and return its ``search_metric``.

    A job whose pairing is refused returns None and leaves no directory when ``skip_invalid``
    is set. A failed job records the reason in its ``job.json`` and re-raises, for the launcher;
    a job stopped by SIGINT or SIGTERM (``last.pt`` written if it was training), or started
    after the sweep was stopped, stops the sweep with exit code 128 + the signal.
    """
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    config = OmegaConf.to_container(config, resolve=True)
    if (job_dir / "report.json").exists():  # finished in an earlier launch of the sweep
        print(f"{job_dir.name}: finished in an earlier launch (report.json), not trained again", flush=True)
        return _finish(job_dir, overrides, config, json.loads((job_dir / "report.json").read_text()))
    sweep_dir = Path(HydraConfig.get().sweep.dir)
    try:
        with interrupt_on_stop_signals(f"stopped outside its training loop; the same command resumes {job_dir}"):
            write_job_state(job_dir, overrides, "running", pid=os.getpid())  # the pid: for stop.py
            if signum := stopped_by(sweep_dir):  # the sweep was stopped while this job was handed out
                raise Interrupted(signum, f"not started: the sweep was stopped by signal {signum}")
            return _finish(job_dir, overrides, config, _train(config, job_dir))
    except TimeLimitReached as paused:  # this job only: the others go on, the same command continues it
        write_job_state(job_dir, overrides, "paused", reason=str(paused))
        print(f"{job_dir.name}: {paused}", flush=True)
        return None
    except (Interrupted, KeyboardInterrupt) as stop:  # stop the sweep: a launcher goes on past an Exception
        _record_stop(job_dir, overrides, str(stop) or "stopped by SIGINT")
        raise SystemExit(128 + getattr(stop, "signum", signal.SIGINT)) from stop
    except BaseException as err:
        if isinstance(err, PairingError) and config["skip_invalid"] and not holds_run(job_dir):
            shutil.rmtree(job_dir)  # listed as skipped in the sweep's record
            return None
        write_job_state(job_dir, overrides, "failed", reason=f"{type(err).__name__}: {err}")
        raise


def _record_stop(job_dir: Path, overrides: list[str], reason: str) -> None:
    """Record the job ``interrupted``, whatever signals come meanwhile. In a launcher's worker
    the sweep is stopping and the launcher ends the process: from here on it ignores SIGINT and
    SIGTERM, which may come twice (from the terminal's process group and from the sweep's process,
    :mod:`pyro_mvae.sweeps.stop`) and would otherwise end it before its state is written."""
    while True:
        try:
            if os.getpid() != _SWEEP_PROCESS and threading.current_thread() is threading.main_thread():
                for s in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(s, signal.SIG_IGN)
            write_job_state(job_dir, overrides, "interrupted", reason=reason)  # atomic: written again if cut
            return
        except (Interrupted, KeyboardInterrupt):
            continue


STARTED = ("config.yaml", "environment.json", "metrics.jsonl", "timings.jsonl")
"""What a run writes before its first checkpoint (``last.pt``, written at the end of each epoch)."""


def _train(config: dict, job_dir: Path) -> dict:
    resume = None
    if (job_dir / "last.pt").exists():
        config, resume = resumed_config(config | {"resume": str(job_dir)}, [])
    else:  # a new job, or one that failed before its first checkpoint: start it afresh
        for name in STARTED:
            (job_dir / name).unlink(missing_ok=True)
        resolve_objective(config)
        config["run_dir"] = str(job_dir)
    check_config(config)
    return train_rank(SINGLE, config, resume)


def _finish(job_dir: Path, overrides: list[str], config: dict, report: dict) -> float:
    state = job_dir / "job.json"
    earlier = json.loads(state.read_text()) if state.exists() else {}
    metric = earlier.get("metric")
    if earlier.get("state") != "done" or metric["name"] != config["search_metric"]:
        metric = {"name": config["search_metric"], "value": _metric(config, job_dir, report)}
        write_job_state(job_dir, overrides, "done", metric=metric)
        tracking.log_numbers(job_dir, {f"search.{metric['name']}": metric["value"]})
    return metric["value"]


def _metric(config: dict, job_dir: Path, report: dict) -> float:
    """The job's ``search_metric`` in nats per image: the best validation ELBO, or the IWAE
    estimate (K = ``trainer.eval_samples``) of the first ``trainer.eval_limit`` validation images
    at the best epoch."""
    if config["search_metric"] == "best_val_elbo":
        return report["best_val_elbo"]
    vae, run_config, _, data = load_run(job_dir, resolve_device(config["device"]))
    trainer = run_config["trainer"]
    x = data.val.x[:trainer["eval_limit"]]  # (N, *event)
    ll = iwae_log_likelihood(vae, x, trainer["eval_samples"], trainer["eval_chunk_size"], trainer["eval_batch_size"])
    return ll.mean().item()
