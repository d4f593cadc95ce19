"""What a recording says: the measured answer in one sentence, the verdict against the guide.

Every number in the sentence comes from the recording (`RunRecording.measure`), so the page, the
CLI and the tests read the same figures; the verdict says plainly when the measurement
disagrees with the guide's claim.

Example:
    >>> from unet_demo.lessons.catalogue import get_experiment
    >>> from unet_demo.lessons.recordings import load_experiment
    >>> answer_sentence(load_experiment(get_experiment("depth")))  # doctest: +SKIP
    'Test Dice: depth 1 0.61, depth 2 0.83, depth 3 0.90, depth 4 0.91 ...'
"""

from __future__ import annotations

import dataclasses
import math

from unet_demo.lessons.catalogue import LOWER_IS_BETTER, MEASURES, Experiment
from unet_demo.lessons.recordings import ExperimentRecording


def format_measure(name: str, value: float) -> str:
    """A value as the sentence prints it: seconds as whole numbers, scores with two decimals.

    Example:
        >>> format_measure("test_dice", 0.9137), format_measure("train_seconds", 27.4)
        ('0.91', '27 s')
        >>> format_measure("gap", -0.031), format_measure("receptive_field", 44.0)
        ('-0.03', '44 px')
    """
    if not math.isfinite(value):
        return "n/a"
    if name == "train_seconds":
        return f"{value:.0f} s"
    if name == "receptive_field":
        return f"{value:.0f} px"
    if name == "train_gflop":
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}"
    return f"{value:.2f}"


def _score(name: str, value: float) -> float:
    """The value compared: a gap counts by its size (a negative gap is no better than zero)."""
    return abs(value) if name == "gap" else value


def best_run(recording: ExperimentRecording, measure: str | None = None) -> str:
    """Key of the run with the best value of ``measure`` (the experiment's first by default).

    Higher is better except for `LOWER_IS_BETTER` measures; a gap counts by its size.
    """
    name = measure or recording.experiment.measures[0]
    values = {key: _score(name, run.measure(name)) for key, run in recording.runs.items()
              if math.isfinite(run.measure(name))}
    if not values:
        return ""
    pick = min if name in LOWER_IS_BETTER else max
    return pick(values, key=values.__getitem__)


def _label(experiment: Experiment, key: str) -> str:
    return experiment.run(key).label


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How the recording compares with the guide.

    Attributes:
        agrees: True, False, or None when the guide makes no prediction.
        text: one sentence for the page.
    """

    agrees: bool | None
    text: str


def measure_clause(recording: ExperimentRecording, name: str) -> str:
    """ "test Dice: no skips 0.84, all skips 0.91" for the recorded runs, in catalogue order."""
    experiment = recording.experiment
    parts = [f"{_label(experiment, run.key)} "
             f"{format_measure(name, recording.runs[run.key].measure(name))}"
             for run in experiment.runs if run.key in recording.runs]
    return f"{MEASURES[name]}: " + ", ".join(parts)


def answer_sentence(recording: ExperimentRecording) -> str:
    """The measured answer: every measure for every recorded run, then the best run.

    Example:
        >>> from unet_demo.lessons.catalogue import get_experiment
        >>> empty = ExperimentRecording(get_experiment("depth"), {}, ("d1",))
        >>> answer_sentence(empty)
        'Not recorded yet: run scripts/record_lessons.py.'
    """
    if not recording.runs:
        return "Not recorded yet: run scripts/record_lessons.py."
    experiment = recording.experiment
    clauses = [measure_clause(recording, name) for name in experiment.measures]
    text = "; ".join(clauses)
    text = text[0].upper() + text[1:]
    winner = best_run(recording)
    if winner:
        main = experiment.measures[0]
        text += (f". Best by {MEASURES[main]}: {_label(experiment, winner)}"
                 f" ({format_measure(main, recording.runs[winner].measure(main))})")
    return text + "."


def margin(recording: ExperimentRecording) -> float:
    """How far the best run is ahead of the guide's expected run on the deciding measure."""
    experiment = recording.experiment
    name = experiment.measures[0]
    winner = best_run(recording)
    if not experiment.expected or experiment.expected not in recording.runs or not winner:
        return math.nan
    return abs(_score(name, recording.runs[winner].measure(name))
               - _score(name, recording.runs[experiment.expected].measure(name)))


def runner_up_margin(recording: ExperimentRecording) -> float:
    """How far the best run is ahead of the second best on the deciding measure."""
    name = recording.experiment.measures[0]
    values = sorted((_score(name, run.measure(name)) for run in recording.runs.values()
                     if math.isfinite(run.measure(name))),
                    reverse=name not in LOWER_IS_BETTER)
    return abs(values[0] - values[1]) if len(values) > 1 else math.nan


TIE = 0.01
"""Scores within this of each other count as a tie (one recording, one seed)."""


def verdict(recording: ExperimentRecording) -> Verdict:
    """Whether the recording bears out the guide's claim (ties within `TIE` count as agreeing).

    Example:
        >>> from unet_demo.lessons.catalogue import get_experiment
        >>> verdict(ExperimentRecording(get_experiment("depth"), {}, ())).agrees is None
        True
    """
    experiment = recording.experiment
    winner = best_run(recording)
    if len(recording.runs) < 2:
        return Verdict(None, "Only one run is recorded so far: nothing to compare yet.")
    if not experiment.expected or experiment.expected not in recording.runs or not winner:
        return Verdict(None, "The guide names no winner here; read the numbers.")
    name = experiment.measures[0]
    expected = _label(experiment, experiment.expected)
    if winner == experiment.expected:
        lead = runner_up_margin(recording)
        if lead <= TIE:
            return Verdict(True, f"The guide expects {expected} to do best; it leads by only "
                                 f"{lead:.3f} {MEASURES[name]}, a tie within this recording's "
                                 "noise.")
        return Verdict(True, f"As the guide says: {expected} does best by {MEASURES[name]} "
                             f"(by {format_measure(name, lead)}).")
    ahead = margin(recording)
    if ahead <= TIE:
        return Verdict(True, f"The guide expects {expected} to do best; here it ties with "
                             f"{_label(experiment, winner)} (within {ahead:.3f}).")
    return Verdict(False, f"This recording contradicts the guide: it expects {expected} to do "
                          f"best, but {_label(experiment, winner)} is ahead by "
                          f"{format_measure(name, ahead)} {MEASURES[name]} in this small, "
                          "short run (one seed; a longer run may change it).")
