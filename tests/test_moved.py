"""Issue 46: the modules that moved keep their 0.2 import paths for one release; each old path
warns (DeprecationWarning, naming the new one) and is the new module itself."""

import importlib
import sys

import pytest

MOVED = {"pyro_mvae.training.data": "pyro_mvae.data.splits", "pyro_mvae.training.labelled": "pyro_mvae.data.labelled",
         "pyro_mvae.training.datasets": "pyro_mvae.data", "pyro_mvae.training.datasets.idx": "pyro_mvae.data.idx",
         "pyro_mvae.training.loggers": "pyro_mvae.tracking.loggers",
         "pyro_mvae.training.tracking": "pyro_mvae.tracking.mlflow_runs",
         "pyro_mvae.training.provenance": "pyro_mvae.tracking.provenance",
         "pyro_mvae.training.storage": "pyro_mvae.storage", "pyro_mvae.training.plugins": "pyro_mvae.plugins",
         "pyro_mvae.training.config": "pyro_mvae.compose", "pyro_mvae.training.runs": "pyro_mvae.runs"}


@pytest.mark.parametrize("old,new", MOVED.items())
def test_an_old_path_is_the_new_module_with_a_warning(old, new, monkeypatch):
    for name in [n for n in sys.modules if n == old or n.startswith(old + ".")]:
        monkeypatch.delitem(sys.modules, name)
    parent = old.rsplit(".", 1)[0]
    if parent in sys.modules and parent != "pyro_mvae.training":
        monkeypatch.delitem(sys.modules, parent)
    with pytest.warns(DeprecationWarning, match=f"moved to {new.rsplit('.', 1)[0] if old.endswith('.idx') else new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_the_readmes_old_import_still_works(monkeypatch):
    monkeypatch.delitem(sys.modules, "pyro_mvae.training.datasets", raising=False)
    with pytest.warns(DeprecationWarning):
        from pyro_mvae.training.datasets import load_digits  # noqa: F401  (0.2's README)
    from pyro_mvae.data import load_digits as new
    assert load_digits is new
