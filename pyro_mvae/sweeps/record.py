"""What a sweep leaves on disk besides its run directories.

``SWEEP_DIR/sweep.json``, the sweep's record, written by the command that started it (before any
job, and again when the launcher returns): the command, the grid, and each job with its
directory and state; ``stopped`` (the signal) when the command was stopped by SIGINT or SIGTERM
(:mod:`pyro_mvae.sweeps.stop`). ``SWEEP_DIR/<job>/job.json``, written by the job itself (it may
run on another machine): its overrides, its state (``running`` with the process's ``pid``,
``done``, ``failed``, ``interrupted``, ``paused`` at ``trainer.max_time``) and, when done, the
metric it returned to the sweeper.
Both are written atomically.
"""

import json
import time
from pathlib import Path

from pyro_mvae.storage import write_json_atomic

RECORD = "sweep.json"
JOB = "job.json"


def write_job_state(job_dir: Path, overrides: list[str], state: str, **details) -> None:
    """Record one job's ``state`` (``running``, ``done``, ``failed``, ``interrupted``, ``paused``) in
    ``job_dir/job.json``."""
    write_json_atomic(Path(job_dir) / JOB, {"overrides": list(overrides), "state": state,
                                            "time": time.strftime("%Y-%m-%d %H:%M:%S")} | details)


def job_states(sweep_dir: Path) -> dict[str, dict]:
    """``{job directory name: its job.json}`` for every job of ``sweep_dir`` that started."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(sweep_dir).glob(f"*/{JOB}"))}


def running_jobs(sweep_dir: Path, since: float) -> dict[str, int]:
    """``{job directory name: its process id}`` for every job of ``sweep_dir`` whose ``job.json``
    says ``running`` and was written at or after ``since`` (a file modification time: that of
    ``sweep.json`` as this launch started it, so that a job an earlier launch left ``running`` is
    not counted)."""
    running = {}
    for path in sorted(Path(sweep_dir).glob(f"*/{JOB}")):
        try:
            state = json.loads(path.read_text())
            if state["state"] == "running" and "pid" in state and path.stat().st_mtime >= since:
                running[path.parent.name] = state["pid"]
        except (OSError, ValueError, KeyError):  # replaced while read: read again on the next look
            continue
    return running


def mark_stopped(sweep_dir: Path, record: dict, signum: int) -> None:
    """Write into ``record`` and ``sweep_dir/sweep.json`` that the sweep was stopped by ``signum``:
    a job that starts from now on stops at once (:func:`stopped_by`)."""
    record["stopped"] = {"signal": signum, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json_atomic(Path(sweep_dir) / RECORD, record)


def stopped_by(sweep_dir: Path) -> int | None:
    """The signal that stopped this launch of the sweep in ``sweep_dir``, if one did."""
    try:
        return json.loads((Path(sweep_dir) / RECORD).read_text()).get("stopped", {}).get("signal")
    except (OSError, ValueError):
        return None


def start_record(sweep_dir: Path, command: str, grid: dict, jobs: list[list[str]], skipped: list[dict],
                 search: bool) -> dict:
    """The record of a sweep about to start (``pending`` jobs; for a search, the checked corners
    are not listed: its jobs are drawn as it runs), written to ``sweep_dir/sweep.json``."""
    skip = {tuple(s["overrides"]) for s in skipped}
    record = {"command": command, "kind": "search" if search else "grid", "grid": grid,
              "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "jobs": [] if search else [{"overrides": job, "state": "pending"} for job in jobs
                                         if tuple(job) not in skip],
              "skipped": skipped}
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(sweep_dir) / RECORD, record)
    return record


def finish_record(sweep_dir: Path, record: dict, varying: list[str]) -> dict:
    """Fill each job's directory and state from the ``job.json`` files (a job that never wrote
    one is ``not started``; in a stopped sweep, one still ``running`` is ``interrupted``), matched
    by the ``varying`` keys' overrides; add the jobs a search drew and its best job; write
    ``sweep.json``; returns it."""
    def key(overrides):
        return tuple(sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") in varying))

    by_key = {key(s["overrides"]): (name, s) for name, s in job_states(sweep_dir).items()}
    listed = {key(job["overrides"]) for job in record["jobs"]}
    record["jobs"] += [{"overrides": s["overrides"]} for k, (_, s) in by_key.items() if k not in listed]
    for job in record["jobs"]:
        name, state = by_key.get(key(job["overrides"]), (None, {"state": "not started"}))
        job.update({"dir": name} | {k: v for k, v in state.items() if k not in ("overrides", "pid")})
        if job["state"] == "running" and "stopped" in record:  # ended before it could record it
            job.update(state="interrupted", reason=f"the sweep was stopped by signal {record['stopped']['signal']}")
    done = [job for job in record["jobs"] if job["state"] == "done" and job.get("metric")]
    if done:
        record["best"] = max(done, key=lambda job: job["metric"]["value"])
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json_atomic(Path(sweep_dir) / RECORD, record)
    return record


def summary(record: dict) -> tuple[str, bool]:
    """Lines for the terminal (one per job that is not done) and whether every job is done."""
    counts = {}
    for job in record["jobs"]:
        counts[job["state"]] = counts.get(job["state"], 0) + 1
    lines = [f"sweep: {', '.join(f'{n} {state}' for state, n in counts.items())}"
             + (f", {len(record['skipped'])} skipped" if record["skipped"] else "")]
    for job in record["jobs"]:
        if job["state"] != "done":
            reason = f": {job['reason']}" if "reason" in job else ""
            lines.append(f"  {job['state']}: {' '.join(job['overrides'])}{reason}")
    for job in record["skipped"]:
        lines.append(f"  skipped: {' '.join(job['overrides'])}: {job['reason']}")
    if "best" in record:
        best = record["best"]
        lines.append(f"best: {best['dir']} ({best['metric']['name']} = {best['metric']['value']:.3f})")
    return "\n".join(lines), all(job["state"] == "done" for job in record["jobs"])
