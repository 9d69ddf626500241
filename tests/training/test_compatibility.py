"""Run directories written by the 0.1.0 release (``tests/fixtures/run_0_1_0``, written at commit
a8ddcde, before the subpackage layout and the typed configs) still load, evaluate and resume."""

import json
import shutil
from pathlib import Path

import torch

from pyro_mvae.cli import main
from pyro_mvae.runs import load_run
from pyro_mvae.training import checkpoints

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "run_0_1_0"


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    return run


def test_a_release_run_loads_the_trained_model(tmp_path):
    """The parameters are the checkpoint's, and the model scores the release's test images as
    the release's report says (one-sample ELBO within 4 standard errors; an untrained model
    is ~10 nats below)."""
    run = _copy(tmp_path)
    vae, config, ckpt, data = load_run(run)
    assert not any(m.training for m in vae.modules())  # ready to evaluate: eval mode
    saved = checkpoints.upgrade_model(torch.load(run / "best.pt", weights_only=True)["model"])  # 0.1.0's keys
    assert all(torch.equal(vae.state_dict()[k], v) for k, v in saved.items())
    report = json.loads((run / "report.json").read_text())
    torch.manual_seed(0)
    x = data.test.x[:report["n_test"]]
    elbo = torch.stack([sum(vae.elbo_terms(x)[i] * s for i, s in ((0, 1), (1, -1))) for _ in range(50)])
    assert abs(elbo.mean().item() - report["test_elbo"]) < 4 * report["test_elbo_se"], (elbo.mean(), report)


def test_a_release_run_evaluates(tmp_path, capsys):
    run = _copy(tmp_path)
    assert main(["evaluate", str(run), "-K", "20", "--limit", "20", "--no-figures"]) == 0
    assert json.loads((run / "eval.json").read_text())["n"] == 20


def test_a_release_run_resumes(tmp_path, capsys):
    run = _copy(tmp_path)
    assert main(["train", f"resume={run}", "trainer.epochs=3"]) == 0, capsys.readouterr().err
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2]
    assert json.loads((run / "report.json").read_text())["epochs_run"] == 3


def test_a_marginal_mixture_run_of_0_1_0_keeps_its_implicit_gradient(tmp_path):
    """0.1.0 had one estimator for guide=marginal_mixture; its configs name none, and such a run
    must resume with the gradient it trained with, not the newer default."""
    from pyro_mvae.training import checkpoints

    ckpt = torch.load(FIXTURE / "best.pt", weights_only=True)
    ckpt["config"]["guide"] = {"name": "marginal_mixture"}
    torch.save(ckpt, tmp_path / "best.pt")
    assert checkpoints.load(tmp_path / "best.pt")["config"]["guide"]["estimator"] == "implicit"
    trained = checkpoints.as_trained({"guide": {"name": "marginal_mixture", "estimator": "auto"}})
    assert trained["guide"]["estimator"] == "auto"


def test_a_run_resumed_across_the_layout_change_continues_as_uninterrupted(tmp_path):
    """Issue 46: a run stopped by the code before the package's rooms were rearranged, resumed by
    today's, ends as the same run trained in one go by the old code: the same metrics to float
    rounding and the same parameters and Adam moments to 1e-5 (bit for bit on the machine that
    wrote the fixture; another processor may round differently)."""
    fixture = FIXTURES / "resume_before_46"
    run = tmp_path / "split"
    shutil.copytree(fixture / "split", run)
    assert main(["train", f"resume={run}", "trainer.epochs=4"]) == 0
    ours, theirs = (torch.load(d / "last.pt", weights_only=True) for d in (run, fixture / "whole"))
    for key, value in theirs["model"].items():
        torch.testing.assert_close(ours["model"][key], value, rtol=0, atol=1e-5)
    for a, b in zip(ours["optimizer"]["state"].values(), theirs["optimizer"]["state"].values()):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    mine = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    whole = [json.loads(line) for line in (fixture / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in mine] == [r["epoch"] for r in whole] == [0, 1, 2, 3]
    for a, b in zip(mine, whole):
        assert abs(a["val_elbo"] - b["val_elbo"]) < 1e-4 and abs(a["train_elbo"] - b["train_elbo"]) < 1e-4
