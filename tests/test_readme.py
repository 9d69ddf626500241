"""The README's Python snippets run as written and leave runs the command line can use."""

import re
from pathlib import Path

import pytest

from pyro_mvae.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _python_block(after: str) -> str:
    """The first ```python block after the heading ``after``."""
    return re.search(re.escape(after) + r".*?```python\n(.*?)```", README, re.S).group(1)


@pytest.fixture(scope="module")
def snippet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        exec(compile(_python_block("### From Python, without Hydra"), "README", "exec"), {})
    return root / "runs" / "example"


def test_a_run_fit_makes_from_python_evaluates_samples_and_resumes(snippet_run, capsys):
    assert main(["evaluate", str(snippet_run), "-K", "20", "--limit", "30", "--no-figures"]) == 0
    assert main(["sample", str(snippet_run), "-n", "4"]) == 0
    assert main(["train", f"resume={snippet_run}", "trainer.epochs=6", "trainer.eval_samples=10"]) == 0, \
        capsys.readouterr().err
    assert "IWAE log p(x) (K=10)" in capsys.readouterr().out


def test_the_config_snippet_trains_and_loads_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(_python_block("`compose_config` gives the command line's"), "README", "exec"), namespace)
    assert namespace["checkpoint"]["config"]["prior"]["name"] == "mixture"
    assert namespace["vae"].beta == 1.0 and (tmp_path / "runs" / "example2" / "report.json").exists()
