"""docs/_ext/registry_tables.py: the API reference shows mapping constants as tables of names and
descriptions, and no constant of the package as a long repr."""

import ast
import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from pathlib import Path

import pyro_mvae
from pyro_mvae.data import DATASETS
from pyro_mvae.evaluation.compare import LATEX
from pyro_mvae.infer.objectives import OBJECTIVES
from pyro_mvae.models.components import PRIORS
from pyro_mvae.models.nets import NETS
from pyro_mvae.plugins import KINDS

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("registry_tables", ROOT / "docs" / "_ext" / "registry_tables.py")
registry_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(registry_tables)


def _documented_constants():
    """(qualified name, value, docstring) of every module-level constant of the package with a
    docstring (a string right after the assignment, as autodoc reads it)."""
    for info in pkgutil.walk_packages(pyro_mvae.__path__, "pyro_mvae."):
        module = importlib.import_module(info.name)
        body = ast.parse(Path(module.__file__).read_text()).body
        for node, after in zip(body, body[1:]):
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if isinstance(target, ast.Name) and documented and isinstance(after.value.value, str):
                yield f"{info.name}.{target.id}", getattr(module, target.id), after.value.value


def _rows(lines):
    """name cell -> description cell of a table's lines."""
    names = [line.removeprefix("   * - ") for line in lines if line.startswith("   * - ")]
    cells = [line.removeprefix("     - ") for line in lines if line.startswith("     - ")]
    return dict(zip(names, cells))


def test_no_documented_mapping_shows_a_long_repr():
    mappings = [(n, v, d) for n, v, d in _documented_constants() if isinstance(v, Mapping)]
    assert {"pyro_mvae.models.components.PRIORS", "pyro_mvae.infer.objectives.OBJECTIVES",
            "pyro_mvae.evaluation.compare.LATEX"} <= {n for n, _, _ in mappings}
    problems = [registry_tables.shown_too_long(n, v, d) for n, v, d in mappings]
    assert [p for p in problems if p] == []


def test_a_long_repr_without_hide_value_is_named():
    long = {f"name{i}": "x" * 20 for i in range(10)}
    problem = registry_tables.shown_too_long("pyro_mvae.X", long, "Name -> text.")
    assert problem.startswith("pyro_mvae.X: its value's repr is") and ":meta hide-value:" in problem
    assert registry_tables.shown_too_long("pyro_mvae.X", long, "Name -> text.\n\n:meta hide-value:") is None
    assert registry_tables.shown_too_long("pyro_mvae.X", {"a": "b"}, "Name -> text.") is None


def test_a_registry_of_classes_is_a_row_per_name_with_a_link_and_first_sentence():
    lines = registry_tables.table(PRIORS)
    rows = _rows(lines)
    assert list(rows) == ["name"] + [f"``{name}``" for name in PRIORS]
    for name, cls in PRIORS.items():
        cell = rows[f"``{name}``"]
        assert cell.startswith(f":class:`~{cls.__module__}.{cls.__qualname__}`: ")
        assert "\n" not in cell and len(cell) < 300


def test_records_tuples_and_strings_are_described():
    datasets = _rows(registry_tables.table(DATASETS))
    assert datasets["``mnist``"].startswith(":func:`~pyro_mvae.data.idx.load_idx_set`")
    assert ":data:`~pyro_mvae.data.idx.IDX_SETS`" in datasets["``mnist``"]  # made absolute
    objectives = _rows(registry_tables.table(OBJECTIVES))
    assert objectives["``stratified``"].startswith(OBJECTIVES["stratified"].doc)
    assert objectives["``stratified``"].endswith("(:class:`~pyro_mvae.infer.stratified.StratifiedELBO`)")
    assert objectives["``trace``"] == ":class:`~pyro.infer.trace_elbo.Trace_ELBO`"  # the ELBO, not its options
    nets = _rows(registry_tables.table(NETS))
    assert nets["``mlp``"].startswith(":class:`~pyro_mvae.models.nets.PlainMLPConfig`: ")  # builders are lambdas
    assert nets["``gated_mlp``"].startswith(":class:`~pyro_mvae.models.nets.GatedMLPConfig`: ")  # not its init hook
    kinds = _rows(registry_tables.table(KINDS))
    assert kinds["``prior``"].startswith(":data:`~pyro_mvae.models.components.PRIORS`; "
                                         ":class:`~pyro_mvae.models.base.Prior`: ")
    latex = _rows(registry_tables.table(LATEX))
    assert latex["``_``"] == r"``\_``" and latex["``±``"] == r"``$\pm$``"
