"""`pyro-mvae compare` on run directories written by hand (the files a run leaves: config.yaml,
Hydra's overrides, eval.json, report.json, the per-image CSV): the best epoch numbered as
`train` numbers it, the LaTeX table, a baseline given by several overrides (issue 34)."""

import csv
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from pyro_mvae.cli import main
from pyro_mvae.evaluation.compare import COLUMNS, compare_table
from pyro_mvae.session import summary

N = 6  # images scored


def _run(sweep_dir, prior: str, guide: str, seed: int, shift: float, best_epoch: int = 5, epochs: int = 6):
    """A job directory of a sweep over prior × guide × seed, as a finished run leaves it."""
    run = sweep_dir / f"guide={guide},prior={prior},seed={seed}"
    (run / ".hydra").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"prior": {"name": prior}, "guide": {"name": guide}, "seed": seed}))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"prior={prior}", f"guide={guide}", f"seed={seed}"]))
    iwae = -20.0 - np.arange(N) + shift  # (N,)
    (run / "eval.json").write_text(json.dumps({"data": "digits", "split": "test", "n": N, "n_split": N, "K": 10,
                                               "elbo": float(iwae.mean() - 1), "active_units": 3, "latent_dim": 4,
                                               "khat_share_above_0.7": 0.5}))
    report = {"dataset": "digits", "n_test": N, "K": 10, "test_iwae_ll": float(iwae.mean()), "test_iwae_ll_se": 0.1,
              "test_elbo": float(iwae.mean() - 1), "test_elbo_se": 0.1, "best_epoch": best_epoch, "epochs_run": epochs}
    (run / "report.json").write_text(json.dumps(report))
    khat = [0.9, 0.1] * (N // 2)  # (N,): half the images above 0.7
    lines = ["index,label,iwae_10,elbo,khat"] + [f"{i},0,{v},{v - 1},{k}" for i, (v, k) in enumerate(zip(iwae, khat))]
    (run / "per_datapoint_test.csv").write_text("\n".join(lines) + "\n")
    return run, report


@pytest.fixture
def sweep(tmp_path):
    sweep_dir = tmp_path / "grid"
    runs = {}
    for prior, guide, shift in (("standard", "gaussian", 0.0), ("standard", "flow", 0.5),
                                ("mixture", "gaussian", 1.0), ("mixture", "flow", -1.5)):
        for seed in (0, 1):
            runs[prior, guide, seed] = _run(sweep_dir, prior, guide, seed, shift + 0.2 * seed)
    return sweep_dir, runs


def test_the_best_epoch_is_numbered_as_train_numbers_it(tmp_path):
    run, report = _run(tmp_path / "grid", "standard", "gaussian", 0, 0.0, best_epoch=5, epochs=6)
    assert "best epoch 5 of 6" in summary(report, run)  # train's final line
    table = compare_table([run]).splitlines()
    header = [cell.strip() for cell in table[2].strip("|").split("|")]
    cells = [cell.strip() for cell in table[4].strip("|").split("|")]
    assert header[9] == COLUMNS[9] == "best epoch from 0 (of N run)"
    assert cells[9] == "5 (of 6)"  # report.json's best_epoch, not one more
    row = next(csv.DictReader(io.StringIO(compare_table([run], fmt="csv"))))
    assert (row["best_epoch"], row["epochs"]) == ("5.0", "6.0")


def test_a_baseline_given_by_several_overrides(sweep, capsys):
    sweep_dir, runs = sweep
    # one argument, quoted in a shell: the overrides that pick one row, space-separated
    assert main(["compare", str(sweep_dir), "--baseline", "prior=mixture guide=flow", "--format", "csv"]) == 0
    rows = {row["label"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert set(rows) == {"guide=flow prior=mixture", "guide=flow prior=standard", "guide=gaussian prior=mixture",
                         "guide=gaussian prior=standard"}
    assert rows["guide=flow prior=mixture"]["delta"] == ""  # the baseline: no Δ
    assert float(rows["guide=gaussian prior=standard"]["delta"]) == pytest.approx(1.5)  # their shifts differ by 1.5
    assert main(["compare", str(sweep_dir), "--baseline", "prior=mixture"]) == 2  # two rows match: refused
    assert "matches 2 rows" in capsys.readouterr().err


LATEX_PREAMBLE = "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[utf8]{inputenc}\n\\begin{document}\n"


def test_the_latex_table_uses_math_for_minus_signs_and_comparisons(sweep):
    sweep_dir, _ = sweep
    table = compare_table([sweep_dir], baseline="prior=standard guide=gaussian", fmt="latex")
    header = next(line for line in table.splitlines() if line.startswith("row &"))
    assert r"$\hat{k}$ $>$ 0.7" in header and "paired $\\Delta$ (nats)" in header and " > " not in header
    body = [line for line in table.splitlines() if line.startswith("guide=")]
    assert len(body) == 4 and all(line.endswith(r" \\") for line in body)
    flow_mixture = next(line for line in body if line.startswith("guide=flow prior=mixture"))
    # IWAE −23.90 ± its s.e., Δ −1.50 against the baseline: math minus signs, no hyphen before a digit
    assert "& $-$23.90 $\\pm$ " in flow_mixture and "& $-$1.50 $\\pm$ 0.00 &" in flow_mixture
    tex = "\n".join(line for line in table.splitlines() if not line.startswith("%"))  # but the scope's comment
    assert not any(symbol in tex for symbol in ("±", "Δ", "−", "—", "k̂")) and not re.search(r"(?<!\$)-\d", tex)


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None, reason="no TeX")
def test_the_latex_table_compiles(sweep, tmp_path):
    if not subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True, text=True).stdout.strip():
        pytest.skip("no booktabs.sty")
    table = compare_table([sweep[0]], baseline="prior=standard guide=gaussian", fmt="latex")
    (tmp_path / "table.tex").write_text(LATEX_PREAMBLE + table + "\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "table.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and (tmp_path / "table.pdf").exists(), done.stdout[-3000:]


def test_clustering_columns_appear_when_a_run_has_clustering_scores(sweep):
    sweep_dir, runs = sweep
    assert "cluster accuracy" not in compare_table([sweep_dir])  # no run chose one component per image
    run, _ = runs["mixture", "gaussian", 0]
    evaluation = json.loads((run / "eval.json").read_text())
    scores = {"usage_perplexity": 7.5, "cluster_accuracy": 0.625, "nmi": 0.5, "ari": 0.25}
    for seed in (0, 1):  # both seeds of the row: the row shows their mean
        path = runs["mixture", "gaussian", seed][0] / "eval.json"
        path.write_text(json.dumps(evaluation | {k: v + 0.1 * seed for k, v in scores.items()}))
    lines = compare_table([sweep_dir]).splitlines()
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header[-4:] == ["usage perplexity", "cluster accuracy", "NMI", "ARI"]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[4:])}
    mixture = next(cells for label, cells in rows.items() if "mixture" in label and "gaussian" in label)
    assert mixture[-4:] == ["7.55", "0.675", "0.550", "0.300"]
    assert all(cells[-1] == "—" for label, cells in rows.items() if "flow" in label or "standard" in label)


