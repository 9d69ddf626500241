"""Watching runs: what a run records about where it comes from (:mod:`.provenance`), and the
loggers that mirror its metrics for viewing, TensorBoard (:mod:`.loggers`) and MLflow
(:mod:`.mlflow_runs`); ``metrics.jsonl`` stays the reference. :func:`logger_class` picks the one
``trainer.logger`` names."""

from pyro_mvae.errors import ConfigError
from pyro_mvae.tracking.loggers import NoLogger, TensorBoardLogger


def logger_class(name: str) -> type:
    """The logger ``trainer.logger`` names (``none``, ``tensorboard`` or ``mlflow``,
    :mod:`pyro_mvae.tracking.mlflow_runs`), checked before a run directory exists. Each is built as
    ``Logger(run_dir, images_every, first_epoch, config)``.

    Raises:
        ConfigError: for ``tensorboard`` or ``mlflow`` without its package (the message says how).
    """
    if name == "mlflow":
        from pyro_mvae.tracking.mlflow_runs import MLflowLogger, client_class

        client_class()  # installed, or the error that says how
        return MLflowLogger
    if name != "tensorboard":
        return NoLogger
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError as err:
        raise ConfigError("trainer.logger=tensorboard needs the tensorboard package: "
                          "pip install \"pyro_mvae[tensorboard]\" (or trainer.logger=none)") from err
    return TensorBoardLogger
