"""Write the intersphinx inventories ``python.inv``, ``numpy.inv``, ``torch.inv`` and ``pyro.inv``.

The documentation build never touches the network, so it cannot download the projects' own
``objects.inv``. These files are hand-made instead: each table below maps the external names that
our docstrings and type hints reference to the page and anchor that document them on that project's
site, following the site's URL scheme. They are small (tens of names, not the tens of thousands of
the real inventories); a name the build reports as unresolved gets a row here, or, where no page
documents it, an entry of ``NITPICK_IGNORE`` in ``docs/_ext/api_checks.py``.

Run ``python docs/_inventories/make_inventories.py`` after editing a table and commit the ``.inv``
files it writes next to itself (Sphinx inventory format version 2, zlib-compressed). The base URLs
are in ``intersphinx_mapping`` of ``docs/conf.py``; the URIs here are relative to them.
"""

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Each row: (name, Sphinx role in the py domain, URI relative to the project's base URL).
# A URI ending in "#" takes the name as its anchor.

PYTHON_VERSION = "3"
PYTHON = [
    # built-in types and constants
    *[(name, "class", "library/functions.html#") for name in ("bool", "float", "int", "object", "type")],
    *[(name, "class", "library/stdtypes.html#") for name in ("bytes", "dict", "frozenset", "list", "set", "str",
                                                           "tuple")],
    ("None", "data", "library/constants.html#"),
    ("NotImplemented", "data", "library/constants.html#"),
    # built-in exceptions
    *[(name, "exception", "library/exceptions.html#") for name in (
        "BaseException", "Exception", "ValueError", "TypeError", "KeyError", "LookupError", "RuntimeError",
        "OSError", "FileNotFoundError", "FloatingPointError", "ArithmeticError", "KeyboardInterrupt",
        "NotImplementedError", "SystemExit")],
    # modules and their names
    ("argparse", "module", "library/argparse.html#module-argparse"),
    ("argparse.ArgumentParser", "class", "library/argparse.html#"),
    ("argparse.Namespace", "class", "library/argparse.html#"),
    ("collections.abc", "module", "library/collections.abc.html#module-collections.abc"),
    *[(f"collections.abc.{name}", "class", "library/collections.abc.html#") for name in (
        "Callable", "Iterable", "Iterator", "Generator", "Mapping", "MutableMapping", "Sequence",
        "MutableSequence", "Set", "Collection", "Hashable", "Sized", "Container")],
    ("contextlib.contextmanager", "function", "library/contextlib.html#"),
    ("contextlib.AbstractContextManager", "class", "library/contextlib.html#"),
    ("dataclasses", "module", "library/dataclasses.html#module-dataclasses"),
    ("dataclasses.dataclass", "function", "library/dataclasses.html#"),
    ("dataclasses.field", "function", "library/dataclasses.html#"),
    ("dataclasses.Field", "class", "library/dataclasses.html#"),
    ("functools.partial", "function", "library/functools.html#"),
    ("importlib.metadata", "module", "library/importlib.metadata.html#module-importlib.metadata"),
    ("json", "module", "library/json.html#module-json"),
    ("os.PathLike", "class", "library/os.html#"),
    ("os.environ", "data", "library/os.html#"),
    ("pathlib", "module", "library/pathlib.html#module-pathlib"),
    ("pathlib.Path", "class", "library/pathlib.html#"),
    ("pathlib.PurePath", "class", "library/pathlib.html#"),
    ("signal", "module", "library/signal.html#module-signal"),
    ("signal.SIGINT", "data", "library/signal.html#"),
    ("signal.SIGTERM", "data", "library/signal.html#"),
    ("types.ModuleType", "class", "library/types.html#"),
    ("typing", "module", "library/typing.html#module-typing"),
    *[(f"typing.{name}", "data", "library/typing.html#") for name in (
        "Any", "Callable", "ClassVar", "Literal", "Optional", "Union")],
]

NUMPY_VERSION = "stable"
NUMPY = [
    ("numpy", "module", "reference/index.html#module-numpy"),
    ("numpy.ndarray", "class", "reference/generated/numpy.ndarray.html#"),
    ("numpy.dtype", "class", "reference/generated/numpy.dtype.html#"),
    ("numpy.random.RandomState", "class", "reference/random/legacy.html#"),
    ("numpy.random.Generator", "class", "reference/random/generator.html#"),
]

TORCH_VERSION = "stable"
TORCH = [
    ("torch", "module", "torch.html#module-torch"),
    ("torch.Tensor", "class", "tensors.html#"),
    ("torch.Size", "class", "size.html#"),
    ("torch.device", "class", "tensor_attributes.html#"),
    ("torch.dtype", "class", "tensor_attributes.html#"),
    ("torch.Generator", "class", "generated/torch.Generator.html#"),
    ("torch.no_grad", "class", "generated/torch.no_grad.html#"),
    ("torch.nn.Module", "class", "generated/torch.nn.Module.html#"),
    ("torch.nn.Sequential", "class", "generated/torch.nn.Sequential.html#"),
    ("torch.nn.Parameter", "class", "generated/torch.nn.parameter.Parameter.html#torch.nn.parameter.Parameter"),
    ("torch.optim.Optimizer", "class", "optim.html#"),
    ("torch.optim.Adam", "class", "generated/torch.optim.Adam.html#"),
    ("torch.autograd.Function", "class", "autograd.html#"),
    ("torch.distributions.Distribution", "class",
     "distributions.html#torch.distributions.distribution.Distribution"),
    ("torch.distributions.distribution.Distribution", "class", "distributions.html#"),
]
# The names autodoc writes for bases and annotations are where the classes are defined; the
# documentation files them under the public name (same page, same anchor).
TORCH_DEFINED_AT = {
    "torch.nn.modules.module.Module": "torch.nn.Module",
    "torch.nn.modules.container.Sequential": "torch.nn.Sequential",
    "torch.optim.optimizer.Optimizer": "torch.optim.Optimizer",
    "torch.optim.adam.Adam": "torch.optim.Adam",
    "torch.autograd.function.Function": "torch.autograd.Function",
}

PYRO_VERSION = "stable"
PYRO = [
    ("pyro.sample", "function", "primitives.html#pyro.primitives.sample"),
    ("pyro.plate", "class", "primitives.html#pyro.primitives.plate"),
    ("pyro.distributions.TorchDistribution", "class", "distributions.html#"),
    ("pyro.distributions.Distribution", "class", "distributions.html#"),
    # thin wrappers of torch.distributions, documented by pyro.distributions.torch under their short names
    *[(f"pyro.distributions.{name}", "class", "distributions.html#") for name in (
        "Bernoulli", "Categorical", "Independent", "MixtureSameFamily", "Normal", "OneHotCategorical",
        "RelaxedOneHotCategorical", "TransformedDistribution")],
    ("pyro.infer.svi.SVI", "class", "inference_algos.html#"),
    ("pyro.infer.elbo.ELBO", "class", "inference_algos.html#"),
    ("pyro.infer.trace_elbo.Trace_ELBO", "class", "inference_algos.html#"),
    ("pyro.infer.tracegraph_elbo.TraceGraph_ELBO", "class", "inference_algos.html#"),
    ("pyro.infer.traceenum_elbo.TraceEnum_ELBO", "class", "inference_algos.html#"),
    ("pyro.infer.trace_mean_field_elbo.TraceMeanField_ELBO", "class", "inference_algos.html#"),
    ("pyro.infer.renyi_elbo.RenyiELBO", "class", "inference_algos.html#"),
]
PYRO_DEFINED_AT = {
    "pyro.distributions.torch_distribution.TorchDistribution": "pyro.distributions.TorchDistribution",
    "pyro.distributions.distribution.Distribution": "pyro.distributions.Distribution",
    **{f"pyro.distributions.torch.{name}": f"pyro.distributions.{name}" for name in (
        "Bernoulli", "Categorical", "Independent", "MixtureSameFamily", "Normal", "OneHotCategorical",
        "RelaxedOneHotCategorical", "TransformedDistribution")},
    # pyro.infer re-exports its ELBOs; the documentation files them under their modules
    "pyro.infer.SVI": "pyro.infer.svi.SVI",
    "pyro.infer.ELBO": "pyro.infer.elbo.ELBO",
    "pyro.infer.Trace_ELBO": "pyro.infer.trace_elbo.Trace_ELBO",
    "pyro.infer.TraceGraph_ELBO": "pyro.infer.tracegraph_elbo.TraceGraph_ELBO",
    "pyro.infer.TraceEnum_ELBO": "pyro.infer.traceenum_elbo.TraceEnum_ELBO",
    "pyro.infer.TraceMeanField_ELBO": "pyro.infer.trace_mean_field_elbo.TraceMeanField_ELBO",
    "pyro.infer.RenyiELBO": "pyro.infer.renyi_elbo.RenyiELBO",
}

INVENTORIES = {
    "python": ("Python", PYTHON_VERSION, PYTHON, {}),
    "numpy": ("NumPy", NUMPY_VERSION, NUMPY, {}),
    "torch": ("PyTorch", TORCH_VERSION, TORCH, TORCH_DEFINED_AT),
    "pyro": ("Pyro", PYRO_VERSION, PYRO, PYRO_DEFINED_AT),
}


def rows(table, aliases) -> list[tuple[str, str, str]]:
    """The table's rows with each alias given the URI of the name it stands for; sorted, unique."""
    uris = {name: (role, uri + name if uri.endswith("#") else uri) for name, role, uri in table}
    out = dict(uris)
    for alias, name in aliases.items():
        out[alias] = uris[name]
    return sorted((name, role, uri) for name, (role, uri) in out.items())


def inventory(project: str, version: str, entries) -> bytes:
    """Sphinx inventory version 2: four header lines, then zlib-compressed ``name domain:role
    priority uri dispname`` lines (``-``: the display name is the name)."""
    header = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: {version}\n"
              "# The remainder of this file is compressed using zlib.\n")
    body = "".join(f"{name} py:{role} 1 {uri} -\n" for name, role, uri in entries)
    return header.encode() + zlib.compress(body.encode(), 9)


def main() -> None:
    for stem, (project, version, table, aliases) in INVENTORIES.items():
        entries = rows(table, aliases)
        (HERE / f"{stem}.inv").write_bytes(inventory(project, version, entries))
        print(f"{stem}.inv: {len(entries)} names")


if __name__ == "__main__":
    main()
