"""`pyro-mvae train` end to end, and bad input refused with a clear error and no run directory."""

import json
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from idx import write_tiny_mnist
from pyro_mvae.cli import main
from pyro_mvae.data import load_digits
from pyro_mvae.errors import DataError, UnknownNameError
from pyro_mvae.models.registry import build_vae
from pyro_mvae.training.train import TrainerConfig, fit

FAST = ["trainer.epochs=2", "trainer.eval_samples=30", "trainer.eval_chunk_size=10",
        "trainer.progress=false", "data.batch_size=100", "net.hidden=[32]", "net.latent_dim=4"]


def run_cli(tmp_path, *overrides):
    run_dir = tmp_path / "run"
    return main(["train", *FAST, f"run_dir={run_dir}", *overrides]), run_dir


def test_default_train_writes_a_complete_run_directory(tmp_path, capsys):
    code, run_dir = run_cli(tmp_path)
    assert code == 0
    out = capsys.readouterr().out
    assert "IWAE log p(x) (K=30)" in out and f"figures in {run_dir / 'figures'}/" in out
    assert {p.name for p in run_dir.iterdir()} == {"config.yaml", "environment.json", "metrics.jsonl",
                                                  "timings.jsonl", "best.pt", "last.pt", "report.json", "figures",
                                                  "eval.json", "per_datapoint_test.csv", "evaluations"}
    assert {p.name for p in (run_dir / "figures").iterdir()} == {
        f"{name}.png" for name in ("samples", "reconstructions", "latent_map", "latent_marginals",
                                   "interpolations", "training_curves")}
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*run_dir.iterdir(), *(run_dir / "figures").iterdir()]
             if p.is_file()}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # the user's umask, not mkstemp's 0600
    report = json.loads((run_dir / "report.json").read_text())
    assert report["dataset"] == "digits" and report["K"] == 30 and report["n_test"] == 297
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert ckpt["config"]["prior"]["name"] == "factorized_mixture"
    assert ckpt["config"]["guide"]["name"] == "gaussian"  # the route study's winner
    assert "optimizer" in ckpt and "model" in ckpt


def test_mnist_from_tiny_idx_files_through_the_cli(tmp_path, capsys):
    write_tiny_mnist(tmp_path / "data", n_train=60, n_test=20)
    code, run_dir = run_cli(tmp_path, "data=mnist", f"data.root={tmp_path / 'data'}",
                            "data.download=false", "data.val_size=20", "prior=mixture",
                            "guide=gaussian", "objective=tracegraph", "trainer.figures=false")
    assert code == 0
    assert json.loads((run_dir / "report.json").read_text())["n_test"] == 20
    assert not (run_dir / "figures").exists() and "figures in" not in capsys.readouterr().out


@pytest.mark.parametrize("overrides,needle", [
    (["prior=vampire"], "prior"),
    (["guide=flowy"], "guide"),
    (["prior=standard", "guide=relaxed_mixture"], "needs a prior with `has_components`"),
    (["data.binarize=false"], "binary"),
    (["data=mnist", "data.root=/nonexistent/folder", "data.download=false"], "t10k-images-idx3-ubyte"),
    (["trainer.epochs=0"], "trainer.epochs"),
    (["trainer.epoch=3"], "epoch"),
    (["device=tpu"], "device"),
])
def test_bad_input_is_refused_without_a_run_directory(tmp_path, capsys, overrides, needle):
    code, run_dir = run_cli(tmp_path, *overrides)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("pyro-mvae: error:") and needle in err and "Traceback" not in err
    assert not run_dir.exists()


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="factorized_mixture, flow, mixture, standard, vamp"):
        build_vae(64, {"name": "gmm"}, {"name": "gaussian"}, {"name": "bernoulli"},
                  {"name": "mlp", "hidden": [8], "latent_dim": 2})


def test_wrong_image_size_is_refused_before_writing(tmp_path):
    vae = build_vae(784, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [8], "latent_dim": 2})
    with pytest.raises(DataError, match=r"expected data of shape \(B, 784\), got \(\d+, 1, 8, 8\)"):
        fit(vae, load_digits(), TrainerConfig(epochs=1, progress=False), {"name": "trace"},
            tmp_path / "run", {})
    assert not (tmp_path / "run").exists()


