"""Figures say what they show: the latent-marginals figure of two models names each one's prior."""

import pytest

from pyro_mvae import build_vae
from pyro_mvae.evaluation import figures
from pyro_mvae.training.datasets import load_digits


@pytest.mark.parametrize("prior", ["standard", "factorized_mixture", "mixture"])
def test_latent_marginals_is_titled_by_its_prior(prior, monkeypatch, tmp_path):
    data = load_digits()
    vae = build_vae(data.event_shape, prior={"name": prior}, guide={"name": "gaussian"},
                    likelihood={"name": "bernoulli"}, net={"name": "mlp", "hidden": [32], "latent_dim": 4})
    saved = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.update(fig=fig, path=path))
    figures.latent_marginals(vae, data.test.x[:100], tmp_path / "m.png", dims=3)
    title = saved["fig"]._suptitle.get_text()
    assert title.startswith(f"prior={prior}: ") and "the 3 most active dimensions" in title
    panels = [ax.get_title() for ax in saved["fig"].axes if ax.get_title()]
    assert len(panels) == 3 and all(t.startswith("z_") for t in panels)
