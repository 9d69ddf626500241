"""SIGINT or SIGTERM to the sweep's own process (``kill PID``, as a scheduler or a user sends it,
not Ctrl-C to the whole process group) stops a sweep whose launcher runs the jobs in other
processes, as Ctrl-C does: the running jobs checkpoint and are recorded ``interrupted``, the
command exits with 128 + the signal, no process of the sweep is left, and the same command
resumes it (issue 34). Ctrl-C to the whole group still does the same."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyro_mvae.cli import main
from pyro_mvae.sweeps.record import finish_record, mark_stopped, running_jobs, start_record, stopped_by, write_job_state

TINY = ["trainer.eval_samples=10", "trainer.figures=false", "net.hidden=[16]", "net.latent_dim=4"]
LAUNCHERS = {"joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
             "submitit_local": ["hydra/launcher=submitit_local"]}


def _epochs_logged(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def _group_gone(pgid: int) -> bool:
    """Whether no process of group ``pgid`` is left (zombies aside: an orphan's is reaped by init)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return False
    return True


CASES = [pytest.param(signum, launcher, False, id=f"{signum.name}-{launcher}")
         for signum in (signal.SIGINT, signal.SIGTERM) for launcher in LAUNCHERS]
CASES.append(pytest.param(signal.SIGINT, "joblib", True, id="ctrl-c-to-the-group-joblib"))  # each job gets it twice


@pytest.mark.parametrize(("signum", "launcher", "group"), CASES)
def test_a_stop_signal_stops_the_sweep_and_the_same_command_resumes_it(tmp_path, signum, launcher, group):
    sweep_dir = tmp_path / "grid"
    command = ["train", "-m", "seed=0,1", "trainer.epochs=30", *TINY, *LAUNCHERS[launcher],
               f"hydra.sweep.dir={sweep_dir}"]
    # its own session: the signal below reaches its process alone, and nothing else shares its group
    process = subprocess.Popen([sys.executable, "-m", "pyro_mvae.cli", *command], start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobs = [sweep_dir / "seed=0", sweep_dir / "seed=1"]
    try:
        deadline = time.time() + 60
        while not all(_epochs_logged(job) >= 1 for job in jobs):  # both jobs are training
            assert time.time() < deadline and process.poll() is None, process.communicate()[0]
            time.sleep(0.1)
        if group:  # as Ctrl-C in a terminal: the sweep's process passes it on to jobs that got it already
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)  # the process alone, not its group
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 128 + signum, out
        deadline = time.time() + 20  # the launcher's job processes end too (submitit's by themselves)
        while not _group_gone(process.pid):
            assert time.time() < deadline, subprocess.run(["ps", "-o", "pid,args", "-g", str(process.pid)],
                                                          capture_output=True, text=True).stdout
            time.sleep(0.1)
    finally:
        if not _group_gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert record["stopped"]["signal"] == signum
    assert [job["state"] for job in record["jobs"]] == ["interrupted", "interrupted"], out
    for job in jobs:  # each job stopped itself on the signal: last.pt at the step it reached
        state = json.loads((job / "job.json").read_text())
        assert state["state"] == "interrupted" and f"stopped by signal {signum}" in state["reason"]
        assert (job / "last.pt").exists() and not (job / "report.json").exists()
        assert _epochs_logged(job) < 30
    assert "the sweep was stopped" in out and "run the same command again to resume it" in out

    assert main(command) == 0  # the same command: both jobs resume from last.pt and finish
    assert [job["state"] for job in json.loads((sweep_dir / "sweep.json").read_text())["jobs"]] == ["done", "done"]
    for job in jobs:
        resumed = json.loads((job / "environment.json").read_text())["resumed"]
        assert len(resumed) == 1 and resumed[0]["at_epoch"] >= 1 and (job / "report.json").exists()


def test_the_record_of_a_stopped_sweep(tmp_path):
    """What the sweep's process reads and writes when stopped (:mod:`pyro_mvae.sweeps.stop`)."""
    sweep_dir = tmp_path / "grid"
    jobs = [["seed=0"], ["seed=1"], ["seed=2"]]
    for job in jobs:
        (sweep_dir / job[0]).mkdir(parents=True)
    write_job_state(sweep_dir / "seed=2", ["seed=2"], "running", pid=1)  # left by an earlier launch
    old = time.time() - 60
    os.utime(sweep_dir / "seed=2" / "job.json", (old, old))
    record = start_record(sweep_dir, "pyro-mvae train -m seed=0,1,2", {"seed": "0,1,2"}, jobs, [], False)
    since = (sweep_dir / "sweep.json").stat().st_mtime
    write_job_state(sweep_dir / "seed=0", ["seed=0"], "running", pid=123)
    write_job_state(sweep_dir / "seed=1", ["seed=1"], "interrupted", reason="stopped by signal 15")
    assert running_jobs(sweep_dir, since) == {"seed=0": 123}  # this launch's running jobs only
    assert stopped_by(sweep_dir) is None
    mark_stopped(sweep_dir, record, signal.SIGTERM)
    assert stopped_by(sweep_dir) == signal.SIGTERM  # a job handed out from now on stops at once
    record = finish_record(sweep_dir, record, ["seed"])
    states = {job["dir"]: (job["state"], job.get("reason")) for job in record["jobs"]}
    assert states == {"seed=0": ("interrupted", "the sweep was stopped by signal 15"),  # ended unrecorded
                      "seed=1": ("interrupted", "stopped by signal 15"),
                      "seed=2": ("interrupted", "the sweep was stopped by signal 15")}
    assert all("pid" not in job for job in record["jobs"]) and record["stopped"]["signal"] == signal.SIGTERM
    start_record(sweep_dir, "pyro-mvae train -m seed=0,1,2", {"seed": "0,1,2"}, jobs, [], False)
    assert stopped_by(sweep_dir) is None  # a new launch is not stopped
