"""Optional live logs of a run (``trainer.logger``). ``metrics.jsonl`` stays the reference; a
logger only mirrors it for viewing. ``mlflow``: :mod:`pyro_mvae.tracking.mlflow_runs`.

``tensorboard`` (``pip install "pyro_mvae[tensorboard]"``) writes ``RUN_DIR/tensorboard/``: each
epoch's scalars (the metrics record's numbers, under their own names), every
``trainer.log_images_every`` epochs a grid of samples and one of validation images above their
reconstructions, and at the end the test IWAE log-likelihood and ELBO with the run's
hyper-parameters (``add_hparams``). ``tensorboard --logdir RUN_DIR`` shows them.
"""

from pathlib import Path

import torch

from pyro_mvae.data.splits import as_image_batch

SCALARS = ("train_elbo", "val_elbo", "val_log_lik", "val_kl", "beta", "tau", "skipped_steps")
"""The metrics record's keys that are logged, each as the scalar of that name (nats per image
for the ELBO terms)."""
OPTIONAL_SCALARS = ("val_iwae", "val_error", "train_labelled_loss", "seconds")
"""Keys of the record logged when present (``trainer.val_iwae_samples``, ``data.labelled``)."""


class NoLogger:
    """``trainer.logger=none``: nothing beyond the run directory's own files."""

    def epoch(self, record: dict, vae, data) -> None:
        """Log one epoch's metrics record."""

    def close(self, report: dict | None = None, hparams: dict | None = None) -> None:
        """Log the final report (None: the run stopped before it) and flush."""


class TensorBoardLogger(NoLogger):
    """TensorBoard event files under ``run_dir / "tensorboard"``; ``first_epoch`` > 0 (a resume)
    drops the events a killed session wrote past its checkpoint. Its images are drawn on a
    forked random state, so logging changes no number of the run.
    """

    def __init__(self, run_dir: Path, images_every: int, first_epoch: int = 0, config: dict | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=first_epoch or None)
        self.images_every = images_every

    def epoch(self, record: dict, vae, data) -> None:
        step = record["epoch"]
        for key in SCALARS + OPTIONAL_SCALARS:
            if key in record:
                self.writer.add_scalar(key, record[key], step)
        if step % self.images_every == 0:
            device = next(vae.parameters()).device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                samples, x = vae.sample(64), data.val.x[:16]  # (64, *event), (16, *event)
                pairs = torch.cat([x, vae.reconstruct(x)])  # (32, *event)
            self.writer.add_image("samples", _grid(samples, data.event_shape), step)
            self.writer.add_image("validation (top) and reconstructions (bottom)", _grid(pairs, data.event_shape), step)

    def close(self, report: dict | None = None, hparams: dict | None = None) -> None:
        if report is not None:
            metrics = {"hparam/test_iwae_ll": report["test_iwae_ll"], "hparam/test_elbo": report["test_elbo"]}
            self.writer.add_hparams(hparams or {}, metrics, run_name=".")
        self.writer.close()


def _grid(images: torch.Tensor, event_shape) -> torch.Tensor:
    """Images ``(N, *event)`` in [0, 1] -> one ``(3, H', W')`` grid, 16 per row."""
    from torchvision.utils import make_grid  # here: torchvision's import costs a second

    return make_grid(as_image_batch(images, event_shape), nrow=16, padding=1, pad_value=0.5)


def flat_hparams(config: dict) -> dict:
    """``{"group.key": value}`` of a config, lists as strings: TensorBoard's hparams take
    numbers, strings and booleans only."""
    out = {}
    for group, values in config.items():
        if isinstance(values, dict):
            out.update({f"{group}.{k}": v if isinstance(v, (int, float, str, bool)) else str(v)
                        for k, v in values.items()})
        elif isinstance(values, (int, float, str, bool)):
            out[group] = values
    return out
