"""The jobs of a sweep, read the way Hydra's sweepers read them, and checked before any starts.

A grid (Hydra's basic sweeper) is the cartesian product of the swept overrides on the command
line and in ``hydra.sweeper.params`` (an experiment config's grid), expanded by the basic
sweeper's own ``BasicSweeper.split_arguments`` (``hydra._internal.core_plugins.basic_sweeper``).
A search (Optuna) draws its jobs while it runs, so the check covers each searched key at the
ends of its range and at each of its choices, the others at their first value.
"""

import importlib.util
import json
from dataclasses import dataclass, field

import torch
from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from pyro_mvae.compose import SELECTIONS, check_config, compose_config, register_configs, resolve_objective
from pyro_mvae.data import build_dataset
from pyro_mvae.data.labelled import labelled_for
from pyro_mvae.errors import ConfigError, PairingError, UserError
from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.models.registry import build_vae
from pyro_mvae.training.train import check_dataset

PLUGINS = {"joblib": "hydra_joblib_launcher", "submitit_local": "hydra_submitit_launcher",
           "submitit_slurm": "hydra_submitit_launcher", "optuna": "hydra_optuna_sweeper"}
"""``hydra/launcher=`` and ``hydra/sweeper=`` options and the plugin module each needs.

:meta hide-value:
"""

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@dataclass
class Sweep:
    """A sweep's plan: the Hydra overrides (``hydra.*``, ``hydra/...``), the overrides that are
    not swept, the grid (key -> its values, as given), the jobs to check (each the whole list of
    ``key=value`` overrides of one job: every job of a grid, the corners of a search), whether
    it is a search, and the composed ``hydra`` node."""

    hydra_overrides: list[str]
    fixed: list[str]
    grid: dict[str, str]
    jobs: list[list[str]]
    search: bool
    skip_invalid: bool
    hydra: dict = field(repr=False)

    def varying_keys(self) -> list[str]:
        """The keys whose value differs between jobs: they name each job's directory."""
        return sorted(self.grid)


def plan(overrides: list[str]) -> Sweep:
    """Read a ``pyro-mvae train -m`` command's overrides into a :class:`Sweep`.

    Raises:
        ConfigError: a launcher or sweeper plugin that is not installed (naming the extra).
        hydra.errors.HydraException: overrides Hydra cannot parse, or a sweep the basic sweeper
            does not take (``interval(...)`` in a grid).
    """
    hydra_overrides = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    _check_plugins(hydra_overrides)
    parsed = OverridesParser.create().parse_overrides([o for o in overrides if o not in hydra_overrides])
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    hydra, skip_invalid = _hydra_node([o for o in fixed if o.split("=", 1)[0].lstrip("+~") in SELECTIONS]
                                      + hydra_overrides)
    sweeper = hydra["sweeper"]
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    swept = OverridesParser.create().parse_overrides(params) + [o for o in parsed if o.is_sweep_override()]
    grid = {o.get_key_element(): o.input_line.split("=", 1)[1] for o in swept}
    search = sweeper["_target_"] != BASIC_SWEEPER
    everything = OverridesParser.create().parse_overrides(params + [o.input_line for o in parsed])
    jobs = _corners(everything) if search else BasicSweeper.split_arguments(everything, None)[0]
    given = [o.split("=", 1)[1].lower() == "true" for o in fixed if o.startswith("skip_invalid=")]
    return Sweep(hydra_overrides, fixed, grid, jobs, search, given[-1] if given else skip_invalid, hydra)


def _check_plugins(hydra_overrides: list[str]) -> None:
    for override in hydra_overrides:
        key, _, name = override.partition("=")
        if key in ("hydra/launcher", "hydra/sweeper") and name in PLUGINS \
                and importlib.util.find_spec(f"hydra_plugins.{PLUGINS[name]}") is None:
            raise ConfigError(f"{override} needs Hydra's plugin {PLUGINS[name].replace('_', '-')}, which is "
                              "not installed: pip install 'pyro_mvae[sweeps]'")


