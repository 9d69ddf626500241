"""Start-up: `pyro-mvae --help`, `--version` and a refused setting import only what they need
(no matplotlib, torchvision, torch.compile's machinery, scikit-learn, MLflow, SciPy or ArviZ),
and take under 1.5× the time of `import torch` measured beside them."""

import subprocess
import sys
import time

import pytest

HEAVY = ("matplotlib", "torchvision", "torch._dynamo", "sklearn", "mlflow", "scipy", "arviz", "tensorboard")
COMMANDS = {"--help": ["--help"], "--version": ["--version"], "bad setting": ["train", "trainer.epoch=3"]}


def _loaded(args: list[str]) -> set[str]:
    code = ("import sys; from pyro_mvae.cli import main\n"
            "try:\n    main(sys.argv[1:])\nfinally:\n    print('\\n'.join(sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    return set(done.stderr.splitlines())


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_that_do_no_work_import_nothing_heavy(command):
    loaded = _loaded(COMMANDS[command])
    assert "torch" in loaded  # the registries' components are torch modules
    assert not {name for name in loaded if name.split(".")[0] in HEAVY or name.startswith(HEAVY)}


def _seconds(code: str) -> float:
    best = float("inf")
    for _ in range(3):
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        best = min(best, time.perf_counter() - tic)
    return best


def test_help_starts_within_half_an_import_of_torch():
    torch_alone = _seconds("import torch")
    help_ = _seconds("from pyro_mvae.cli import main; main(['--help'])")
    assert help_ < 1.5 * torch_alone, (help_, torch_alone)
