"""Figures say what they show: the latent-marginals figure of two models names each one's prior."""

import pytest

from pyro_mvae import build_vae
from pyro_mvae.data import load_digits
from pyro_mvae.evaluation import figures


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


def _title(fig) -> str:
    return (fig._suptitle.get_text() if fig._suptitle else "") or " ".join(ax.get_title() for ax in fig.axes)


def _inside(fig, legend, ax) -> bool:
    """Whether ``legend``'s box overlaps ``ax``'s plotting area (in display coordinates)."""
    fig.canvas.draw()
    box, area = legend.get_window_extent(), ax.get_window_extent()
    return box.x0 < area.x1 and box.x1 > area.x0 and box.y0 < area.y1 and box.y1 > area.y0


@pytest.mark.parametrize("guide,tau", [("gaussian", False), ("relaxed_mixture", True)])
def test_every_figure_of_a_run_has_a_title_and_tau_only_with_a_temperature(guide, tau, monkeypatch, tmp_path):
    """Issue 45: titles on every figure; no τ curve for a guide without τ; legends outside the
    curves of the training figure; integer ticks for the counts of images of the k̂ histogram."""
    from pyro_mvae.cli import main

    run = tmp_path / "run"
    assert main(["train", "trainer.epochs=2", "trainer.eval_samples=100", "trainer.progress=false", f"guide={guide}",
                 "net.hidden=[16]", "net.latent_dim=3", "trainer.figures=false", f"run_dir={run}"]) == 0
    saved = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.update({path.stem: fig}))
    assert main(["evaluate", str(run), "-K", "100", "--limit", "60"]) == 0
    assert {"samples", "reconstructions", "latent_map", "latent_marginals", "interpolations", "training_curves",
            "k_sweep", "khat"} <= set(saved)
    for name, fig in saved.items():
        assert _title(fig).strip(), name
    curves = saved["training_curves"]
    assert f"guide={guide}" in _title(curves)
    labels = {line.get_label() for ax in curves.axes for line in ax.get_lines()}
    assert ("τ" in labels) == tau and "β" in labels
    for ax in curves.axes:
        if ax.get_legend() is not None:
            assert not any(_inside(curves, ax.get_legend(), other) for other in curves.axes[:2])
    khat = saved["khat"].axes[0]
    assert all(float(t).is_integer() for t in khat.get_yticks())
