"""``python -m unet_demo lessons``: the recorded experiments, their runs and measured answers.

Reads the recordings under ``lessons/`` only (no TensorFlow, no training).

Example:
    $ python -m unet_demo lessons
    $ python -m unet_demo lessons --json
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``lessons`` sub-command.

    Example:
        >>> from unet_demo.cli import build_parser
        >>> build_parser().parse_args(["lessons", "--json"]).json
        True
    """
    parser = subparsers.add_parser(
        "lessons", help="list the recorded lesson experiments with their runs and test Dice",
        description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def _number(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def lesson_summaries() -> list[dict[str, Any]]:
    """One dict per experiment: question, runs (label, test Dice, gap, seconds), answer.

    Example:
        >>> [s["key"] for s in lesson_summaries()][:2]
        ['skip_connections', 'loss_imbalance']
    """
    from unet_demo.lessons.catalogue import list_experiments
    from unet_demo.lessons.recordings import load_experiment
    from unet_demo.lessons.replay import answer_sentence, best_run, verdict

    summaries = []
    for experiment in list_experiments():
        recording = load_experiment(experiment)
        runs = []
        for lesson_run in experiment.runs:
            recorded = recording.runs.get(lesson_run.key)
            runs.append({
                "key": lesson_run.key, "label": lesson_run.label, "recorded": bool(recorded),
                "test_dice": _number(recorded.test_dice) if recorded else None,
                "gap": _number(recorded.gap) if recorded else None,
                "train_seconds": _number(recorded.train_seconds) if recorded else None,
                "train_gflop": _number(recorded.train_gflop) if recorded else None,
                "receptive_field": _number(recorded.receptive_field) if recorded else None,
            })
        judged = verdict(recording)
        summaries.append({
            "key": experiment.key, "title": experiment.title, "question": experiment.question,
            "varies": list(experiment.varies), "runs": runs,
            "best": best_run(recording) if recording.runs else None,
            "answer": answer_sentence(recording), "agrees_with_guide": judged.agrees,
            "verdict": judged.text, "missing": list(recording.missing),
        })
    return summaries


def format_text(summaries: list[dict[str, Any]]) -> str:
    """Plain text: the experiment, one line per run, the answer."""
    lines = []
    for summary in summaries:
        lines.append(f"{summary['key']}: {summary['question']}")
        for run in summary["runs"]:
            dice = "not recorded" if run["test_dice"] is None else f"test Dice {run['test_dice']:.3f}"
            lines.append(f"  {run['key']:<12} {run['label']:<36} {dice}")
        lines.append(f"  -> {summary['answer']}")
        lines.append(f"     {summary['verdict']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the lessons (text or ``--json``); 0."""
    summaries = lesson_summaries()
    print(json.dumps(summaries, indent=2) if args.json else format_text(summaries))
    return 0
