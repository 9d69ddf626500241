"""The benchmark scripts behind the docs' records run against the package as it is now, on tiny
inputs (issue 45: a script whose API call broke would stand behind a record it can no longer
make; `bench_threads.py` did, found when its table was measured again). Each runs as a user runs
it, in a fresh interpreter, and its output is checked against an oracle where it has one."""

import json
import subprocess
import sys

from doc_pages import ROOT


def run_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_bench_mixture_matches_pyros_mixture_and_writes_its_record(tmp_path):
    out = tmp_path / "bench_mixture.json"
    done = run_script("experiments/bench_mixture.py", "--components", "7", "-d", "3", "--particles", "50",
                      "--repeats", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    values = json.loads(out.read_text())["values"]
    assert values["max_diff_nats"] < 1e-4  # the matrix-product density against MixtureSameFamily's
    assert values["components"] == 7 and values["broadcast_ms"] > 0 and values["matrix_ms"] > 0


def test_bench_threads_worker_trains_on_digits():
    done = run_script("experiments/bench_threads.py", "--worker", "--root", "", "--steps", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["seconds_per_step"] > 0
