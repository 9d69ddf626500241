"""Many runs at once: ``pyro-mvae train -m`` on Hydra's multirun, launchers and sweepers
(:mod:`~pyro_mvae.sweeps.app`), the jobs checked before any starts (:mod:`~pyro_mvae.sweeps.grid`),
the sweep's record (:mod:`~pyro_mvae.sweeps.record`), a stop signal passed on to the jobs'
processes (:mod:`~pyro_mvae.sweeps.stop`), and Optuna studies kept in a database
(:mod:`~pyro_mvae.sweeps.study`)."""
