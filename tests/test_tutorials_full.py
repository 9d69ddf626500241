"""Each tutorial at its full budget, with the comparison its text states checked (slow: minutes to
tens of minutes each on one thread; run with ``python -m pytest -m slow tests/test_tutorials_full.py``).

The docs are built at the smoke budget (``PYRO_MVAE_SMOKE_TEST=1``), where the models are barely
trained and each tutorial says so; the text quotes full-budget runs, and these tests are what makes
the text true. The oracle of each is the comparison the tutorial's prose makes, as a paired
difference over the same test images that must be more than two standard errors from zero.
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
    ns = run_tutorial("seed_prior")
    assert significantly_positive(ns["seed_ll"] - ns["standard_ll"])


def test_trust_ais_and_bdmc(run_tutorial):
    ns = run_tutorial("trust")
    t_small, t_large = ns["AIS_STEPS"]
    ais, iwae, k = ns["ais"], ns["iwae"], ns["K"]
    assert significantly_positive(ais[t_large] - iwae[1][:len(ais[t_large])])  # AIS beats importance sampling
    rows = list(ns["sandwich"]["by_steps"].values())
    assert rows[-1]["gap"] < rows[0]["gap"]  # the BDMC sandwich closes as T grows
    assert rows[-1]["lower"] <= rows[-1]["upper"] + 2 * rows[-1]["gap_se"]
    assert k == max(iwae)


def test_own_networks_train_with_pyros_svi(run_tutorial):
    ns = run_tutorial("own_networks_svi")
    val_loss = ns["val_loss"]
    assert val_loss[-1] < val_loss[0] - 5  # nats per image: the plain SVI loop trains the own networks


def test_clusters_labels_beat_the_best_unsupervised_model(run_tutorial):
    ns = run_tutorial("clusters")
    assert ns["vade"]["cluster_accuracy"] > 0.2 and ns["marginal"]["cluster_accuracy"] > 0.2  # chance: ~0.1
    assert ns["m2"]["classification_error"] < 1 - ns["best_unsupervised"]
