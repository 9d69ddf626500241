"""Readable signatures of the dataclasses on the API pages.

autodoc prints a dataclass's defaults by their repr: ``Objective(name, elbo, Config=<class
'pyro_mvae.infer.objectives.ObjectiveConfig'>, options=<factory>)``. This rewrites a class default
to its name (``Config = ObjectiveConfig``) and a default made by a factory to ``...``.
"""

import re

CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
FACTORY = re.compile(r"<factory>")


def readable(signature: str | None) -> str | None:
    """``signature`` with class reprs replaced by their names and ``<factory>`` by ``...``."""
    if signature is None:
        return None
    return FACTORY.sub("...", CLASS.sub(r"\1", signature))


def _process(app, what, name, obj, options, signature, return_annotation):
    return readable(signature), readable(return_annotation)


def setup(app):
    app.connect("autodoc-process-signature", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
