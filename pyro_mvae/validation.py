"""Checks of a composed configuration before any work: every value's type, range or choices.

Config files and overrides can only name registered components (the registry refuses any other
name) and set the fields below; nothing in a config is ever imported or executed.
"""

import math

from pyro_mvae.guides import DiscreteMixtureGuide, RelaxedMixtureGuide
from pyro_mvae.schedules import TAU_SCHEDULES


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range; the message names the field."""


def _int(low=None):
    def check(v):
        return type(v) is int and (low is None or v >= low)
    return check, "an integer" + ("" if low is None else f" >= {low}")


def _float(low=0.0, high=math.inf, closed_low=False):
    def check(v):
        ok_type = type(v) in (int, float) and math.isfinite(v)
        return ok_type and (v >= low if closed_low else v > low) and v < high
    bounds = f"{'>=' if closed_low else '>'} {low:g}" + ("" if high == math.inf else f" and < {high:g}")
    return check, f"a finite number {bounds}"


def _bool():
    return (lambda v: type(v) is bool), "true or false"


def _text():
    return (lambda v: type(v) is str and v != ""), "a non-empty string"


def _choice(*options):
    return (lambda v: v in options), "one of " + ", ".join(options)


def _int_list():
    return (lambda v: isinstance(v, list) and all(type(i) is int and i >= 1 for i in v)), \
        "a list of integers >= 1, e.g. [300, 300]"


def _nullable(rule):
    check, text = rule
    return (lambda v: v is None or check(v)), f"null or {text}"


RULES = {
    "seed": _int(), "device": _choice("cpu", "cuda", "auto"),
    "run_dir": _nullable(_text()), "resume": _nullable(_text()),
    "data.name": _text(), "data.batch_size": _int(1), "data.val_size": _int(1),
    "data.limit": _nullable(_int(1)), "data.binarize": _bool(), "data.download": _bool(), "data.dequantize": _bool(),
    "data.root": _nullable(_text()),
    "net.name": _text(), "net.hidden": _int_list(), "net.latent_dim": _int(1),
    "prior.name": _text(), "prior.components": _int(1), "prior.init_spread": _float(),
    "prior.layers": _int(1), "prior.hidden": _int_list(), "prior.base": _choice("standard", "mixture"),
    "guide.name": _text(), "guide.straight_through": _bool(),
    "guide.estimator": _choice(*RelaxedMixtureGuide.ESTIMATORS), "guide.rao_samples": _int(1),
    "guide.layers": _int(1), "guide.flow_hidden": _int_list(), "guide.context_dim": _int(1),
    "guide.baseline": _choice(*DiscreteMixtureGuide.BASELINES), "guide.baseline_beta": _float(0.0, 1.0),
    "guide.baseline_hidden": _int_list(),
    "likelihood.name": _text(), "likelihood.scale": _float(), "likelihood.learn_scale": _bool(),
    "objective.name": _text(), "objective.num_particles": _int(1),
    **{f"trainer.{k}": _int(1) for k in ("epochs", "patience", "eval_samples", "eval_chunk_size",
                                          "eval_batch_size", "devices")},
    **{f"trainer.{k}": _int(0) for k in ("warmup_epochs", "tau_anneal_epochs")},
    **{f"trainer.{k}": _float() for k in ("lr", "beta_start", "beta_end", "tau_start", "tau_end")},
    **{f"trainer.{k}": _bool() for k in ("progress", "fast_step", "validate", "check_finite")},
    "trainer.eval_limit": _nullable(_int(1)),
    "trainer.tau_schedule": _choice(*TAU_SCHEDULES), "trainer.tau_update": _choice("epoch", "step"),
    "trainer.on_nonfinite": _choice("stop", "skip"),
}


def leaves(config: dict, prefix: str = "") -> dict:
    """Flatten nested dicts to ``{"group.key": value}`` (lists are leaves)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        out.update(leaves(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def validate_config(config: dict) -> None:
    """Raises :class:`ConfigError` naming the first field whose value breaks its rule (type,
    range or choices), or a field no rule knows."""
    for name, value in leaves(config).items():
        if name not in RULES:
            raise ConfigError(f"unknown setting '{name}': see `pyro-mvae --help` for the groups and keys")
        check, expected = RULES[name]
        if not check(value):
            raise ConfigError(f"{name} must be {expected}, got {value!r}")
