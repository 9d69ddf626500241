"""Checks on the API reference, reported as Sphinx warnings so that ``sphinx-build -W`` fails,
and the little the reference needs besides autodoc.

Checks:

* A public module, class, exception, function, method or property of ``pyro_mvae`` that autodoc
  documents, or would document but for its missing docstring (``members`` without
  ``undoc-members`` silently drops it), must have a docstring of its own. A method may instead
  inherit the docstring of the ``pyro_mvae`` method it overrides; one inherited from PyTorch or
  Pyro (``forward``, ``log_prob``, ``expand``, ...) does not count: it describes their contract,
  not ours. Data (constants, registries) is not checked: autodoc shows it only with a docstring.
* Every name in the ``__all__`` of a documented ``pyro_mvae`` module is documented somewhere: under
  that module's name or under the name of the module that defines it.

Warnings name the object (``pyro_mvae.models.priors.MixturePrior.marginal``) and point at its
source line. Members inherited from other classes are not documented (no ``:inherited-members:``),
so they are not checked either.

Besides:

* Re-exported names resolve: ``pyro_mvae.VAE`` (and every other name of a documented module's
  ``__all__`` that is documented under the module that defines it, such as
  ``pyro_mvae.data.load_mnist``) becomes an alias of its one description, the way
  Sphinx's ``:canonical:`` option makes aliases. ``{py:class}`pyro_mvae.VAE``` then links to
  ``pyro_mvae.models.vae.VAE``; the alias is in ``objects.inv`` but not in the search index, and a
  short name such as ``VAE`` is never ambiguous (references prefer the canonical name).
* Private base classes (``_ScoreWeights``) are left out of a class's "Bases" line.
* :data:`NITPICK_IGNORE` is added to ``nitpick_ignore``: external names that no page of their
  project's documentation describes, so that no inventory can map them to a URL.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys

from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGE = "pyro_mvae"
NITPICK_IGNORE = [
    # Hydra's site (hydra.cc) has no API reference: no page documents its exception classes.
    ("py:exc", "hydra.errors.HydraException"),
    # OmegaConf is not one of the inventories, and no page of its documentation that we could
    # check describes this class.
    ("py:exc", "omegaconf.errors.OmegaConfBaseException"),
    # PyTorch's multiprocessing page documents spawn() but not the exception it raises.
    ("py:exc", "torch.multiprocessing.ProcessRaisedException"),
]
"""``(role, target)`` pairs whose missing target is not reported (see the inventories' README)."""

CHECKED = {"module", "class", "exception", "function", "method", "classmethod", "staticmethod", "property",
           "decorator"}


def _function(obj):
    """The function whose docstring documents ``obj`` (unwrapping descriptors), or ``obj``."""
    if isinstance(obj, (classmethod, staticmethod)):
        return obj.__func__
    if isinstance(obj, property):
        return obj.fget
    if isinstance(obj, dataclasses.Field):
        return None
    return obj


def _ours(obj) -> bool:
    module = getattr(_function(obj), "__module__", None) or ""
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _own_docstring(obj) -> str:
    """The docstring ``obj`` itself was written with: not inherited, not generated."""
    if inspect.ismodule(obj):
        return (obj.__doc__ or "").strip()
    if inspect.isclass(obj):
        doc = (obj.__dict__.get("__doc__") or "").strip()
        if dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
            return ""  # the signature @dataclass writes when there is no docstring
        return doc
    if isinstance(obj, property) and obj.__doc__ and obj.fget is not None and obj.__doc__ != obj.fget.__doc__:
        return obj.__doc__.strip()  # property(fget, doc=...)
    fn = _function(obj)
    return ((getattr(fn, "__doc__", None) if fn is not None else None) or "").strip()


def _owner(obj):
    """The class that defines the method ``obj``, from its qualified name, or None."""
    fn = inspect.unwrap(_function(obj)) if callable(_function(obj)) else _function(obj)
    qualname = getattr(fn, "__qualname__", "")
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None or "." not in qualname or "<locals>" in qualname:
        return None
    owner = module
    for part in qualname.split(".")[:-1]:
        owner = getattr(owner, part, None)
    return owner if inspect.isclass(owner) else None


def _inherits_our_docstring(obj, name: str) -> bool:
    """Whether ``obj``, the method ``name`` of a class, overrides a documented method of one of
    ``pyro_mvae``'s own classes (whose docstring then holds for it too)."""
    owner = _owner(obj)
    if owner is None:
        return False
    for base in owner.__mro__[1:]:
        if name in base.__dict__ and _ours(base) and _own_docstring(base.__dict__[name]):
            return True
    return False


def _full_name(obj, fallback: str) -> str:
    fn = _function(obj)
    if inspect.ismodule(obj):
        return obj.__name__
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else fallback


def _location(obj) -> str | None:
    try:
        target = inspect.unwrap(_function(obj))
        return f"{inspect.getsourcefile(target)}:{max(1, inspect.getsourcelines(target)[1])}"
    except (TypeError, OSError):
        return None


_reported: set[str] = set()  # once per build, however many modules import the object


def _report(app, obj, fallback: str) -> None:
    name = _full_name(obj, fallback)
    if name in _reported:
        return
    _reported.add(name)
    logger.warning("public name without a docstring: %s", name, location=_location(obj),
                   type="api_checks", subtype="no_docstring")


def _missing(obj, name: str) -> bool:
    """A public object of ours, of a checked kind, with neither its own docstring nor one it may
    inherit from a ``pyro_mvae`` base class."""
    short = name.rsplit(".", 1)[-1]
    if short.startswith("_") or not _ours(obj):
        return False
    if not (inspect.ismodule(obj) or inspect.isclass(obj) or isinstance(obj, (classmethod, staticmethod, property))
            or inspect.isroutine(obj)):
        return False
    return not _own_docstring(obj) and not _inherits_our_docstring(obj, short)


def process_docstring(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``: a documented object whose docstring is not its own, or empty."""
    if what not in CHECKED:
        return
    if any(part.startswith("_") for part in name.split(".")):
        return
    if what == "module":
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            if not _own_docstring(obj):
                _report(app, obj, name)
        return
    if _missing(obj, name):
        _report(app, obj, name)


def skip_member(app, what, name, obj, skip, options):
    """``autodoc-skip-member``: a public member that autodoc leaves out for want of a docstring."""
    if skip and what in {"module", "class", "exception"} and _missing(obj, name):
        _report(app, obj, name)
    return None  # autodoc's decision stands


def process_bases(app, name, obj, options, bases) -> None:
    """``autodoc-process-bases``: leave private base classes of ours out of the "Bases" line."""
    bases[:] = [base for base in bases if not (inspect.isclass(base) and base.__name__.startswith("_")
                                                and _ours(base))] or bases


def _candidates(module, name: str) -> list[str]:
    """The names ``module.name`` may be documented under: its own, then where it is defined."""
    value = getattr(module, name)
    fn = _function(value)
    out = [f"{module.__name__}.{name}"]
    if inspect.isclass(fn) or inspect.isroutine(fn):
        out.append(f"{fn.__module__}.{fn.__qualname__}")
    else:  # data: documented under the name of a module that holds the same object
        out += sorted(f"{m}.{name}" for m, mod in list(sys.modules.items())
                      if m.startswith(PACKAGE) and getattr(mod, name, None) is value)
    return out


def _documented_modules(domain) -> list:
    return [importlib.import_module(name) for name in sorted(domain.modules)
            if name == PACKAGE or name.startswith(PACKAGE + ".")]


def _public_all(module) -> list[str]:
    return [name for name in getattr(module, "__all__", ()) if not name.startswith("_")]  # not __version__


def add_aliases(app, env) -> list[str]:
    """``env-updated``: each re-exported name of a documented module's ``__all__`` becomes an alias
    of the description of the object it names (``pyro_mvae.VAE`` -> ``pyro_mvae.models.vae.VAE``)."""
    from sphinx.domains.python import ObjectEntry

    domain = env.domains["py"]
    for module in _documented_modules(domain):
        for name in _public_all(module):
            alias, *canonical = _candidates(module, name)
            entry = domain.objects.get(alias)
            if entry is not None and not entry.aliased:
                continue  # documented under this very name
            found = [domain.objects[c] for c in canonical if c in domain.objects and not domain.objects[c].aliased]
            if found:
                domain.objects[alias] = ObjectEntry(found[0].docname, found[0].node_id, found[0].objtype, True)
    return []


def check_all_names(app, env) -> None:
    """``env-check-consistency``: each name in the ``__all__`` of a documented module is documented
    (under that name or its canonical one; an alias of :func:`add_aliases` does not count)."""
    domain = env.domains["py"]
    described = {name for name, entry in domain.objects.items() if not entry.aliased}
    for module in _documented_modules(domain):
        for name in _public_all(module):
            if not set(_candidates(module, name)) & described:
                logger.warning("%s.%s is in %s.__all__ but documented nowhere", module.__name__, name,
                               module.__name__, type="api_checks", subtype="undocumented_all")


def add_nitpick_ignore(app, config) -> None:
    """``config-inited``: add :data:`NITPICK_IGNORE` to the project's ``nitpick_ignore``."""
    config.nitpick_ignore = [*config.nitpick_ignore, *(p for p in NITPICK_IGNORE if p not in config.nitpick_ignore)]


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("builder-inited", lambda app: _reported.clear())
    app.connect("autodoc-process-docstring", process_docstring)
    app.connect("autodoc-skip-member", skip_member)
    app.connect("autodoc-process-bases", process_bases)
    app.connect("config-inited", add_nitpick_ignore)
    app.connect("env-updated", add_aliases)
    app.connect("env-check-consistency", check_all_names)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
