"""The run's configuration: every group's options registered in Hydra's ConfigStore from the
components' typed ``Config`` classes, composed, checked before any work, and built.

``pyro_mvae/conf/config.yaml`` only selects the defaults of each group; the options and their
defaults are the dataclasses (:mod:`pyro_mvae.config`). Nothing in a config is ever imported or
executed: it can only name registered components and set their declared options.
"""

import re
from dataclasses import dataclass, fields

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pyro_mvae.config import Settings, did_you_mean, lookup, option, unknown_keys_message
from pyro_mvae.data import DATASETS, build_dataset
from pyro_mvae.errors import ConfigError
from pyro_mvae.infer.objectives import OBJECTIVES, resolve_name
from pyro_mvae.models.nets import NETS
from pyro_mvae.models.registry import GUIDES, LIKELIHOODS, OWN_NET, PRIORS, build_vae
from pyro_mvae.plugins import load_installed
from pyro_mvae.training.train import TrainerConfig


@dataclass
class RunSettings(Settings):
    """The top-level settings of ``pyro-mvae train``."""

    seed: int = option(0, "seeds parameter initialisation, batch order and every draw")
    device: str = option("auto", "cpu | cuda | auto (cuda when available)")
    run_dir: str | None = option(None, "default: runs/<date>-<time>_<data>_<prior>_<guide>[-<estimator>]_<objective>")
    resume: str | None = option(None, "RUN_DIR: continue that run from its last.pt (only trainer.epochs, "
                                       "trainer.progress, trainer.threads and trainer.eval_* may change)")
    skip_invalid: bool = option(False, "train -m: skip the jobs whose prior/guide/objective pairing is refused "
                                       "(listed in the sweep's record) instead of refusing the whole sweep")
    tags: list[str] = option([], "labels of the run, e.g. tags=[baseline,ablation]: in report.json, a column of "
                                 "compare, MLflow tags")
    search_metric: str = option("best_val_elbo", "train -m: what each job returns to the sweeper, higher is better: "
                                                 "best_val_elbo | val_iwae (IWAE with trainer.eval_samples on the "
                                                 "first trainer.eval_limit validation images, best epoch)")

    def check(self):
        self.one_of("device", ("cpu", "cuda", "auto"))
        self.one_of("search_metric", ("best_val_elbo", "val_iwae"))


def groups() -> dict:
    """Config group -> option -> its typed config, read from the registries at each call (so a
    component registered at run time is a group option at once; installed packages' entry
    points are loaded first, :func:`~pyro_mvae.plugins.load_installed`). The trainer
    group's node has no ``name``."""
    load_installed()
    return {
        "data": {name: source.Config for name, source in DATASETS.items()},
        "prior": {name: cls.Config for name, cls in PRIORS.items()},
        "guide": {name: cls.Config for name, cls in GUIDES.items()},
        "likelihood": {name: cls.Config for name, cls in LIKELIHOODS.items()},
        "objective": {name: objective.Config for name, objective in OBJECTIVES.items()},
        "net": {name: kind.Config for name, kind in NETS.items()},
        "trainer": {"default": TrainerConfig},
    }


GROUP_NAMES = ("data", "prior", "guide", "likelihood", "objective", "net", "trainer")
"""The config groups, in the order of :func:`groups` (named here, not read from it: reading a
registry while ``import pyro_mvae`` runs would load the installed packages' entry points then)."""
COMPONENT_GROUPS = ("data", "prior", "guide", "likelihood", "net")
"""The groups whose options are registered components (:class:`~pyro_mvae.config.Registry`)."""
SELECTIONS = (*GROUP_NAMES, "route", "experiment", "ablation")
"""Keys that select a config file rather than set a value. They are the groups, ``route``
(``conf/route/*.yaml``, a named prior/guide pairing of the studies), ``experiment``
(``conf/experiment/*.yaml``, a named protocol that selects options, sets values and may carry
a sweep's grid) and ``ablation`` (``conf/ablation/*.yaml``, one part of an experiment changed)."""


def register_configs() -> None:
    """Store every group option (its name and its config's defaults) and the top-level settings
    in Hydra's ConfigStore; ``conf/config.yaml`` selects among them."""
    store = ConfigStore.instance()
    store.store(name="run", node=RunSettings.defaults())
    for group, options in groups().items():
        for name, cls in options.items():
            named = {} if group == "trainer" else {"name": name}
            store.store(group=group, name=name, node=named | cls.defaults())


def compose_config(overrides: list[str]) -> dict:
    """The packaged config with Hydra ``overrides`` applied, as plain containers, after
    :func:`check_overrides` and before :func:`check_config`.

    Raises:
        ConfigError: for a key the chosen component does not have.
        hydra.errors.HydraException, omegaconf.errors.OmegaConfBaseException: for overrides
            Hydra cannot parse or apply (an unknown group option, say).
    """
    register_configs()
    check_selections(overrides)
    selections = [o for o in overrides if o.split("=", 1)[0].lstrip("+") in SELECTIONS]
    chosen = _compose(selections)
    check_overrides(overrides, {g: chosen[g].get("name", "default") for g in GROUP_NAMES})
    return _compose(overrides)


def _compose(overrides: list[str]) -> dict:
    with initialize_config_module(config_module="pyro_mvae.conf", version_base=None):
        return OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True)


