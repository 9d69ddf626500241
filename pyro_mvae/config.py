"""Typed settings: each component declares its options once, as a dataclass.

A component's ``Config`` (a :class:`Settings` subclass) holds every option with its default
and documentation (:func:`option`); constructing it checks each value's type against the field's
annotation and then the ranges of :meth:`Settings.check`. The same class is what Hydra composes
(registered in its ``ConfigStore`` by :mod:`pyro_mvae.compose`), what the command line
validates, and what the component reads its options from (for example
``pyro_mvae.models.priors.MixtureConfig``, or the README's worked Student-t prior).
"""

import difflib
import math
import types
import typing
from collections.abc import Mapping, MutableMapping
from dataclasses import MISSING, dataclass, field, fields

from pyro_mvae.errors import ConfigError, PluginError, UnknownNameError


def option(default, doc: str, derived: bool = False):
    """A dataclass field with its default and one line of documentation. ``derived=True``: set
    by the program from another group (``trainer.batch_size`` from ``data.batch_size``), not a
    setting of its own group."""
    metadata = {"doc": doc, "derived": derived}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _describe(hint) -> tuple[typing.Callable, str]:
    """(check, words) of a field annotation: int, float, bool, str, list[int], list[str], or X | None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        check, words = _describe(next(a for a in args if a is not type(None)))
        return (lambda v: v is None or check(v)), f"null or {words}"
    if typing.get_origin(hint) is list and args == (str,):
        return (lambda v: isinstance(v, (list, tuple)) and all(type(i) is str and i for i in v)), \
            "a list of names, e.g. [baseline,ablation]"
    if typing.get_origin(hint) is list:
        return (lambda v: isinstance(v, (list, tuple)) and all(type(i) is int for i in v)), \
            "a list of integers, e.g. [300, 300]"
    checks = {bool: (lambda v: type(v) is bool, "true or false"),
              int: (lambda v: type(v) is int, "an integer"),
              float: (lambda v: type(v) in (int, float), "a number"),
              str: (lambda v: type(v) is str and v != "", "a non-empty string")}
    return checks[hint]


@dataclass
class Settings:
    """Base of every typed config: type checks from the annotations, then :meth:`check`.

    ``GROUP``: the config group (``prior``, ``trainer``, ...; ``""`` for top-level keys), which
    prefixes every error message.

    Raises:
        ConfigError: naming the setting, what it must be, and the value given.
    """

    GROUP: typing.ClassVar[str] = ""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            check, words = _describe(hints[f.name])
            value = getattr(self, f.name)
            if not check(value):
                self._fail(f.name, words)
            if type(value) is int and float in (hints[f.name], *typing.get_args(hints[f.name])):
                setattr(self, f.name, float(value))  # `prior.df=5` is the number 5.0
        self.check()

    def check(self) -> None:
        """Range and choice checks of a subclass (none by default)."""

    def _fail(self, name: str, words: str):
        key = f"{self.GROUP}.{name}" if self.GROUP else name
        raise ConfigError(f"{key} must be {words}, got {getattr(self, name)!r}")

    def at_least(self, name: str, low: int) -> None:
        """``name`` >= low (integers and counts)."""
        if getattr(self, name) is not None and getattr(self, name) < low:
            self._fail(name, f"an integer >= {low}")

    def each_at_least(self, name: str, low: int) -> None:
        """Every entry of the list ``name`` >= low (hidden sizes)."""
        if not all(v >= low for v in getattr(self, name)):
            self._fail(name, f"a list of integers >= {low}, e.g. [300, 300]")

    def positive(self, name: str, below: float = math.inf) -> None:
        """``name`` finite, > 0 and < ``below``."""
        value = getattr(self, name)
        if not (math.isfinite(value) and 0 < value < below):
            self._fail(name, "a finite number > 0" + ("" if below == math.inf else f" and < {below:g}"))

    def one_of(self, name: str, choices) -> None:
        """``name`` is one of ``choices``."""
        if getattr(self, name) not in choices:
            self._fail(name, "one of " + ", ".join(choices))

    @classmethod
    def keys(cls) -> list[str]:
        """The settings of this config, in declaration order (derived ones left out)."""
        return [f.name for f in fields(cls) if not f.metadata.get("derived")]

    @classmethod
    def derived(cls) -> dict:
        """``{key: doc}`` of the fields set by the program from another group."""
        return {f.name: f.metadata["doc"] for f in fields(cls) if f.metadata.get("derived")}

    @classmethod
    def defaults(cls) -> dict:
        """``{key: default}`` of :meth:`keys`: the node registered in Hydra's ConfigStore."""
        out = {}
        for f in fields(cls):
            if not f.metadata.get("derived"):
                out[f.name] = f.default_factory() if f.default is MISSING else f.default
        return out

    @classmethod
    def documented(cls) -> list[tuple[str, object, str, str]]:
        """``(key, default, accepted values in words, doc)`` of every setting of :meth:`keys`,
        in declaration order: what ``--help`` and the docs' option tables print."""
        hints = typing.get_type_hints(cls)
        docs = {f.name: f.metadata["doc"] for f in fields(cls)}
        return [(key, default, _describe(hints[key])[1], docs[key]) for key, default in cls.defaults().items()]

    @classmethod
    def from_options(cls, options: Mapping, owner: str) -> "Settings":
        """The config of ``options`` (``{key: value}``); ``owner`` names the component in errors
        (``"prior 'standard'"``).

        Raises:
            ConfigError: for a key this config does not have (the message lists the valid
                ones), or a value of the wrong type or range.
        """
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(unknown_keys_message(owner, unknown, cls.keys()))
        return cls(**options)


