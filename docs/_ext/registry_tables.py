"""Mapping constants of ``pyro_mvae`` (registries, capability flags, tables) documented as tables.

Autodoc shows a documented constant's value as its ``repr``: for a registry of classes that is
thousands of characters on one line. For every ``pyro_mvae`` constant that is a mapping, this
appends to its docstring a table with one row per key: the name and a one-line description
(with a link to the class or function behind it where there is one). A mapping whose ``repr``
is longer than :data:`MAX_REPR` characters must carry ``:meta hide-value:`` in its docstring, else
a warning (an error under ``sphinx-build -W``) names it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import sys
from collections.abc import Mapping

from pyro_mvae.config import Settings

PACKAGE = "pyro_mvae"
MAX_REPR = 120
"""The longest ``repr`` autodoc may show as a constant's value."""


def _first_sentence(obj) -> str:
    """The first sentence of ``obj``'s docstring, its references to names of its own module
    (``:data:`IDX_SETS```) made absolute, since the table is on another module's page."""
    doc = inspect.getdoc(obj) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    end = paragraph.find(". ")
    sentence = paragraph if end < 0 else paragraph[:end + 1]
    return re.sub(r":(\w+):`([A-Za-z_]\w*)`", rf":\1:`~{obj.__module__}.\2`", sentence)


def _link(obj) -> str:
    """A cross-reference to a class or function: ``:class:`~module.Name``` (or ``:func:``)."""
    role = "class" if inspect.isclass(obj) else "func"
    return f":{role}:`~{obj.__module__}.{obj.__qualname__}`"


def _documented_name(obj) -> str | None:
    """``module.NAME`` of the ``pyro_mvae`` module constant that is ``obj``, where it is assigned
    (not where it is imported), if any."""
    for name, module in sorted(sys.modules.items()):
        if not name.startswith(PACKAGE) or module is None:
            continue
        for attr, value in vars(module).items():
            if value is obj and attr.isupper() and re.search(rf"^{attr}\b.*=", inspect.getsource(module), re.M):
                return f"{name}.{attr}"
    return None


def _code(obj) -> object | None:
    """The function or class behind a field value (a partial's function), or None (lambdas)."""
    if isinstance(obj, functools.partial):
        obj = obj.func
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__name__ != "<lambda>":
        return obj
    return None


def _describe(value) -> str:
    """One line of reStructuredText that says what a mapping's value is."""
    if isinstance(value, str):
        return f"``{value}``" if " " not in value else value.replace("\\", "\\\\").replace("`", "\\`")
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{_link(value)}: {_first_sentence(value)}"
    if isinstance(value, tuple):
        return "; ".join(_describe(v) for v in value)
    if isinstance(value, Mapping):
        name = _documented_name(value)
        return f":data:`~{name}`" if name else f"a mapping of {len(value)}"
    if dataclasses.is_dataclass(value):
        return _describe_record(value)
    return f"``{value!r}``"


def _describe_record(record) -> str:
    """A registered record (a data set, network kind, objective): its own text and the class or
    function it registers (an objective's ELBO, a data set's loader), linked; a record with
    neither (a network kind, whose builders are lambdas) by its options class."""
    fields = [getattr(record, f.name) for f in dataclasses.fields(record)
              if f.name not in ("name", "initialise")]  # a network kind's initialisation hook is not what it registers
    texts = [v for v in fields if isinstance(v, str)]
    text = next((v for v in texts if " " in v), texts[0] if texts else None)  # a sentence before a word
    code = [c for c in map(_code, fields) if c is not None]
    registered = next((c for c in code if not (inspect.isclass(c) and issubclass(c, Settings))), None)
    if registered is None:
        return _describe(text) if text else _describe(code[0]) if code else f"``{record!r}``"
    if text is None:
        return _describe(registered)
    return _link(registered) if text == registered.__name__ else f"{_describe(text)} ({_link(registered)})"


def table(mapping: Mapping) -> list[str]:
    """The lines of a reStructuredText list-table of ``mapping``: a header row, then per key its
    name and :func:`_describe` of its value."""
    lines = ["", ".. list-table::", "   :header-rows: 1", "   :widths: 1 4", "",
             "   * - name", "     - what it is"]
    for key, value in mapping.items():
        lines += [f"   * - ``{key}``", f"     - {_describe(value)}"]
    return lines


def shown_too_long(name: str, obj, docstring: str) -> str | None:
    """What is wrong with documenting ``obj`` under ``name``: a ``repr`` over :data:`MAX_REPR`
    characters shown as its value (no ``:meta hide-value:`` in ``docstring``), or None."""
    if len(repr(obj)) <= MAX_REPR or ":meta hide-value:" in docstring:
        return None
    return (f"{name}: its value's repr is {len(repr(obj))} characters; add ':meta hide-value:' to its "
            "docstring (the table below it lists the entries)")


def _append_table(app, what, name, obj, options, lines) -> None:
    if what not in ("data", "attribute") or not name.startswith(PACKAGE) or not isinstance(obj, Mapping) or not obj:
        return
    problem = shown_too_long(name, obj, "\n".join(lines))
    if problem:
        from sphinx.util import logging  # here, so that the tests can import this module without Sphinx

        logging.getLogger(__name__).warning(problem, type="registry_tables")
    lines.extend(table(obj))


def setup(app):
    app.connect("autodoc-process-docstring", _append_table)
    return {"parallel_read_safe": True, "version": "1"}
