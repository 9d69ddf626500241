"""The scripts that make the README's tables take the data set by name (issue 16): each runs,
end to end at a tiny budget, on a data set other than MNIST and reports runs of that data set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.epochs=1", "trainer.eval_samples=10", "trainer.figures=false", "net.hidden=[16]",
        "net.latent_dim=4"]


def _run(command: list[str], **env) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this venv's pyro-mvae
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": path, **env}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _datasets(folder: Path) -> set[str]:
    return {json.loads(p.read_text())["dataset"] for p in folder.glob("*/report.json")}


def test_core_table_runs_on_a_named_data_set(tmp_path):
    out = _run(["bash", "experiments/core_table.sh", "-", *TINY], DATA="digits", OUT_DIR=str(tmp_path),
               EVAL_LIMIT="20")
    assert len(list(tmp_path.glob("*/report.json"))) == 3 and _datasets(tmp_path) == {"digits"}
    assert out.count("| digits |") == 3  # one table row per run, each naming its data


def test_gradient_routes_run_on_a_named_data_set(tmp_path):
    _run(["bash", "experiments/gradient_routes.sh", "-", "net.hidden=[16]", "net.latent_dim=4",
          "trainer.figures=false"], DATA="digits", OUT_DIR=str(tmp_path), EPOCHS="1", EVAL_LIMIT="10", K="10")
    assert len(list(tmp_path.glob("*/report.json"))) == 6 and _datasets(tmp_path) == {"digits"}


def test_route_study_runs_on_a_users_array_file(tmp_path):
    images = tmp_path / "images.npy"
    np.save(images, (load_digits().images[:400] * 255 / 16).round().astype(np.uint8))  # (400, 8, 8)
    study = ["python", "experiments/route_study.py"]
    common = ["--data", "arrays", "--set", f"data.path={images}", "--out", str(tmp_path / "routes")]
    _run([*study, "run", "standard_gaussian", "fm3_gaussian", *common, "--epochs", "1", "-K", "10",
          "--limit", "20"])
    table = _run([*study, "table", "standard_gaussian", "fm3_gaussian", *common, "-K", "10", "--limit", "20"])
    assert _datasets(tmp_path / "routes") == {"arrays"}
    assert "| fm3_gaussian |" in table and "first 20 test images, K = 10" in table
