"""Checks on the API reference, reported as Sphinx warnings so that ``sphinx-build -W`` fails.

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
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys

from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGE = "pyro_mvae"
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
        return f"{inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]}"
    except (TypeError, OSError):
        return None


def _report(app, obj, fallback: str) -> None:
    name = _full_name(obj, fallback)
    reported = app.env.temp_data.setdefault("api_checks_reported", set())
    if name in reported:
        return
    reported.add(name)
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


def _documented(domain_objects, module, name: str) -> bool:
    candidates = {f"{module.__name__}.{name}"}
    value = getattr(module, name)
    fn = _function(value)
    if inspect.isclass(fn) or inspect.isroutine(fn):
        candidates.add(f"{fn.__module__}.{fn.__qualname__}")
    else:  # data: documented under the name of a module that holds the same object
        candidates |= {f"{m}.{name}" for m, mod in list(sys.modules.items())
                       if m.startswith(PACKAGE) and getattr(mod, name, None) is value}
    return bool(candidates & domain_objects)


def check_all_names(app, env) -> None:
    """``env-check-consistency``: each name in the ``__all__`` of a documented module is documented."""
    domain = env.domains["py"]
    objects = {name for name, *_ in domain.get_objects()}
    modules = sorted(name for name, _d, objtype, *_ in domain.get_objects()
                     if objtype == "module" and (name == PACKAGE or name.startswith(PACKAGE + ".")))
    for modname in modules:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            if name.startswith("_"):
                continue  # __version__
            if not _documented(objects, module, name):
                logger.warning("%s.%s is in %s.__all__ but documented nowhere", modname, name, modname,
                               type="api_checks", subtype="undocumented_all")


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", process_docstring)
    app.connect("autodoc-skip-member", skip_member)
    app.connect("env-check-consistency", check_all_names)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
