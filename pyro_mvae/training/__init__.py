"""One training run and everything around it, above :mod:`pyro_mvae.models` and
:mod:`pyro_mvae.infer`: the :class:`~pyro_mvae.training.train.Run` (:mod:`~pyro_mvae.training.train`),
configuration (:mod:`~pyro_mvae.training.config`), data sets (:mod:`~pyro_mvae.training.datasets`)
and their batches (:mod:`~pyro_mvae.training.data`), semi-supervised labels
(:mod:`~pyro_mvae.training.labelled`), MLflow tracking (:mod:`~pyro_mvae.training.tracking`),
checkpoints (:mod:`~pyro_mvae.training.checkpoints`), run directories
(:mod:`~pyro_mvae.training.runs`), plugins (:mod:`~pyro_mvae.training.plugins`), the report
(:mod:`~pyro_mvae.training.report`), loggers (:mod:`~pyro_mvae.training.loggers`), several processes
(:mod:`~pyro_mvae.training.distributed`), signals (:mod:`~pyro_mvae.training.signals`), storage
(:mod:`~pyro_mvae.training.storage`) and provenance (:mod:`~pyro_mvae.training.provenance`)."""
