"""SIGINT or SIGTERM to the sweep's own process, when its launcher runs the jobs in other
processes of this machine: ``joblib`` (loky worker processes) and ``submitit_local`` (one process
per job).

Ctrl-C in a terminal reaches the whole process group, the jobs included; ``kill PID`` or a
scheduler's SIGTERM reaches the sweep's process alone, which would die and leave its jobs running
(or, on SIGINT, have the launcher kill them where they stand). So, while the launcher runs, this
process catches both signals and stops the sweep the way Ctrl-C does:

1. ``sweep.json`` says ``stopped``: a job that starts from then on stops at once;
2. each running job (the ``pid`` in its ``job.json``) gets the same signal, and stops as it does
   under Ctrl-C: the current step finished, ``last.pt`` written, ``interrupted`` recorded;
3. this process waits until each has recorded it (or its process has ended); a second signal,
   or :data:`WAIT_S` seconds, ends the wait;
4. the launcher is left where it stands (as Ctrl-C leaves it: joblib ends its workers, submitit's
   job processes end by themselves), and the command records the sweep and exits with
   128 + the signal. The same command resumes it.

Hydra's basic launcher runs the jobs in this process, where the training catches the signal
itself; a cluster launcher's jobs are the scheduler's to signal.
"""

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from pyro_mvae.sweeps.record import RECORD, mark_stopped, running_jobs

LOCAL_LAUNCHERS = ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                   "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher")
"""The ``_target_`` of the launchers whose jobs run in processes of this machine."""

WAIT_S = 120.0
"""The longest wait for the signalled jobs to record that they stopped."""


class SweepStopped(BaseException):
    """Raised into the launcher once its jobs have stopped (a BaseException, as KeyboardInterrupt:
    the launchers and Hydra let it through)."""


class SweepStop:
    """The signal that stopped the sweep (None while none did) and how many arrived."""

    def __init__(self):
        self.signum: int | None = None
        self.received = 0

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_jobs_on_signals(sweep_dir: Path, record: dict, launcher: str):
    """Within the block, SIGINT and SIGTERM stop the sweep's running jobs (see the module), set the
    yielded :class:`SweepStop` and end the block there; the previous handlers come back on exit.
    Nothing is installed for a ``launcher`` (its ``_target_``) not in :data:`LOCAL_LAUNCHERS`,
    or outside the main thread."""
    stop = SweepStop()
    if launcher not in LOCAL_LAUNCHERS or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    since = (Path(sweep_dir) / RECORD).stat().st_mtime  # as this launch started the record

    def handle(signum, frame):
        stop.received += 1
        if stop.received > 1:  # a second signal (a nested call) ends the wait of the first
            return
        stop.signum = signum
        mark_stopped(sweep_dir, record, signum)
        _stop_running_jobs(sweep_dir, since, signum, stop)
        raise SweepStopped(signum)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    except SweepStopped:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_running_jobs(sweep_dir: Path, since: float, signum: int, stop: SweepStop) -> None:
    """Send ``signum`` to every running job of this launch, also to those that start meanwhile,
    until none is left running (see the module)."""
    signalled, deadline = set(), time.monotonic() + WAIT_S
    while True:
        running = {pid for pid in running_jobs(sweep_dir, since).values() if _alive(pid)}
        for pid in running - signalled:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        signalled |= running
        if not running or stop.received > 1 or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True
