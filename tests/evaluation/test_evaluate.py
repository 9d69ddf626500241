"""`pyro-mvae evaluate | sample | compare` on a tiny trained run."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_mvae.cli import main
from pyro_mvae.errors import RunError
from pyro_mvae.evaluation.diagnostics import clustering_scores, component_probabilities, per_dimension_nmi
from pyro_mvae.evaluation.evaluate import evaluate_run
from pyro_mvae.runs import load_run

TRAIN = ["trainer.epochs=3", "trainer.eval_samples=200", "trainer.progress=false",
         "net.hidden=[64]", "net.latent_dim=6", "data.batch_size=50"]


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, extra in (("mixture", ["prior=mixture", "guide=gaussian"]), ("factorized", [])):
        assert main(["train", *TRAIN, *extra, f"run_dir={root / name}"]) == 0
        runs[name] = root / name
    return runs


def test_evaluate_reproduces_the_training_report(trained_runs):
    run = trained_runs["mixture"]
    trained = json.loads((run / "report.json").read_text())
    draws = []
    for seed in (101, 102):  # two independent evaluations give the Monte Carlo error of one
        report = evaluate_run(run, num_samples=200, progress=False, make_figures=False, seed=seed)
        draws.append(np.loadtxt(run / "per_datapoint_test.csv", delimiter=",", skiprows=1)[:, 5])
    assert report["n"] == trained["n_test"] == 297
    mc_se = np.std(draws[0] - draws[1], ddof=1) / np.sqrt(2 * 297)  # s.e. of one evaluation's mean
    # same model, same images, independent draws: the means agree within Monte Carlo error
    assert abs(report["iwae_ll"] - trained["test_iwae_ll"]) < 4 * np.sqrt(2) * mc_se + 1e-3
    assert report["iwae_ll"] >= report["elbo"]
    sweep = [report["k_sweep"][k]["mean"] for k in ("1", "10", "100", "200")]
    assert sweep == sorted(sweep)
    rows = (run / "per_datapoint_test.csv").read_text().splitlines()
    assert rows[0] == "index,label,iwae_1,iwae_10,iwae_100,iwae_200,elbo,khat,cluster" and len(rows) == 298
    clusters = np.loadtxt(run / "per_datapoint_test.csv", delimiter=",", skiprows=1, usecols=(1, 8), dtype=int)
    assert report["cluster_accuracy"] == pytest.approx(clustering_scores(clusters[:, 1], clusters[:, 0])[
        "cluster_accuracy"])  # the file's argmax q(c | x) column is what was scored
    assert 0.1 <= report["cluster_accuracy"] <= report["cluster_purity"] <= 1 and -1 <= report["ari"] <= 1
    assert main(["evaluate", str(run), "-K", "30"]) == 0
    assert "clusters" in json.loads((run / "eval.json").read_text())["figures"]  # the confusion matrix


def test_the_per_dimension_prior_gets_an_nmi_per_dimension(trained_runs):
    """factorized_mixture: each z_j's choice scored against the labels alone, no clusters per image."""
    run = trained_runs["factorized"]
    report = json.loads((run / "eval.json").read_text())
    assert "cluster_accuracy" not in report and len(report["nmi_per_dim"]) == report["latent_dim"] == 6
    vae, _, _, data = load_run(run)
    with torch.no_grad():
        choices = component_probabilities(vae, data.test.x).argmax(-1).numpy()  # (297, 6)
    assert report["nmi_per_dim"] == pytest.approx(per_dimension_nmi(choices, data.test.y.numpy())["nmi_per_dim"])
    assert report["nmi_best_dim"] == max(report["nmi_per_dim"]) and 0 <= min(report["nmi_per_dim"])


def test_every_figure_is_a_real_png(trained_runs):
    run = trained_runs["factorized"]
    assert main(["evaluate", str(run), "-K", "100", "--limit", "150"]) == 0
    report = json.loads((run / "eval.json").read_text())
    expected = {"samples", "reconstructions", "latent_map", "latent_marginals", "interpolations",
                "k_sweep", "khat", "training_curves"}
    assert set(report["figures"]) == expected
    for relative in report["figures"].values():
        path = run / relative
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
        assert min(pixels.shape) >= 50 and pixels.std() > 5  # not blank


