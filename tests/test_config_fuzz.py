"""Property-based: every invalid CLI value is refused with a clear error, no traceback, no run directory."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_mvae.cli import main
from pyro_mvae.compose import check_config, compose_config, groups
from pyro_mvae.errors import ConfigError

GROUPS = groups()

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda w: w not in {"true", "false", "null", "nan", "inf", "none", "yes", "no", "on", "off"})
NON_POSITIVE = st.integers(max_value=0).map(str)
NEGATIVE = st.integers(max_value=-1).map(str)
BAD_FLOAT = st.one_of(st.floats(max_value=0.0, allow_nan=False).map(repr), st.sampled_from(["nan", "inf", "-inf"]))
FRACTION = st.one_of(BAD_FLOAT, st.floats(min_value=1.0, allow_nan=False, allow_infinity=False).map(repr))
NOT_A_NUMBER = st.one_of(WORDS, st.sampled_from(["true", "false", "[1,2]"]))
NOT_AN_INT = st.one_of(NOT_A_NUMBER, st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: f != int(f)).map(repr))
NOT_A_BOOL = st.one_of(WORDS, st.integers().map(str), st.floats(allow_nan=False).map(repr))
BAD_LIST = st.one_of(st.lists(st.integers(max_value=0), min_size=1, max_size=3).map(
    lambda v: "[" + ",".join(map(str, v)) + "]"), WORDS, st.integers().map(str))

# (group selection that makes the key exist, key, strategy of invalid override values)
CASES = [
    ([], "seed", NOT_AN_INT), ([], "device", WORDS.filter(lambda w: w not in {"cpu", "cuda", "auto"})),
    ([], "data.batch_size", st.one_of(NON_POSITIVE, NOT_AN_INT)),
    ([], "data.val_size", st.one_of(NON_POSITIVE, NOT_AN_INT)),
    ([], "data.limit", st.one_of(NON_POSITIVE, NOT_AN_INT)), ([], "data.binarize", NOT_A_BOOL),
    (["data=mnist"], "data.download", NOT_A_BOOL),
    ([], "net.hidden", BAD_LIST), ([], "net.latent_dim", st.one_of(NON_POSITIVE, NOT_AN_INT)),
    (["prior=mixture"], "prior.components", st.one_of(NON_POSITIVE, NOT_AN_INT)),
    (["prior=mixture"], "prior.init_spread", st.one_of(BAD_FLOAT, NOT_A_NUMBER)),
    (["guide=relaxed_mixture"], "guide.straight_through", NOT_A_BOOL),
    (["guide=relaxed_mixture"], "guide.estimator", WORDS.filter(lambda w: w not in {"relaxed", "gumbel_rao"})),
    (["guide=relaxed_mixture"], "guide.rao_samples", st.one_of(NON_POSITIVE, NOT_AN_INT)),
    (["guide=discrete_mixture"], "guide.baseline", WORDS.filter(
        lambda w: w not in {"none", "decaying_average", "neural"})),
    (["guide=discrete_mixture"], "guide.baseline_beta", FRACTION),
    (["likelihood=gaussian"], "likelihood.scale", st.one_of(BAD_FLOAT, NOT_A_NUMBER)),
    (["likelihood=gaussian"], "likelihood.learn_scale", NOT_A_BOOL),
    ([], "objective.num_particles", st.one_of(NON_POSITIVE, NOT_AN_INT)),
    *[([], f"trainer.{k}", st.one_of(NON_POSITIVE, NOT_AN_INT))
      for k in ("epochs", "patience", "eval_samples", "eval_chunk_size", "eval_batch_size", "devices")],
    *[([], f"trainer.{k}", st.one_of(NEGATIVE, NOT_AN_INT)) for k in ("warmup_epochs", "tau_anneal_epochs")],
    *[([], f"trainer.{k}", st.one_of(BAD_FLOAT, NOT_A_NUMBER))
      for k in ("lr", "beta_start", "beta_end", "tau_start", "tau_end")],
    *[([], f"trainer.{k}", NOT_A_BOOL) for k in ("progress", "fast_step", "validate", "check_finite")],
    ([], "trainer.eval_limit", st.one_of(NON_POSITIVE, NOT_AN_INT)),
    ([], "trainer.tau_schedule", WORDS.filter(lambda w: w not in {"exponential", "linear"})),
    ([], "trainer.tau_update", WORDS.filter(lambda w: w not in {"epoch", "step"})),
    ([], "trainer.on_nonfinite", WORDS.filter(lambda w: w not in {"stop", "skip"})),
    ([], "trainer.compile", WORDS.filter(lambda w: w != "auto")),
    *[([], group, WORDS.filter(lambda w, names=frozenset(names): w not in names))  # never a valid option
      for group, names in GROUPS.items() if group != "trainer"],
    ([], "trainer.no_such_key", WORDS),
]


@st.composite
def invalid_override(draw):
    groups, key, values = draw(st.sampled_from(CASES))
    return groups, key, f"{key}={draw(values)}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=invalid_override())
def test_every_invalid_value_is_refused_cleanly(case, tmp_path, capsys):
    groups, key, override = case
    run_dir = tmp_path / "run"
    code = main(["train", *groups, override, f"run_dir={run_dir}"])
    err = capsys.readouterr().err
    assert code == 2, (override, err)
    assert "Traceback" not in err and err.startswith("pyro-mvae: error:"), err
    field = key.split(".")[-1]
    assert field in err or "pars" in err.lower() or "Could not" in err, (override, err)
    assert not run_dir.exists()


FOREIGN_KEYS = [(group, owner, other, key)
                for group, options in GROUPS.items() if group != "trainer"
                for owner, cls in options.items()
                for other, other_cls in options.items() if other != owner
                for key in cls.keys() if key not in other_cls.keys()]


@pytest.mark.parametrize("group, owner, other, key", FOREIGN_KEYS,
                         ids=[f"{g}.{k}:{o}->{t}" for g, o, t, k in FOREIGN_KEYS])
def test_every_key_of_one_component_given_to_another_is_refused(group, owner, other, key, tmp_path, capsys):
    """Per-component validation: the key names a setting of `owner`, `other` is chosen."""
    run_dir = tmp_path / "run"
    value = GROUPS[group][owner].defaults()[key]
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value).replace(" ", "")
    for form in ("", "+"):
        code = main(["train", f"{group}={other}", f"{form}{group}.{key}={text}", f"run_dir={run_dir}"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert f"{group} '{other}' has no setting '{key}'" in err and "its settings are" in err, err
        assert not run_dir.exists()


@pytest.mark.parametrize("selection", [[f"{g}={o}"] for g, opts in GROUPS.items() if g != "trainer" for o in opts])
def test_every_registered_option_composes_to_a_valid_config(selection):
    """Each option's registered defaults pass its own checks (the ConfigStore node is the dataclass)."""
    check_config(compose_config(selection))


def test_saved_configs_are_checked_per_component():
    config = compose_config(["prior=standard"])
    config["prior"]["components"] = 3
    with pytest.raises(ConfigError, match="prior 'standard' has no setting 'components'"):
        check_config(config)


def test_nan_is_not_a_learning_rate(capsys):
    assert main(["train", "trainer.lr=nan"]) == 2
    assert "trainer.lr must be a finite number > 0, got nan" in capsys.readouterr().err
