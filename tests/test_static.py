"""Static device and safety checks over the library code (no GPU needed to run them).

* no ``.cuda()``: tensors follow their module or input (``.to(x.device)``);
* no tensor created without ``device=`` outside a module's ``__init__`` (state created there is
  moved by ``module.to(device)``); a line may opt out with a ``# device:`` comment saying why;
* no ``torch.load`` without ``weights_only=True`` (a pickle can execute code).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "pyro_mvae").rglob("*.py"))
SCRIPTS = sorted((ROOT / "experiments").rglob("*.py"))
FACTORIES = {"zeros", "ones", "full", "empty", "randn", "rand", "randint", "arange", "tensor",
             "eye", "linspace", "as_tensor"}


def _calls(path: Path):
    """(call node, enclosing function name, source line) for every call in a file."""
    source = path.read_text()
    lines = source.splitlines()

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                yield child, function, lines[child.lineno - 1]
            yield from visit(child, name)

    yield from visit(ast.parse(source), None)


def _is_torch_attr(func, names) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr in names
            and isinstance(func.value, ast.Name) and func.value.id == "torch")


def _keywords(call) -> dict:
    return {k.arg: k.value for k in call.keywords}


@pytest.mark.parametrize("path", LIBRARY + SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_cuda_calls(path):
    bad = [line.strip() for call, _, line in _calls(path)
           if isinstance(call.func, ast.Attribute) and call.func.attr == "cuda"]
    assert not bad, f"{path.name}: use .to(device) instead of .cuda(): {bad}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_tensors_are_created_on_a_device(path):
    bad = [line.strip() for call, function, line in _calls(path)
           if _is_torch_attr(call.func, FACTORIES) and "device" not in _keywords(call)
           and function != "__init__" and "# device:" not in line]
    assert not bad, f"{path.name}: tensors created without device=: {bad}"


@pytest.mark.parametrize("path", LIBRARY + SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_torch_load_is_weights_only(path):
    bad = []
    for call, _, line in _calls(path):
        if _is_torch_attr(call.func, {"load"}):
            flag = _keywords(call).get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                bad.append(line.strip())
    assert not bad, f"{path.name}: torch.load without weights_only=True: {bad}"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The checks are not vacuous: a file with each fault is flagged."""
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\ndef f(x):\n    y = torch.zeros(3)\n    x.cuda()\n"
                   "    return torch.load('a.pt')\n")
    for check in (test_no_cuda_calls, test_library_tensors_are_created_on_a_device,
                  test_torch_load_is_weights_only):
        with pytest.raises(AssertionError):
            check(bad)


LAYERS = ["errors", "config", "storage", "distributions", "models", "infer", "data", "plugins", "tracking",
          "training", "compose", "runs", "evaluation", "session", "sweeps", "cli"]
"""Each module of pyro_mvae may import only from its own layer and the layers before it (docs/DESIGN.md)."""


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def _module_of(path: Path) -> str:
    return "pyro_mvae." + ".".join(path.relative_to(ROOT / "pyro_mvae").with_suffix("").parts).removesuffix(".__init__")


def _imports(source: str) -> list[str]:
    """The pyro_mvae modules a source imports from, at any depth (function-level imports too)."""
    return [node.module for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyro_mvae.")]


def forbidden_imports(module: str, source: str) -> list[str]:
    """The imports of ``source`` (the module ``module``) from a layer above its own."""
    own = _layer(module)
    return [] if own < 0 else [m for m in _imports(source) if _layer(m) > own]


@pytest.mark.parametrize("path", [p for p in LIBRARY if p.name != "__init__.py" or p.parent.name != "pyro_mvae"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_import_only_the_layers_below(path):
    above = forbidden_imports(_module_of(path), path.read_text())
    assert not above, f"{path.relative_to(ROOT)} ({LAYERS[_layer(_module_of(path))]}) imports a higher layer: {above}"


def test_the_layer_rule_catches_an_import_from_above():
    assert forbidden_imports("pyro_mvae.data.splits", "def f():\n    from pyro_mvae.training.train import fit\n") \
        == ["pyro_mvae.training.train"]
    assert forbidden_imports("pyro_mvae.training.train", "from pyro_mvae.data.splits import Split\n") == []


def test_no_two_modules_import_each_other():
    """Issue 46: no import circle of two files (models/registry ↔ models/vae and
    training/loggers ↔ training/tracking were the last)."""
    graph = {_module_of(p): set(_imports(p.read_text())) for p in LIBRARY}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a != b and a in graph.get(b, set())})
    assert not pairs, pairs
