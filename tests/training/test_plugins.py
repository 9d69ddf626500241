"""Components from the user's own code (issue 23, item 4): `pyro_mvae.register` in Python and
entry points of an installed package make command-line options with the built-ins' checks; a
run records the package, and is refused by name with it when the package is gone."""

import importlib
import json
from dataclasses import dataclass

import pytest
from torch import nn

from pyro_mvae import register
from pyro_mvae.cli import main
from pyro_mvae.config import option
from pyro_mvae.errors import ConfigError
from pyro_mvae.models import registry
from pyro_mvae.models.nets import MLPConfig, NetKind
from pyro_mvae.models.priors import StandardPrior
from pyro_mvae.training import plugins

TINY = ["trainer.epochs=1", "trainer.eval_samples=10", "trainer.figures=false", "trainer.progress=false",
        "net.hidden=[16]", "net.latent_dim=4"]
PLUGIN = '''
from dataclasses import dataclass
import torch
from pyro_mvae.config import option
from pyro_mvae.models.base import PriorConfig
from pyro_mvae.models.priors import StandardPrior
import pyro.distributions as dist


@dataclass
class WideConfig(PriorConfig):
    scale: float = option(2.0, "σ of every dimension")

    def check(self):
        self.positive("scale")


class WidePrior(StandardPrior):
    name = "wide"
    Config = WideConfig

    def __init__(self, latent_dim, **options):
        super().__init__(latent_dim)
        self.register_buffer("scale", torch.full((latent_dim,), self.configure(options).scale))

    def marginal(self):
        return dist.Normal(torch.zeros_like(self.scale), self.scale).to_event(1)
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A package `my-priors` 1.0, installed the way pip leaves it: its module and a dist-info
    folder whose entry_points.txt names `wide` in the group `pyro_mvae.priors`."""
    site = tmp_path / "site"
    (site / "my_priors").mkdir(parents=True)
    (site / "my_priors" / "__init__.py").write_text(PLUGIN)
    info = site / "my_priors-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-priors\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pyro_mvae.priors]\nwide = my_priors:WidePrior\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(plugins, "_loaded", False)
    yield site
    registry.PRIORS.pop("wide", None)
    plugins.PROVIDERS.pop("prior:wide", None)


def test_an_installed_package_makes_a_checked_option_and_is_named_when_gone(installed, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "prior=wide", "prior.scale=-1", *TINY, f"run_dir={run}"]) == 2
    assert "prior.scale must be" in capsys.readouterr().err
    assert main(["train", "prior=wide", "guide=marginal_mixture", *TINY, f"run_dir={run}"]) == 2
    assert "prior 'wide' does not have it" in capsys.readouterr().err
    assert main(["train", "prior=wide", "prior.scale=1.5", *TINY, f"run_dir={run}"]) == 0
    assert json.loads((run / "environment.json").read_text())["plugins"] == {"prior:wide": "my-priors 1.0"}
    assert "my_priors" not in (run / "config.yaml").read_text()  # the name only, never an import path
    assert main(["evaluate", str(run), "-K", "10", "--no-figures"]) == 0
    registry.PRIORS.pop("wide")  # uninstalled
    monkeypatch.setattr(plugins, "_loaded", True)
    capsys.readouterr()
    assert main(["evaluate", str(run), "-K", "10", "--no-figures"]) == 2
    assert "trained with prior 'wide' from the package my-priors 1.0, which is not installed here: " \
           "pip install my-priors" in capsys.readouterr().err


def test_a_package_whose_entry_point_cannot_load_is_named(installed, capsys):
    entry_points = installed / "my_priors-1.0.dist-info" / "entry_points.txt"
    entry_points.write_text("[pyro_mvae.priors]\nwide = my_priors:Gone\n")
    assert main(["train", *TINY]) == 2
    assert "the installed package my-priors 1.0 registers prior 'wide' (my_priors:Gone)" in capsys.readouterr().err


def test_register_checks_what_it_is_given():
    class Unnamed(StandardPrior):
        name = "other"

    with pytest.raises(ConfigError, match="unknown kind 'posterior'"):
        register("posterior", "x", StandardPrior)
    with pytest.raises(ConfigError, match="must be a subclass of Prior"):
        register("prior", "standard", dict)
    with pytest.raises(ConfigError, match="named 'other' itself"):
        register("prior", "renamed", Unnamed)
    register("prior", "other", Unnamed)
    with pytest.raises(ConfigError, match="already registered"):
        register("prior", "other", type("Other", (Unnamed,), {}))
    registry.PRIORS.pop("other")
    register("prior", "standard", StandardPrior)  # the same component again: nothing to replace


@dataclass
class TinyCNNConfig(MLPConfig):
    """The options of a user's net: its channels, and the MLP's hidden sizes and latent_dim."""

    width: int = option(4, "channels of the one convolution")

    def check(self):
        super().check()
        self.at_least("width", 1)


def tiny_cnn_body(event_shape, cfg) -> nn.Module:
    """x ``(B, C, H, W)`` -> features ``(B, hidden[-1])``."""
    c, h, w = event_shape
    return nn.Sequential(nn.Conv2d(c, cfg.width, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(cfg.width * h * w, cfg.hidden[-1]), nn.ReLU())


def tiny_cnn_decoder(event_shape, cfg) -> nn.Module:
    """z ``(B, latent_dim)`` -> logits ``(B, C, H, W)``."""
    return nn.Sequential(nn.Linear(cfg.latent_dim, cfg.hidden[-1]), nn.ReLU(),
                         nn.Linear(cfg.hidden[-1], event_shape[0] * event_shape[1] * event_shape[2]),
                         nn.Unflatten(1, tuple(event_shape)))


@pytest.fixture
def tiny_cnn():
    register("net", "tiny_cnn", NetKind("tiny_cnn", tiny_cnn_body, tiny_cnn_decoder, TinyCNNConfig))
    yield
    registry.NETS.pop("tiny_cnn")


def test_a_net_registered_in_python_trains_evaluates_and_resumes_from_the_command_line(tiny_cnn, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "net=tiny_cnn", "net.width=0", *TINY, f"run_dir={run}"]) == 2
    assert "net.width must be" in capsys.readouterr().err
    assert main(["train", "net=tiny_cnn", "net.width=3", "prior=factorized_mixture", "guide=relaxed_mixture",
                 *TINY, f"run_dir={run}"]) == 0
    assert "net:\n  name: tiny_cnn\n  hidden:\n  - 16\n  latent_dim: 4\n  width: 3" in (run / "config.yaml").read_text()
    assert main(["evaluate", str(run), "-K", "10", "--no-figures"]) == 0
    assert main(["train", f"resume={run}", "trainer.epochs=2"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]  # the second epoch resumed
