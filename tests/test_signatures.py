"""docs/_ext/signatures.py: the API pages show a dataclass's defaults by name, not by repr (issue 45:
`Objective(Config=<class '...ObjectiveConfig'>, options=<factory>)`)."""

import importlib.util
import inspect
from pathlib import Path

from pyro_mvae.infer.objectives import Objective
from pyro_mvae.models.nets import NetKind

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("signatures", ROOT / "docs" / "_ext" / "signatures.py")
signatures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(signatures)


def test_class_defaults_read_as_names_and_factories_as_dots():
    for cls in (Objective, NetKind):
        raw = str(inspect.signature(cls))  # what autodoc would print
        shown = signatures.readable(raw)
        assert "<class" not in shown and "<factory>" not in shown, shown
    raw = str(inspect.signature(Objective))
    assert "<class 'pyro_mvae.infer.objectives.ObjectiveConfig'>" in raw  # the old output the check fails on
    shown = signatures.readable(raw)
    assert "= ObjectiveConfig" in shown and "options: dict = ..." in shown
    assert signatures.readable(None) is None