def test_non_binary_and_nan_batches_are_refused():
    vae = build_vae(4, {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                    {"name": "mlp", "hidden": [8], "latent_dim": 2})
    with pytest.raises(DataError, match="binary"):
        vae.check_data(torch.full((3, 4), 0.5))
    with pytest.raises(DataError, match="NaN"):
        vae.check_data(torch.tensor([[0.0, 1.0, float("nan"), 1.0]]))


def test_a_run_directory_holding_a_run_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "run").mkdir()  # an empty directory (a sweep launcher makes each job's) is used
    code, run_dir = run_cli(tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert code == 0 and run_cli(tmp_path)[0] == 2  # the same command again: the run is finished
    assert "has finished its 2 epochs" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_version_help_and_cfg_job(tmp_path, capsys):
    from pyro_mvae import __version__
    from pyro_mvae.compose import compose_config

    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"pyro-mvae {__version__}"
    assert main(["train", "prior=mixture", "prior.components=4", "--help", f"run_dir={tmp_path / 'r'}"]) == 0
    out = capsys.readouterr().out
    assert "components: 4" in out and "the number of components" in out and "guide:" in out
    assert "  hidden: [300, 300]" in out  # a list on its key's line, with its documentation
    assert main(["train", "guide=relaxed_mixture", "--cfg", "job"]) == 0
    expected = compose_config(["guide=relaxed_mixture"])
    expected["objective"]["name"] = "trace"  # objective=auto, named
    assert OmegaConf.to_container(OmegaConf.create(capsys.readouterr().out)) == expected
    assert not (tmp_path / "r").exists()


def test_evaluate_on_a_folder_that_is_not_a_run_says_so(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "is not a pyro_mvae run directory" in capsys.readouterr().err


def test_default_run_directory_names_the_objective_and_estimator(tmp_path, monkeypatch):
    from pyro_mvae.compose import compose_config
    from pyro_mvae.session import default_run_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda fmt: "20261123-120000")
    first = default_run_dir(compose_config([]))
    Path(first).mkdir(parents=True)
    assert default_run_dir(compose_config([])) == first + "-2"  # two runs started in the same second

    config = compose_config(["prior=mixture", "guide=relaxed_mixture", "guide.estimator=gumbel_rao"])
    assert default_run_dir(config).endswith("_digits_mixture_relaxed_mixture-gumbel_rao_trace")
    config = compose_config(["prior=mixture", "guide=discrete_mixture", "guide.baseline=neural",
                             "objective=tracegraph"])
    assert default_run_dir(config).endswith("_digits_mixture_discrete_mixture-neural_tracegraph")
    config = compose_config(["prior=mixture", "guide=marginal_mixture"])  # objective=auto: stratified
    assert default_run_dir(config).endswith("_digits_mixture_marginal_mixture_stratified")
    config = compose_config(["prior=mixture", "guide=marginal_mixture", "guide.estimator=implicit"])
    assert default_run_dir(config).endswith("_digits_mixture_marginal_mixture-implicit_trace")


def test_every_option_of_every_component_is_documented_with_its_default():
    """What the docs' option tables print (``Settings.documented``): each key of each registered
    component's config once, with the default Hydra composes and a non-empty line of documentation."""
    from pyro_mvae.compose import RunSettings, compose_config, groups

    for group, options in groups().items():
        for name, cls in options.items():
            rows = cls.documented()
            assert [key for key, *_ in rows] == cls.keys(), (group, name)
            assert all(doc.strip() and words for _, _, words, doc in rows), (group, name)
            if group != "trainer":
                composed = compose_config([f"{group}={name}"])[group]
                assert {key: default for key, default, *_ in rows} == {k: v for k, v in composed.items()
                                                                       if k != "name"}, (group, name)
    assert ("seed", 0, "an integer", "seeds parameter initialisation, batch order and every draw") \
        in RunSettings.documented()


@pytest.mark.parametrize("command", ["evaluate", "sample", "compare"])
def test_each_command_documents_every_option(command, capsys):
    """Every option of ``pyro-mvae COMMAND --help`` has a line of help (the docs print this text)."""
    from pyro_mvae import cli

    parser = getattr(cli, f"{command}_parser")()
    assert all(action.help for action in parser._actions), command
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "(default: " in capsys.readouterr().out


def _capability(code: str, **env) -> str:
    """ATen's CPU capability in a fresh interpreter that runs ``code`` first."""
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"} | env
    code = f"{code}\nimport torch; print(torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_the_command_line_runs_avx2_kernels_where_torch_would_pick_avx512_unless_told_otherwise():
    """runs.prefer_cpu_kernels: AVX512 becomes AVX2 (measured faster here, see runs.CPU_KERNELS),
    any other capability is left as torch picks it, and a value the user set is kept."""
    own = _capability("")
    through_cli = _capability("from pyro_mvae.cli import main; main(['--version'])")
    assert through_cli == ("AVX2" if own.startswith("AVX512") else own)
    assert _capability("from pyro_mvae.cli import main; main(['--version'])",
                       ATEN_CPU_CAPABILITY=own.lower()) == own


def test_after_an_operation_the_command_line_leaves_the_kernels_of_child_processes_as_its_own():
    """Called from a program whose torch already chose its kernels (an operation ran), main() must
    not give a sweep's job processes other kernels than its own: their runs would differ from the
    same runs made in-process by float rounding."""
    child = "import subprocess, sys; print(subprocess.run([sys.executable, '-c', sys.argv[1]], text=True, " \
            "capture_output=True, check=True).stdout.strip())"
    code = (f"import sys, torch\ntorch.ones(3).exp()\nfrom pyro_mvae.cli import main\nmain(['--version'])\n"
            f"sys.argv[1:] = ['import torch; print(torch.backends.cpu.get_cpu_capability())']\n{child}\n"
            "print('parent', torch.backends.cpu.get_cpu_capability())")
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                         check=True).stdout.split()
    assert out[-3] == out[-1]  # the child's kernels, then the parent's
