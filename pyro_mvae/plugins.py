"""Components of the user's own code, registered by name: :func:`register` in Python, or entry
points of an installed package, read by :func:`load_installed`::

    # the user's pyproject.toml
    [project.entry-points."pyro_mvae.priors"]
    student_t = "my_package.student_t:StudentTPrior"

Groups: ``pyro_mvae.priors``, ``pyro_mvae.guides``, ``pyro_mvae.likelihoods``, ``pyro_mvae.nets``
and ``pyro_mvae.data``. A registered component is a group option of the command line at once,
with the same typed-config validation, ``--help`` and pairing checks as the built-in ones. A
config file or checkpoint still names a registered component only, never an import path: entry
points are read from the metadata of packages the user installed, and every run records which
package provided each of its components, so that a run whose package is missing is refused with
the package to install.

Entry points are loaded on the first read of a registry (:class:`~pyro_mvae.config.Registry`),
never while ``import pyro_mvae`` runs: a package's module may import anything from
``pyro_mvae`` at its top. An entry point that cannot be loaded or registered breaks nothing else:
it is recorded (:data:`~pyro_mvae.config.BROKEN`) and reported, as one line with its package and
the fix, only when its component is named or its kind is listed.
"""

from importlib import metadata

from pyro_mvae.config import BROKEN, Registry, Settings
from pyro_mvae.data import DATASETS, DataSource
from pyro_mvae.errors import ConfigError
from pyro_mvae.models.base import Guide, Prior
from pyro_mvae.models.likelihoods import Likelihood
from pyro_mvae.models.nets import NETS, NetKind
from pyro_mvae.models.registry import GUIDES, LIKELIHOODS, PRIORS

KINDS = {"prior": (PRIORS, Prior), "guide": (GUIDES, Guide), "likelihood": (LIKELIHOODS, Likelihood),
         "net": (NETS, NetKind), "data": (DATASETS, DataSource)}
"""Kind -> (its registry, what a component of that kind is, a subclass or an instance).

:meta hide-value:
"""

ENTRY_POINT_GROUPS = {"prior": "pyro_mvae.priors", "guide": "pyro_mvae.guides",
                      "likelihood": "pyro_mvae.likelihoods", "net": "pyro_mvae.nets", "data": "pyro_mvae.data"}

PROVIDERS: dict[str, str] = {}
"""``"<kind>:<name>"`` -> ``"<distribution> <version>"`` for every component an installed
package registered."""

_loaded = False


def register(kind: str, name: str, component, replace: bool = False) -> None:
    """Register ``component`` as the ``kind`` option ``name``: a :class:`~pyro_mvae.models.base.Prior`,
    :class:`~pyro_mvae.models.base.Guide` or :class:`~pyro_mvae.models.likelihoods.Likelihood`
    subclass whose ``name`` is ``name``, a :class:`~pyro_mvae.models.nets.NetKind` or a
    :class:`~pyro_mvae.data.DataSource` of that name; each with its typed ``Config``.

    Raises:
        ConfigError: an unknown kind, a component of another type or without a ``Config``
            (a :class:`~pyro_mvae.config.Settings` dataclass), a name that differs from the
            component's own, or a name already registered (unless ``replace``).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown kind '{kind}'; the kinds are {', '.join(KINDS)}")
    table, base = KINDS[kind]
    fits = issubclass(component, base) if isinstance(component, type) and base not in (NetKind, DataSource) \
        else isinstance(component, base)
    if not fits:
        what = f"an instance of {base.__name__}" if base in (NetKind, DataSource) else f"a subclass of {base.__name__}"
        raise ConfigError(f"a {kind} must be {what}, got {component!r}")
    if not (isinstance(getattr(component, "Config", None), type) and issubclass(component.Config, Settings)):
        raise ConfigError(f"{kind} '{name}' needs a typed Config (a pyro_mvae.config.Settings dataclass)")
    if getattr(component, "name", None) != name:
        raise ConfigError(f"{kind} '{name}' is named '{getattr(component, 'name', None)}' itself: register it "
                          "under its own name (the name its runs' configs will hold)")
    if name in table and table[name] is not component and not replace:
        raise ConfigError(f"{kind} '{name}' is already registered ({table[name]!r}); give replace=True to replace it")
    table[name] = component


def load_installed() -> None:
    """Register the components of every installed package's ``pyro_mvae.*`` entry points, once
    per process (every registry calls it before it is read, so that the command line and
    :func:`~pyro_mvae.models.registry.build_vae` see them; calling it is never needed).

    An entry point whose module cannot be imported (or raises), whose object is missing, or
    which :func:`register` refuses is not registered: its reason, with its package and the fix,
    goes to :data:`~pyro_mvae.config.BROKEN`, and :func:`~pyro_mvae.config.lookup` raises it as
    a :class:`~pyro_mvae.errors.PluginError` when that component is named. Nothing is raised here.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True  # first: a package's module that reads a registry must not load them again
    BROKEN.clear()
    for kind, group in ENTRY_POINT_GROUPS.items():
        for entry in metadata.entry_points(group=group):
            try:
                register(kind, entry.name, entry.load())
            except Exception as err:  # whatever a package's module raises stays its own
                BROKEN[kind, entry.name] = _broken(kind, entry, err)
                continue
            PROVIDERS[f"{kind}:{entry.name}"] = f"{entry.dist.name} {entry.dist.version}" if entry.dist \
                else entry.value


def _broken(kind: str, entry: metadata.EntryPoint, err: Exception) -> str:
    """One line: the component, the entry point and its package, the error, and the fix."""
    error = " ".join(f"{type(err).__name__}: {err}".split()) if str(err) else type(err).__name__
    module = entry.value.split(":", 1)[0].strip()
    if entry.dist is None:
        package, fix = "an installed package", f"remove the entry point or fix the module {module}"
    else:
        package = f"the package {entry.dist.name} {entry.dist.version}"
        fix = f"pip uninstall {entry.dist.name}, or fix the module {module}"
    return (f"{kind} '{entry.name}' of {package} cannot be used: its entry point {entry.name} = {entry.value} "
            f"(group {entry.group}) fails with {error}; {fix}")


Registry.before_reads(load_installed)


def providers(config: dict) -> dict:
    """``"<kind>:<name>" -> "<distribution> <version>"`` for the components of ``config`` that
    an installed package provides (what ``environment.json`` records as ``plugins``)."""
    used = {f"{kind}:{config[group]['name']}" for kind, group in
            (("prior", "prior"), ("guide", "guide"), ("likelihood", "likelihood"), ("net", "net"), ("data", "data"))
            if isinstance(config.get(group), dict)}
    return {key: PROVIDERS[key] for key in sorted(used & set(PROVIDERS))}
