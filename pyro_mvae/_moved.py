"""Old module paths kept for one release after a move: importing one warns and hands back the
module at its new path (the same module object, so classes and registries are shared)."""

import importlib
import sys
import warnings


def alias(old: str, new: str, submodules: tuple[str, ...] = ()) -> None:
    """Make the module ``old`` (being imported) the module ``new``, and ``old.<sub>`` the module
    ``new.<sub>`` for each of ``submodules``, with a :class:`DeprecationWarning` naming the new path."""
    warnings.warn(f"{old} moved to {new} in pyro_mvae 0.3: import it from there (the old path goes in the "
                  "next release)", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
    for sub in submodules:
        sys.modules[f"{old}.{sub}"] = importlib.import_module(f"{new}.{sub}")
