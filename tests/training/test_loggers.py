"""TensorBoard logging mirrors metrics.jsonl, read back with TensorBoard's own EventAccumulator."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pyro_mvae.cli import main
from pyro_mvae.tracking.loggers import SCALARS

QUICK = ["trainer.epochs=3", "trainer.eval_samples=20", "trainer.eval_limit=30", "trainer.progress=false",
         "net.hidden=[32]", "net.latent_dim=4", "seed=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("logged")
    assert main(["train", *QUICK, "trainer.logger=tensorboard", "trainer.log_images_every=2",
                 f"run_dir={root / 'on'}"]) == 0
    assert main(["train", *QUICK, f"run_dir={root / 'off'}"]) == 0
    events = EventAccumulator(str(root / "on" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    return root, events.Reload()


def test_scalars_equal_the_metrics_file(runs):
    root, events = runs
    records = [json.loads(line) for line in (root / "on" / "metrics.jsonl").read_text().splitlines()]
    for key in SCALARS:
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in logged] == [r["epoch"] for r in records], key
        assert [v for _, v in logged] == pytest.approx([r[key] for r in records], rel=1e-6, abs=1e-6), key


def test_image_grids_every_n_epochs_and_the_final_result(runs):
    root, events = runs
    assert [e.step for e in events.Images("samples")] == [0, 2]
    assert [e.step for e in events.Images("validation (top) and reconstructions (bottom)")] == [0, 2]
    report = json.loads((root / "on" / "report.json").read_text())
    assert events.Scalars("hparam/test_iwae_ll")[0].value == pytest.approx(report["test_iwae_ll"], rel=1e-6)


def test_logging_changes_no_number_of_the_run(runs):
    root, _ = runs
    assert (root / "on" / "metrics.jsonl").read_bytes() == (root / "off" / "metrics.jsonl").read_bytes()
