"""Each tutorial at its full budget, with the comparison its text states checked (slow: minutes to
tens of minutes each on one thread; run with ``python -m pytest -m slow tests/test_tutorials_full.py``).

The docs are built at the smoke budget (``PYRO_MVAE_SMOKE_TEST=1``), where the models are barely
trained and each tutorial says so; the text quotes full-budget runs, and these tests are what makes
the text true. The oracle of each is what the tutorial's prose states of its full-budget run, a
comparison between models or estimators as a paired difference over the same test images.
"""

import runpy
from pathlib import Path

import pytest

from pyro_mvae.infer.iwae import mean_and_stderr

pytestmark = pytest.mark.slow
TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"


@pytest.fixture
def run_tutorial(tmp_path, monkeypatch):
    """Run ``docs/tutorials/<name>.py`` at its full budget in an empty directory; its namespace."""
    pytest.importorskip("IPython")  # the tutorials display figures; IPython comes with the docs extra
    monkeypatch.delenv("PYRO_MVAE_SMOKE_TEST", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    return lambda name: runpy.run_path(str(TUTORIALS / f"{name}.py"), run_name="__main__")


def significantly_positive(differences) -> bool:
    """The mean of per-image differences ``(N,)`` is more than two standard errors above zero."""
    mean, se = mean_and_stderr(differences)
    return mean > 2 * se


def test_first_model_beats_independent_pixels_and_rises_with_k(run_tutorial):
    ns = run_tutorial("first_model")
    assert significantly_positive(ns["ll"] - ns["independent"])  # "the VAE should do much better than both"
    sweep = ns["sweep"]
    assert significantly_positive(sweep[max(sweep)] - sweep[1])  # "the estimate rises quickly from K = 1"


def test_seed_prior_against_the_standard_prior(run_tutorial):
    """The text: the paired difference's standard error is several times smaller than either
    mean's, and on the digits the two priors score within a few tenths of a nat of each other."""
    ns = run_tutorial("seed_prior")
    seed, standard = ns["seed_ll"], ns["standard_ll"]  # (297,) nats each
    diff, diff_se = mean_and_stderr(seed - standard)
    assert 3 * diff_se < min(mean_and_stderr(seed)[1], mean_and_stderr(standard)[1])
    assert abs(diff) < 0.3


def test_trust_ais_and_bdmc(run_tutorial):
    ns = run_tutorial("trust")
    ais, iwae, k = ns["ais"][ns["AIS_STEPS"][-1]], ns["iwae"], ns["K"]  # AIS at the largest T, (N_AIS,)
    assert significantly_positive(ais - iwae[1][:len(ais)])  # AIS finds what importance sampling with K = 1 misses
    diff, se = mean_and_stderr(ais - iwae[k][:len(ais)])
    assert abs(diff) < 2 * se + 0.1  # "on the digits AIS certifies IWAE-5000 to within 0.1 nat"
    rows = list(ns["sandwich"]["by_steps"].values())  # BDMC by T, increasing
    assert rows[-1]["gap"] < rows[0]["gap"] and rows[-1]["gap"] < 1  # the sandwich closes as T grows


def test_own_networks_train_with_pyros_svi(run_tutorial):
    ns = run_tutorial("own_networks_svi")
    val_loss = ns["val_loss"]
    assert val_loss[-1] < val_loss[0] - 5  # nats per image: the plain SVI loop trains the own networks


def test_clusters_labels_beat_the_best_unsupervised_model(run_tutorial):
    ns = run_tutorial("clusters")
    assert ns["vade"]["cluster_accuracy"] > 0.2 and ns["marginal"]["cluster_accuracy"] > 0.2  # chance: ~0.1
    assert ns["m2"]["classification_error"] < 1 - ns["best_unsupervised"]
