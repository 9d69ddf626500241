"""Reporting on trained runs, on top of :mod:`pyro_mvae.training`: the evaluation of a run
directory (:mod:`~pyro_mvae.evaluation.evaluate`), its diagnostics
(:mod:`~pyro_mvae.evaluation.diagnostics`), the AIS and BDMC sections
(:mod:`~pyro_mvae.evaluation.annealed`), figures (:mod:`~pyro_mvae.evaluation.figures`) and the
tables that compare runs (:mod:`~pyro_mvae.evaluation.compare`)."""