def check_selections(overrides: list[str]) -> None:
    """Refuse ``group=NAME`` for a component group when NAME is not registered, before Hydra
    composes anything (:func:`~pyro_mvae.config.lookup`'s one line: the valid names, or, for a
    component of an installed package that cannot be loaded, its package and the fix).

    Raises:
        PluginError: NAME's package is installed but its entry point fails.
        UnknownNameError: NAME is not registered; the message lists the valid names.
    """
    options = groups()
    for override in overrides:
        group, _, name = override.partition("=")
        if group in COMPONENT_GROUPS and re.fullmatch(r"[A-Za-z_][\w-]*", name):  # one name, not a sweep
            lookup(options[group], group, name)


def check_overrides(overrides: list[str], chosen: dict) -> None:
    """Refuse ``group.key=value`` when the group's chosen option has no ``key``, and
    ``group.name=...`` (a component is chosen with ``group=NAME``).

    Raises:
        ConfigError: naming the component and its valid keys.
    """
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        group, _, field = key.partition(".")
        if not field:
            if group not in SELECTIONS and group not in RunSettings.keys():
                guess = did_you_mean(key, [*RunSettings.keys(), *SELECTIONS])
                raise ConfigError(f"unknown setting '{key}'{guess}: the top-level settings are "
                                  f"{', '.join(RunSettings.keys())}; the groups are {', '.join(SELECTIONS)}")
            continue
        if group not in GROUP_NAMES:
            raise ConfigError(f"unknown setting '{key}': there is no group '{group}'{did_you_mean(group, GROUP_NAMES)}"
                              f"; the groups are {', '.join(GROUP_NAMES)}")
        if field == "name":
            raise ConfigError(f"choose the {group} with {group}=NAME, not {group}.name=NAME")
        cls = groups()[group][chosen[group]]
        if field in cls.derived():
            raise ConfigError(f"{key} is not a setting: {cls.derived()[field]}")
        if field not in cls.keys():
            owner = "trainer" if group == "trainer" else f"{group} '{chosen[group]}'"
            raise ConfigError(unknown_keys_message(owner, [field], cls.keys()))


def check_config(config: dict) -> None:
    """Check every setting of a composed (or saved) config against its component's typed
    config: keys, types and ranges.

    Raises:
        ConfigError: naming the first bad setting and what it must be.
    """
    RunSettings.from_options({k: v for k, v in config.items() if k not in GROUP_NAMES}, "the run")
    for group, options in groups().items():
        values = dict(config[group])
        name = "default" if group == "trainer" else values.pop("name")
        if group == "net" and name == OWN_NET:  # the user's modules: checked by build_vae's shape probe
            continue
        owner = "trainer" if group == "trainer" else f"{group} '{name}'"
        lookup(options, group, name).from_options(values, owner)


def objective_name(config: dict) -> str:
    """The objective ``config`` trains with: ``objective=auto`` is the guide's preferred one for the
    chosen prior (:meth:`~pyro_mvae.models.base.Guide.preferred_objective`)."""
    guide, prior = config["guide"], config["prior"]
    return resolve_name(config["objective"]["name"], GUIDES[guide["name"]], guide, PRIORS[prior["name"]])


def resolve_objective(config: dict) -> None:
    """Replace ``objective=auto`` in ``config`` by :func:`objective_name`, in place."""
    config["objective"]["name"] = objective_name(config)


def describe_config(config: dict) -> str:
    """The composed ``config`` as YAML, every key with its documentation as a comment."""
    def line(indent: str, key: str, value, doc: str) -> str:
        text = f"{key}: [{', '.join(map(str, value))}]" if isinstance(value, list) \
            else OmegaConf.to_yaml({key: value}).strip()  # a list on its key's line: hidden: [300, 300]
        return f"{indent}{text:<40} # {doc}" if doc else f"{indent}{text}"

    lines = [line("", key, config[key], doc) for key, doc in _docs(RunSettings).items()]
    for group, options in groups().items():
        name = config[group].get("name", "default")
        docs = _docs(options[name])
        lines.append(f"{group}:")
        lines += [line("  ", key, value, docs.get(key, "")) for key, value in config[group].items()]
    return "\n".join(lines)


def _docs(cls) -> dict:
    return {f.name: f.metadata["doc"] for f in fields(cls)}


def build_from_config(config: dict, device, encoder=None, decoder=None) -> tuple:
    """The data set and the VAE (on ``device``) a config describes: ``(data, vae)``. Used by
    ``train``, ``evaluate``, ``sample`` and the experiments. ``encoder`` and ``decoder``: the
    user's own modules, for a config whose ``net`` is ``own`` (see
    :func:`~pyro_mvae.models.registry.build_vae`).

    Raises:
        ConfigError, PairingError, DataError: see :func:`~pyro_mvae.models.registry.build_vae`
            and :func:`~pyro_mvae.data.build_dataset`; ConfigError for ``net: own``
            without the modules.
    """
    load_installed()
    net = config["net"]
    if net.get("name") == OWN_NET:
        if encoder is None:
            raise ConfigError("this run was trained on your own encoder and decoder modules (net: own), which a "
                              "config cannot name: pass the same modules again, load_run(run_dir, encoder=body, "
                              "decoder=decoder), or register them as a net (pyro_mvae.register('net', ...))")
        net = {"latent_dim": net["latent_dim"]}
    data = build_dataset(config["data"], device)
    vae = build_vae(data.event_shape, config["prior"], config["guide"], config["likelihood"], net,
                    encoder=encoder, decoder=decoder)
    return data, vae.to(device)


def trainer_settings(config: dict) -> TrainerConfig:
    """The run's :class:`~pyro_mvae.training.train.TrainerConfig`, with B from ``data.batch_size``."""
    return TrainerConfig(**config["trainer"], batch_size=config["data"]["batch_size"])
