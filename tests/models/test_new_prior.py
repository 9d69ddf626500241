"""The README's worked example of adding a prior: its code block, run as written, is one module;
one registration makes it a command-line option with typed, checked settings."""

import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from pyro_mvae import register
from pyro_mvae.cli import main
from pyro_mvae.models import registry

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def student_t():
    """The README's module, executed, and its prior registered (for this test only)."""
    block = re.search(r"<!-- new-prior-example -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    module = types.ModuleType("student_t")
    exec(compile(block, "README:student_t", "exec"), module.__dict__)
    register("prior", "student_t", module.StudentTPrior)  # the README's one line
    yield module.StudentTPrior
    registry.PRIORS.pop("student_t")


def test_its_density_is_scipys(student_t):
    prior = student_t(latent_dim=3, df=4.0)
    z = torch.randn(50, 3) * 3
    expected = stats.t(df=4.0).logpdf(z.numpy()).sum(-1)
    np.testing.assert_allclose(prior.marginal().log_prob(z).numpy(), expected, rtol=1e-5)


def test_one_registration_makes_it_a_checked_command_line_option(student_t, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "prior=student_t", "prior.dof=5", f"run_dir={run}"]) == 2
    assert "prior 'student_t' has no setting 'dof'; its settings are: df" in capsys.readouterr().err
    assert main(["train", "prior=student_t", "prior.df=-1", f"run_dir={run}"]) == 2
    assert "prior.df must be a finite number > 0, got -1" in capsys.readouterr().err
    assert main(["train", "prior=student_t", "guide=relaxed_mixture", f"run_dir={run}"]) == 2
    assert "`has_components`" in capsys.readouterr().err
    assert not run.exists()
    assert main(["train", "prior=student_t", "prior.df=5", "trainer.epochs=1", "trainer.eval_samples=10",
                 "trainer.eval_limit=20", "trainer.progress=false", "net.hidden=[32]", f"run_dir={run}"]) == 0
    assert (run / "report.json").exists()