def unknown_keys_message(owner: str, unknown: list[str], valid: list[str]) -> str:
    """'<owner> has no setting ...[ (did you mean ...?)]; its settings are: ...' (the common wording)."""
    have = ", ".join(valid) if valid else "none"
    guesses = "".join(did_you_mean(key, valid) for key in unknown)
    return f"{owner} has no setting {', '.join(repr(k) for k in unknown)}{guesses}; its settings are: {have}"


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the choices closest to a misspelt ``word`` (difflib's ratio
    ≥ 0.6), or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=2)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


BROKEN: dict[tuple[str, str], str] = {}
"""``(kind, name)`` -> why the component ``name`` that an installed package's entry point
declares cannot be used: one line naming the entry point, its package, the error and the fix.
Filled by :func:`pyro_mvae.plugins.load_installed`; :func:`lookup` raises it as a
:class:`~pyro_mvae.errors.PluginError` when the name is asked for."""


class Registry(MutableMapping):
    """Name -> component of one kind (``kind``: ``"prior"``, ``"guide"``, ``"likelihood"``,
    ``"net"`` or ``"data"``), a mapping like a dict.

    Every read (a name, ``in``, iteration, ``len``) first calls the loader that
    :meth:`before_reads` set: :func:`pyro_mvae.plugins.load_installed`, which registers
    the installed packages' entry points once per process. So entry points are loaded when a
    registry is first used, not while ``import pyro_mvae`` runs, and a package's module can import
    from ``pyro_mvae`` at its top. Writes (registration, ``pop``'s removal) never load."""

    _loader = None

    def __init__(self, kind: str, components: Mapping):
        self.kind = kind
        self._components = dict(components)

    @classmethod
    def before_reads(cls, loader) -> None:
        """Call ``loader()``, a function of no arguments, before every read of any registry."""
        cls._loader = loader

    def _read(self) -> dict:
        if Registry._loader is not None:
            Registry._loader()
        return self._components

    def __getitem__(self, name):
        return self._read()[name]

    def __contains__(self, name) -> bool:
        return name in self._read()

    def __iter__(self):
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __setitem__(self, name, component) -> None:
        self._components[name] = component

    def __delitem__(self, name) -> None:
        del self._components[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._components)})"


def lookup(table: Mapping, kind: str, name: str):
    """The entry registered as ``name`` in ``table``.

    Raises:
        PluginError: ``name`` is a component of an installed package whose entry point cannot
            be loaded (:data:`BROKEN`); the message names the package and the fix.
        UnknownNameError: naming the kind and listing the valid names (and the ``kind``
            components of installed packages that cannot be loaded, with why).
    """
    if name not in table:
        if (kind, name) in BROKEN:
            raise PluginError(BROKEN[kind, name])
        valid = ", ".join(sorted(table))
        broken = "".join(f"; {why}" for (of, _), why in sorted(BROKEN.items()) if of == kind)
        raise UnknownNameError(f"unknown {kind} '{name}'{did_you_mean(name, table)}; valid {kind} names: "
                               f"{valid}{broken}")
    return table[name]
