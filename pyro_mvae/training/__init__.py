"""One training run, above :mod:`pyro_mvae.data`, :mod:`pyro_mvae.plugins` and
:mod:`pyro_mvae.tracking`: the :class:`~pyro_mvae.training.train.Run` (:mod:`~pyro_mvae.training.train`),
its optimisers (:mod:`~pyro_mvae.training.optimizers`), checkpoints
(:mod:`~pyro_mvae.training.checkpoints`), the final report (:mod:`~pyro_mvae.training.report`),
signals (:mod:`~pyro_mvae.training.signals`) and several processes
(:mod:`~pyro_mvae.training.distributed`). What lived here before 0.3 moved to rooms of its own: the
data sets, batches and labelled sets to :mod:`pyro_mvae.data`; loggers, MLflow and provenance to
:mod:`pyro_mvae.tracking`; atomic storage to :mod:`pyro_mvae.storage`; the plugin registry to
:mod:`pyro_mvae.plugins`; the composition and checks of a configuration to
:mod:`pyro_mvae.compose`; run directories to :mod:`pyro_mvae.runs`. Their old paths here still
import, with a DeprecationWarning, until the next release."""