def test_interpolations_of_unlabelled_images_pair_consecutive_ones(trained_runs, tmp_path):
    """Data without labels (every label 0, as data=arrays without 'y') still gets its figure."""
    from pyro_mvae.evaluation.figures import interpolations

    vae, _, _, data = load_run(trained_runs["factorized"])
    out = tmp_path / "interpolations.png"
    interpolations(vae, data.test.x[:20], torch.zeros(20, dtype=torch.long), data.event_shape, out, pairs=3)
    assert Image.open(out).size[1] > 100 and np.asarray(Image.open(out).convert("L")).std() > 5


def test_sample_writes_a_grid(trained_runs, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["sample", str(trained_runs["factorized"]), "-n", "16", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out)).std() > 5


def test_compare_gives_paired_differences(trained_runs, capsys):
    for run in trained_runs.values():
        evaluate_run(run, num_samples=50, progress=False, make_figures=False)
    capsys.readouterr()
    assert main(["compare", str(trained_runs["mixture"]), str(trained_runs["factorized"])]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "Scored on digits, all 297 test images, K = 50; paired Δ against prior=mixture."
    base, other = table[4].split("|"), table[5].split("|")
    assert len(table) == 6 and base[1].strip() == "prior=mixture" and other[1].strip() == "prior=factorized_mixture"
    assert base[5].strip() == "—" and "±" in other[5]
    report = json.loads((trained_runs["mixture"] / "report.json").read_text())  # as train numbers it
    assert base[10].strip() == f"{report['best_epoch']} (of {report['epochs_run']})"


def test_missing_or_corrupted_checkpoints_are_refused(trained_runs, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained_runs["mixture"], broken)
    data = (broken / "best.pt").read_bytes()
    (broken / "best.pt").write_bytes(data[: len(data) // 2])  # cut in half
    with pytest.raises(RunError, match="corrupted"):
        evaluate_run(broken, num_samples=10, progress=False)
    (broken / "best.pt").unlink()
    assert main(["evaluate", str(broken), "-K", "10"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_evaluate_other_splits(trained_runs):
    report = evaluate_run(trained_runs["mixture"], num_samples=20, split="train", limit=50,
                          progress=False, make_figures=False)
    assert report["n"] == 50 and report["split"] == "train"
    with pytest.raises(ValueError, match="split"):
        evaluate_run(trained_runs["mixture"], num_samples=20, split="holdout", progress=False)


def test_a_memory_budget_sets_the_chunk_size(trained_runs):
    from pyro_mvae.infer.iwae import BYTES_PER_PARTICLE_PIXEL, chunk_size_for

    # 64-pixel digits, 100 images per batch: 1 MiB holds 2**20 / (12 · 100 · 64) = 13 particles
    assert chunk_size_for(1.0, 100, 64) == 2 ** 20 // (BYTES_PER_PARTICLE_PIXEL * 100 * 64) == 13
    with pytest.raises(ValueError, match="cannot hold one particle"):
        chunk_size_for(0.01, 100, 784)
    report = evaluate_run(trained_runs["mixture"], num_samples=40, limit=100, memory_mib=1.0,
                          progress=False, make_figures=False)
    assert report["chunk_size"] == 13 and report["K"] == 40


def test_ais_and_bdmc_through_the_cli(trained_runs, capsys):
    """AIS and IWAE estimate the same log p(x) of the same images: their paired difference is
    small; BDMC's bounds close as T grows (the oracle tests are in tests/infer/test_ais.py)."""
    run = trained_runs["factorized"]
    scored = ["evaluate", str(run), "-K", "500", "--limit", "30", "--no-figures"]
    assert main([*scored, "--estimator", "ais", "--ais-steps", "100", "--ais-chains", "4"]) == 0
    assert "AIS log p(x) (T=100, S=4, L=10)" in capsys.readouterr().out
    assert main([*scored, "--bdmc", "10", "--bdmc-steps", "5,100"]) == 0  # adds its section, keeps AIS's
    assert "BDMC on 10 simulated images" in capsys.readouterr().out
    report = json.loads((run / "eval.json").read_text())
    ais = report["ais"]
    assert abs(ais["minus_iwae"]) < 4 * ais["minus_iwae_se"] + 0.3, ais
    assert 0.3 < ais["acceptance_rate"] < 1 and ais["cost_ratio_to_iwae"] > 0
    rows = (run / "per_datapoint_test.csv").read_text().splitlines()
    assert rows[0].split(",")[-5:] == ["ais", "ais_guide", "ais_prior", "elbo", "khat"] and len(rows) == 31
    assert report["ais"]["init"] == "both" and "starts_disagree" in report["ais"]
    bdmc = report["bdmc"]["by_steps"]
    assert set(bdmc) == {"5", "100"} and bdmc["100"]["gap"] < bdmc["5"]["gap"]
    assert bdmc["100"]["lower"] <= bdmc["100"]["upper"] + 4 * bdmc["100"]["gap_se"]
    assert main(["evaluate", str(run), "-K", "50", "--limit", "20", "--no-figures"]) == 0  # other images
    kept = run / "evaluations" / "test-30-K500-ais-T100-S4-both-seed0.json"  # the AIS evaluation is not lost
    assert (json.loads(kept.read_text())["ais"]) == ais
    assert len(kept.with_suffix(".csv").read_text().splitlines()) == 31
    report = json.loads((run / "eval.json").read_text())
    assert report["kept"] == "evaluations/test-20-K50-iwae-seed0.json"
    assert "ais" not in (run / "per_datapoint_test.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("args,needle", [(["--estimator", "ais", "--ais-chains", "0"], "ais.chains"),
                                         (["--bdmc", "3", "--bdmc-steps", "10,x"], "--bdmc-steps"),
                                         (["--bdmc", "-1"], "--bdmc")])
def test_bad_annealing_options_are_refused(trained_runs, capsys, args, needle):
    assert main(["evaluate", str(trained_runs["mixture"]), "-K", "10", "--limit", "5", *args]) == 2
    assert needle in capsys.readouterr().err


def test_a_figure_that_cannot_be_drawn_is_a_warning_and_the_run_ends_with_its_report(tmp_path, monkeypatch, capsys):
    from pyro_mvae.evaluation import figures

    def broken(*args, **kwargs):
        raise ValueError("cannot reshape array of size 20 into shape (1,8,8)")

    monkeypatch.setattr(figures, "latent_map", broken)
    run = tmp_path / "run"
    assert main(["train", "trainer.epochs=1", "trainer.eval_samples=10", "trainer.progress=false", "net.hidden=[16]",
                 "net.latent_dim=2", f"run_dir={run}"]) == 0
    err = capsys.readouterr().err
    assert "warning: figure latent_map not drawn (ValueError: cannot reshape" in err and "Traceback" not in err
    assert (run / "report.json").exists() and (run / "figures" / "samples.png").exists()
    assert not (run / "figures" / "latent_map.png").exists()
    assert main(["evaluate", str(run), "-K", "10"]) == 0  # evaluate too: its report lists the figures drawn
    report = json.loads((run / "eval.json").read_text())
    assert "latent_map" not in report["figures"] and "khat" in report["figures"]


def test_the_same_evaluation_twice_gives_the_same_numbers_and_both_are_kept(trained_runs, capsys):
    """Seeded by the run's seed (or --seed): the same command gives the same per-image numbers to the
    last digit; another seed other draws; every evaluation kept under evaluations/."""
    run = trained_runs["mixture"]
    command = ["evaluate", str(run), "-K", "100", "--limit", "30", "--no-figures"]
    tables = []
    for extra in ([], [], ["--seed", "11"]):
        assert main([*command, *extra]) == 0
        tables.append((run / "per_datapoint_test.csv").read_text())
    assert "; seed 0" in capsys.readouterr().out  # the run's seed
    assert tables[0] == tables[1] and tables[2] != tables[0]
    kept = {p.name for p in (run / "evaluations").glob("test-30-K100-*.json")}
    assert kept == {"test-30-K100-iwae-seed0.json", "test-30-K100-iwae-seed11.json"}
    assert json.loads((run / "eval.json").read_text())["seed"] == 11


def test_an_evaluation_of_an_earlier_release_is_kept_too(trained_runs, capsys):
    run = trained_runs["factorized"]
    assert main(["evaluate", str(run), "-K", "20", "--limit", "10", "--no-figures"]) == 0
    shutil.rmtree(run / "evaluations")  # as 0.2.0 left a run: eval.json alone, without a seed
    old = json.loads((run / "eval.json").read_text())
    (run / "eval.json").write_text(json.dumps({k: v for k, v in old.items() if k not in ("seed", "kept")}))
    assert main(["evaluate", str(run), "-K", "20", "--limit", "12", "--no-figures"]) == 0
    kept = run / "evaluations" / "test-10-K20-iwae-seedunknown.json"
    assert f"kept as {kept}" in capsys.readouterr().err
    assert json.loads(kept.read_text())["iwae_ll"] == old["iwae_ll"]
    assert len(kept.with_suffix(".csv").read_text().splitlines()) == 11
