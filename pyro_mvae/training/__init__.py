"""One training run, above :mod:`pyro_mvae.data` and :mod:`pyro_mvae.tracking`: the
:class:`~pyro_mvae.training.train.Run` (:mod:`~pyro_mvae.training.train`), its optimisers
(:mod:`~pyro_mvae.training.optimizers`), checkpoints (:mod:`~pyro_mvae.training.checkpoints`), the
final report (:mod:`~pyro_mvae.training.report`), signals (:mod:`~pyro_mvae.training.signals`) and
several processes (:mod:`~pyro_mvae.training.distributed`); and, until they move above it, the
composition and checks of the whole configuration (:mod:`~pyro_mvae.training.config`), the plugin
registry of installed packages (:mod:`~pyro_mvae.training.plugins`) and run directories
(:mod:`~pyro_mvae.training.runs`). The data sets, batches and labelled sets moved to
:mod:`pyro_mvae.data`, the loggers, MLflow and provenance to :mod:`pyro_mvae.tracking`, atomic
storage to :mod:`pyro_mvae.storage`; their old paths here still import, with a DeprecationWarning."""
