"""Optuna searches whose study lives in a database (``hydra.sweeper.storage``), so that a search
can be stopped and continued, extended, and shared by several processes or machines.

With a storage (the search experiments set ``sqlite:///<sweep dir>/optuna.db``), the study of
``hydra.sweeper.study_name`` outlives the command. Running a search command again:

- counts the study's finished trials (complete or failed) and launches only the rest of
  ``hydra.sweeper.n_trials``: the same command continues a stopped search, a larger ``n_trials``
  extends a finished one, and a search that has all its trials starts nothing;
- asks first for the parameters of this sweep directory's trials that a stop left unfinished
  (``study.enqueue_trial``), so that each resumes in its own job directory from ``last.pt``;
- seeds the sampler with ``hydra.sweeper.sampler.seed`` plus the number of trials the study holds,
  so that a continuation draws new points instead of repeating the first launch's.

Several commands (on one machine or several, each with its own ``hydra.sweep.dir``) given the same
storage and study name add their trials to one study, each counting what the study holds when it
starts. ``pyro-mvae compare SWEEP_DIR`` lists the study's trials (:func:`study_table`).
"""

from pathlib import Path

from pyro_mvae.sweeps.record import job_states

UNFINISHED = ("running", "interrupted")
"""Job states of a trial that a stop left unfinished."""


def load(storage: str, name: str):
    """The Optuna study ``name`` in ``storage``, or None when it does not exist yet."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # no such study in this storage
        return None


def continue_study(storage: str, name: str, n_trials: int, sweep_dir: Path) -> tuple[int, int, int]:
    """Prepare a launch of the search ``name`` in ``storage``: enqueue the parameters of the trials
    this ``sweep_dir`` left unfinished; returns (trials to launch, of which resumed, trials the study
    already holds): ``n_trials`` minus the study's finished ones, at least 0."""
    from optuna.trial import TrialState

    study = load(storage, name)
    if study is None:
        return n_trials, 0, 0
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    stopped = [set(s["overrides"]) for s in job_states(sweep_dir).values() if s["state"] in UNFINISHED]
    resumed = [t for t in trials if t.state == TrialState.RUNNING
               and any({f"{k}={v}" for k, v in t.params.items()} <= overrides for overrides in stopped)]
    remaining = max(n_trials - finished, 0)
    for trial in resumed[:remaining]:
        study.enqueue_trial(trial.params)
    return remaining, min(len(resumed), remaining), len(trials)


def study_table(storage: str, name: str) -> str:
    """The study's trials as a markdown table (number, state, parameters, objective), best first
    line; an empty string when the study does not exist."""
    study = load(storage, name)
    if study is None:
        return ""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.value is not None]
    best = f"; best: trial {study.best_trial.number}, objective {study.best_value:.3f}" if complete else ""
    keys = sorted({k for t in trials for k in t.params})
    lines = [f"Optuna study {name!r} in {storage}: {len(trials)} trials, {len(complete)} complete{best}.", "",
             "| trial | state | " + " | ".join(keys) + " | objective |", "|---" * (len(keys) + 3) + "|"]
    for t in trials:
        values = [_cell(t.params.get(k)) for k in keys]
        lines.append(f"| {t.number} | {t.state.name.lower()} | " + " | ".join(values)
                     + f" | {'—' if t.value is None else f'{t.value:.3f}'} |")
    return "\n".join(lines)


def _cell(value) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