def test_a_test_error_column_appears_when_a_run_was_semi_supervised(sweep):
    sweep_dir, runs = sweep
    assert "test error" not in compare_table([sweep_dir])
    for seed, error in ((0, 0.125), (1, 0.25)):
        path = runs["mixture", "gaussian", seed][0] / "eval.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"classification_error": error}))
    lines = compare_table([sweep_dir]).splitlines()
    assert [cell.strip() for cell in lines[2].strip("|").split("|")][-1] == "test error"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    assert {cells[-1] for cells in rows if "mixture" in cells[0] and "gaussian" in cells[0]} == {"18.75%"}
    assert "classification_error" in compare_table([sweep_dir], fmt="csv").splitlines()[0]


def test_a_tags_column_shows_each_rows_tags(sweep):
    sweep_dir, runs = sweep
    assert "| tags |" not in compare_table([sweep_dir])
    for seed, tags in ((0, ["baseline"]), (1, ["baseline", "rerun"])):
        path = runs["mixture", "gaussian", seed][0] / "report.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"tags": tags}))
    lines = compare_table([sweep_dir]).splitlines()
    assert [cell.strip() for cell in lines[2].strip("|").split("|")][-1] == "tags"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    assert {cells[-1] for cells in rows if "mixture" in cells[0] and "gaussian" in cells[0]} == {"baseline, rerun"}
    assert {cells[-1] for cells in rows if "standard" in cells[0]} == {"—"}
