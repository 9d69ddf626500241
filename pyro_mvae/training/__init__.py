"""Running: configuration, data sets, the training :class:`~pyro_mvae.training.train.Run`,
semi-supervised labels, checkpoints, run directories, storage, signals, several processes and provenance. Sits above
:mod:`pyro_mvae.models` and :mod:`pyro_mvae.infer`."""
