"""Components from the user's own code (issue 23, item 4): `pyro_mvae.register` in Python and
entry points of an installed package make command-line options with the built-ins' checks; a
run records the package, and is refused by name with it when the package is gone. A plugin fails
alone (issue 34, item 3): an entry point that cannot be loaded is reported, in one line with its
package and the fix, only where its component is named or its group listed; a plugin's module
imports from the package root."""

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
from torch import nn

import pyro_mvae
from doc_pages import block_after
from pyro_mvae import build_vae, plugins, register
from pyro_mvae.cli import main
from pyro_mvae.compose import GROUP_NAMES, groups
from pyro_mvae.config import BROKEN, option
from pyro_mvae.errors import ConfigError, PluginError, UnknownNameError
from pyro_mvae.models import registry
from pyro_mvae.models.nets import MLPConfig, NetKind
from pyro_mvae.models.priors import StandardPrior

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


def install(site: Path, name: str, version: str, entry_points: dict, modules: dict | None = None) -> None:
    """Install the package ``name`` under ``site`` the way pip leaves it: its modules (file name ->
    source) and a dist-info folder whose ``entry_points.txt`` holds ``entry_points`` (group ->
    entry name -> ``module:object``)."""
    site.mkdir(parents=True, exist_ok=True)
    for path, source in (modules or {}).items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(source)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{entry} = {target}\n" for entry, target in entries.items())
        for group, entries in entry_points.items()))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on ``sys.path`` to install packages in; the registries read its entry points
    afresh, and forget them afterwards."""
    kinds = plugins.KINDS.items()
    before = dict(BROKEN), {kind: set(table) for kind, (table, _) in kinds}, dict(plugins.PROVIDERS)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(plugins, "_loaded", False)
    yield site
    for kind, (table, _) in kinds:
        for name in set(table) - before[1][kind]:
            del table[name]
    for record, saved in ((BROKEN, before[0]), (plugins.PROVIDERS, before[2])):
        record.clear()
        record.update(saved)


@pytest.fixture
def installed(site):
    """A package `my-priors` 1.0 whose entry point names `wide` in the group `pyro_mvae.priors`."""
    install(site, "my-priors", "1.0", {"pyro_mvae.priors": {"wide": "my_priors:WidePrior"}},
            {"my_priors/__init__.py": PLUGIN})
    yield site


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


def test_an_entry_point_without_its_object_is_named_with_its_package(installed, tmp_path, capsys):
    entry_points = installed / "my_priors-1.0.dist-info" / "entry_points.txt"
    entry_points.write_text("[pyro_mvae.priors]\nwide = my_priors:Gone\n")
    assert main(["train", "prior=wide", *TINY, f"run_dir={tmp_path / 'run'}"]) == 2
    assert capsys.readouterr().err == (
        "pyro-mvae: error: prior 'wide' of the package my-priors 1.0 cannot be used: its entry point "
        "wide = my_priors:Gone (group pyro_mvae.priors) fails with AttributeError: module 'my_priors' has no "
        "attribute 'Gone'; pip uninstall my-priors, or fix the module my_priors\n")
    assert not (tmp_path / "run").exists()


def _cli(*args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m pyro_mvae.cli ARGS`` in a fresh process that sees the packages of ``site``."""
    root = Path(pyro_mvae.__file__).resolve().parents[1]
    path = os.pathsep.join([str(site), str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "pyro_mvae.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}, timeout=300)


def test_a_package_that_cannot_be_imported_breaks_nothing_else(site, tmp_path, capsys):
    install(site, "broken-priors", "0.3", {"pyro_mvae.priors": {"broken": "broken_priors_gone:BrokenPrior"}})
    line = ("prior 'broken' of the package broken-priors 0.3 cannot be used: its entry point broken = "
            "broken_priors_gone:BrokenPrior (group pyro_mvae.priors) fails with ModuleNotFoundError: No module "
            "named 'broken_priors_gone'; pip uninstall broken-priors, or fix the module broken_priors_gone")
    # a fresh process: `import pyro_mvae` (which the command does first) works, and naming the component
    # is refused with one line and no traceback
    named = _cli("train", "prior=broken", *TINY, f"run_dir={tmp_path / 'named'}", site=site, cwd=tmp_path)
    assert named.returncode == 2 and "Traceback" not in named.stderr, named.stderr
    assert named.stderr.splitlines()[-1:] == [f"pyro-mvae: error: {line}"], named.stderr  # the whole message
    assert not (tmp_path / "named").exists()
    listed = _cli("--help", site=site, cwd=tmp_path)  # the listing of every group's options
    assert listed.returncode == 2 and "Traceback" not in listed.stderr, listed.stderr
    assert listed.stderr.splitlines()[-1:] == [f"pyro-mvae: error: {line}"], listed.stderr
    assert "; prior (standard, mixture, factorized_mixture, vamp, flow); guide (" in listed.stdout

    run = tmp_path / "run"  # everything else works
    assert main(["train", *TINY, f"run_dir={run}"]) == 0
    assert json.loads((run / "environment.json").read_text())["plugins"] == {}
    assert main(["evaluate", str(run), "-K", "10", "--no-figures"]) == 0
    capsys.readouterr()
    assert main(["train", "prior=brokn", *TINY, f"run_dir={run}_2"]) == 2
    assert capsys.readouterr().err == ("pyro-mvae: error: unknown prior 'brokn'; valid prior names: "
                                       f"factorized_mixture, flow, mixture, standard, vamp; {line}\n")
    with pytest.raises(PluginError, match="pip uninstall broken-priors") as refused:
        build_vae(64, {"name": "broken"}, {"name": "gaussian"}, {"name": "bernoulli"},
                  {"name": "mlp", "hidden": [8], "latent_dim": 2})
    assert isinstance(refused.value, ConfigError) and not isinstance(refused.value, UnknownNameError)


def test_the_group_names_are_the_groups_without_reading_a_registry_on_import():
    assert GROUP_NAMES == tuple(groups())  # named in the module, so that importing it reads no registry


PLUGIN_PAGE = "docs/contributing.md"


def test_the_documented_plugin_imports_from_the_package_root_and_trains(site, tmp_path):
    """The contributing guide's plugin package, installed from its module and pyproject.toml, with
    every name of ``pyro_mvae.__all__`` imported at the top of its module: the entry point is
    loaded after ``import pyro_mvae`` has finished, in a fresh process, and the net trains."""
    project = tomllib.loads(block_after(PLUGIN_PAGE, "<!-- plugin-pyproject -->", "toml"))["project"]
    (name,) = project["entry-points"]["pyro_mvae.nets"]
    module = f"from pyro_mvae import {', '.join(pyro_mvae.__all__)}  # noqa: F401\n" \
        + block_after(PLUGIN_PAGE, "<!-- plugin-module -->")
    install(site, project["name"], project["version"], project["entry-points"], {"my_nets.py": module})
    run = tmp_path / "run"
    done = _cli("train", f"net={name}", "net.width=3", *TINY, f"run_dir={run}", site=site, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"net:\n  name: {name}\n  hidden:\n  - 16\n  latent_dim: 4\n  width: 3" in (run / "config.yaml").read_text()
    assert json.loads((run / "environment.json").read_text())["plugins"] == {f"net:{name}": "my-nets 1.0"}


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
