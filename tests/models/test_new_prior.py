"""The contributing guide's worked example of adding a prior: its code block, run as written, is one module;
one registration makes it a command-line option with typed, checked settings."""

import types

import numpy as np
import pytest
import torch
from scipy import stats

from doc_pages import block_after
from pyro_mvae import register
from pyro_mvae.cli import main
from pyro_mvae.models import registry

PAGE = "docs/contributing.md"


@pytest.fixture
def student_t():
    """The guide's module, executed, and its prior registered (for this test only)."""
    block = block_after(PAGE, "<!-- new-prior-example -->")
    module = types.ModuleType("student_t")
    exec(compile(block, f"{PAGE}:student_t", "exec"), module.__dict__)
    register("prior", "student_t", module.StudentTPrior)  # the guide's one line
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
    assert ("prior 'student_t' has no setting 'dof' (did you mean 'df'?); its settings are: df"
            in capsys.readouterr().err)
    assert main(["train", "prior=student_t", "prior.df=-1", f"run_dir={run}"]) == 2
    assert "prior.df must be a finite number > 0, got -1" in capsys.readouterr().err
    assert main(["train", "prior=student_t", "guide=relaxed_mixture", f"run_dir={run}"]) == 2
    assert "`has_components`" in capsys.readouterr().err
    assert not run.exists()
    assert main(["train", "prior=student_t", "prior.df=5", "trainer.epochs=1", "trainer.eval_samples=10",
                 "trainer.eval_limit=20", "trainer.progress=false", "net.hidden=[32]", f"run_dir={run}"]) == 0
    assert (run / "report.json").exists()
