"""The IWAE estimate under torch.compile: the same draws give the eager estimate to float rounding;
the setting is checked, falls back with a notice, and `auto` compiles only where it pays."""

import pyro
import pytest
import torch

from pyro_mvae.data import load_digits
from pyro_mvae.errors import ConfigError
from pyro_mvae.infer import compiled
from pyro_mvae.infer.ais import ais_log_likelihood
from pyro_mvae.infer.iwae import iwae_log_likelihood, log_weight_matrix
from pyro_mvae.models.registry import build_vae

NO_COMPILER = compiled.toolchain_problem()


def _digits_vae(prior: str, device="cpu"):
    pyro.set_rng_seed(0)
    data = load_digits()
    vae = build_vae(data.event_shape, prior={"name": prior}, guide={"name": "gaussian"},
                    likelihood={"name": "bernoulli"}, net={"name": "mlp", "hidden": [300, 300], "latent_dim": 40})
    return vae.to(device), data.test.x[:200].to(device)  # (200, 1, 8, 8)


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor needs a C++ compiler: {NO_COMPILER}")
def test_compiled_iwae_equals_eager_on_the_same_draws(capsys, device):
    vae, x = _digits_vae("factorized_mixture", device)
    estimates = {}
    for setting in ("false", "true"):
        pyro.set_rng_seed(1)
        estimates[setting] = iwae_log_likelihood(vae, x, num_samples=400, chunk_size=200, compile=setting)  # (200,)
    assert (estimates["true"] - estimates["false"]).abs().max() < 1e-4  # nats per image, float32
    assert estimates["false"].std() > 0.1  # the images differ: the comparison is not of constants
    assert compiled.compiled_log_joint(vae).compiled is not None, capsys.readouterr().err  # no fallback


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor needs a C++ compiler: {NO_COMPILER}")
def test_compiled_ais_equals_eager_on_the_same_draws_and_leaves_the_parameters_trainable(capsys):
    vae, x = _digits_vae("standard")
    estimates = {}
    for setting in ("false", "true"):
        pyro.set_rng_seed(3)
        estimates[setting], _ = ais_log_likelihood(vae, x[:20], steps=10, chains=2, compile=setting)  # (20,)
    assert (estimates["true"] - estimates["false"]).abs().max() < 1e-4  # nats per image
    assert compiled.compiled_log_joint(vae).compiled is not None, capsys.readouterr().err  # no fallback
    assert all(p.requires_grad for p in vae.parameters())  # frozen only while annealing


def test_a_compiler_failure_falls_back_to_eager_with_one_notice(monkeypatch, capsys):
    def broken_compile(fn, **options):
        def fails(*args):
            raise RuntimeError("no backend here\nsecond line")
        return fails

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    vae, x = _digits_vae("standard")
    joint = compiled.compiled_log_joint(vae)
    pyro.set_rng_seed(2)
    fallen = log_weight_matrix(vae, x[:20], 50, 25, joint)  # (20, 50)
    pyro.set_rng_seed(2)
    eager = log_weight_matrix(vae, x[:20], 50, 25)
    assert torch.equal(fallen, eager)
    err = capsys.readouterr().err
    assert err.count("torch.compile failed (RuntimeError: no backend here)") == 1 and "second line" not in err


def test_eval_json_records_whether_the_evaluation_was_compiled():
    from pyro_mvae.evaluation.evaluate import score_images

    vae, x = _digits_vae("standard")
    _, report = score_images(vae, x[:10], torch.zeros(10, dtype=torch.long), 30, compile="false")
    assert report["compiled"] is False


def test_auto_compiles_on_cpu_only_where_the_work_pays():
    if NO_COMPILER is None:
        assert compiled.resolve("auto", compiled.AUTO_MIN_WORK, "cpu")
    assert not compiled.resolve("auto", 297 * 5000 * 64, "cpu")  # digits' test set at K = 5000
    assert not compiled.resolve("auto", 1e12, "cuda")  # measured not to pay on a GPU: eager
    assert not compiled.resolve(False, 1e12, "cpu") and not compiled.resolve("false", 1e12, "cpu")


def test_bad_settings_and_a_missing_compiler_are_refused_by_name(monkeypatch):
    with pytest.raises(ConfigError, match="compile must be one of auto, true, false, got 'yes'"):
        compiled.resolve("yes", 1.0, "cpu")
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(ConfigError, match=r"needs a C\+\+ compiler.*apt install g\+\+.*compile=false"):
        compiled.resolve("true", 1.0, "cpu")
    assert not compiled.resolve("auto", 1e12, "cpu")  # auto falls back to eager


def test_trainer_compile_true_from_the_command_line_is_the_setting_true():
    from pyro_mvae.compose import check_config, compose_config, trainer_settings

    config = compose_config(["trainer.compile=true"])  # YAML reads `true` as a bool
    check_config(config)
    assert trainer_settings(config).compile == "true"
    assert trainer_settings(compose_config([])).compile == "auto"


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor needs a C++ compiler: {NO_COMPILER}")
def test_ragged_last_chunk_and_batch_are_padded_into_one_compilation():
    from torch._dynamo.utils import counters

    vae, x = _digits_vae("standard")
    x = x[:170]  # batches of 100 and 70 images; K = 280 in chunks of 100, 100 and 80
    counters.clear()
    estimates = {}
    for setting in ("true", "false"):
        pyro.set_rng_seed(4)
        estimates[setting] = iwae_log_likelihood(vae, x, num_samples=280, chunk_size=100, compile=setting)  # (170,)
    assert counters["stats"]["unique_graphs"] == 1  # (100, 100) compiled once; (80, 100), (100, 70), (80, 70) padded
    assert (estimates["true"] - estimates["false"]).abs().max() < 1e-4  # nats per image: padding dropped


def test_the_default_chunk_follows_the_device():
    from pyro_mvae.infer.iwae import CPU_CHUNK_ROWS, GPU_CHUNK_SIZE, default_chunk_size

    assert default_chunk_size(100, "cpu") * 100 == CPU_CHUNK_ROWS
    assert default_chunk_size(10 ** 6, "cpu") == 1
    assert default_chunk_size(100, "cuda") == GPU_CHUNK_SIZE


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor needs a C++ compiler: {NO_COMPILER}")
def test_dynamos_recompile_limit_is_a_fallback_with_a_notice_not_a_silent_eager_run(capsys):
    import torch._dynamo

    torch._dynamo.reset()  # no entries of other tests' models: the limit counts this one's shapes
    vae, x = _digits_vae("standard")
    joint = compiled.compiled_log_joint(vae)
    with torch._dynamo.config.patch(recompile_limit=1):  # (monkeypatch's undo would delete the option)
        pyro.set_rng_seed(5)
        log_weight_matrix(vae, x[:100], 40, 40, joint)  # (40, 100): compiled
        assert joint.compiled is not None
        pyro.set_rng_seed(5)
        beyond = log_weight_matrix(vae, x[:10], 40, 4, joint)  # (4, 10): a second shape, past the limit of 1
    pyro.set_rng_seed(5)
    assert torch.allclose(beyond, log_weight_matrix(vae, x[:10], 40, 4), atol=1e-4)  # eager values
    assert joint.compiled is None and "continuing without compilation" in capsys.readouterr().err