def _hydra_node(overrides: list[str]) -> tuple[dict, bool]:
    """The ``hydra`` node composed with these overrides (the selections among the fixed ones, and
    Hydra's own: a value override may fit only the swept selections), and ``skip_invalid`` as an
    experiment sets it."""
    register_configs()
    try:
        with initialize_config_module(config_module="pyro_mvae.conf", version_base=None):
            config = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except MissingConfigException as err:  # e.g. an experiment that selects hydra/sweeper: optuna
        if "hydra/launcher" in str(err) or "hydra/sweeper" in str(err):
            raise ConfigError(f"{err}: Hydra's launcher and sweeper plugins come with "
                              "pip install 'pyro_mvae[sweeps]'") from err
        raise
    return OmegaConf.to_container(config.hydra, resolve=False), bool(config.skip_invalid)


def _corners(overrides: list[Override]) -> list[list[str]]:
    """Jobs that put each searched key at each end of its range (each choice), the others at
    their first value: what a search can draw, checked before it starts."""
    values = {o.get_key_element(): _extremes(o) for o in overrides}
    first = {k: v[0] for k, v in values.items()}
    jobs = [[f"{k}={v}" for k, v in first.items()]]
    for key, options in values.items():
        jobs += [[f"{k}={value if k == key else v}" for k, v in first.items()] for value in options[1:]]
    return jobs


def _extremes(override: Override) -> list[str]:
    value = override.value()
    if isinstance(value, IntervalSweep):
        ends = [value.start, value.end]
        return [str(int(e)) if "int" in value.tags else repr(float(e)) for e in ends]
    if isinstance(value, (ChoiceSweep, RangeSweep)):
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def check_jobs(sweep: Sweep) -> list[dict]:
    """Compose and check every job of ``sweep`` as ``pyro-mvae train`` would (settings, data,
    pairing, objective); returns the jobs skipped for their pairing (``skip_invalid=true``),
    each ``{"overrides": [...], "reason": str}``.

    Raises:
        ConfigError: naming every job that cannot run, with its overrides and the reason.
    """
    data_cache, refused, skipped, skip_invalid = {}, [], [], sweep.skip_invalid
    for job in sweep.jobs:
        try:
            _check_job(job, data_cache)
        except PairingError as err:
            (skipped if skip_invalid else refused).append({"overrides": job, "reason": str(err), "pairing": True})
        except UserError as err:
            refused.append({"overrides": job, "reason": str(err), "pairing": False})
    if refused:
        what = "search" if sweep.search else "grid"
        lines = "\n".join(f"  {' '.join(r['overrides'])}: {r['reason']}" for r in refused)
        hint = "" if skip_invalid or not all(r["pairing"] for r in refused) else (
            "\nskip_invalid=true runs the rest and lists these jobs as skipped")
        raise ConfigError(f"{len(refused)} of the {len(sweep.jobs)} jobs of the {what} cannot run; "
                          f"nothing was started:\n{lines}{hint}")
    return [{"overrides": s["overrides"], "reason": s["reason"]} for s in skipped]


def _check_job(overrides: list[str], data_cache: dict) -> None:
    config = compose_config(overrides)
    check_config(config)
    for key in ("run_dir", "resume"):
        if config[key]:
            raise ConfigError(f"{key} is not taken by a sweep: each job's run directory is "
                              "hydra.sweep.dir/<its overrides>, and running the same sweep again resumes it")
    if config["trainer"]["devices"] > 1:
        raise ConfigError("a sweep's job is one process: drop trainer.devices (a cluster launcher gives "
                          "each job its own GPU, e.g. hydra.launcher.gpus_per_node=1 device=cuda)")
    resolve_objective(config)
    key = json.dumps(config["data"], sort_keys=True)
    if key not in data_cache:
        data_cache[key] = build_dataset(config["data"], torch.device("cpu"))
    data = data_cache[key]
    vae = build_vae(data.event_shape, config["prior"], config["guide"], config["likelihood"], config["net"])
    build_objective(**config["objective"], vae=vae)
    check_dataset(vae, data)
    labelled_for(vae, data, config["seed"], config["data"]["batch_size"], config["trainer"]["alpha"])
