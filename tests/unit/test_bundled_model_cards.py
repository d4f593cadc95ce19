"""Each bundled model, re-scored on its dataset's test split now, gives the scores its card records.

The card (`models/bundled/<name>/card.json`, written by scripts/train_bundled_models.py) holds
``test_metrics`` measured when the model was trained. Re-scoring goes through both doors a user
has: ``python -m unet_demo evaluate --model bundled:NAME --dataset NAME --split test --json``
(called in-process through `unet_demo.cli.main`) and the training engine's `evaluate_split`
with the run spec stored in the card. A mismatch means the model-input step (normalisation,
resizing) or the scoring changed since the model was trained: fix that, not this test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from unet_demo.cli import main  # noqa: E402
from unet_demo.training.runner import evaluate_split  # noqa: E402
from unet_demo.training.spec import RunSpec  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DIR = REPO_ROOT / "models" / "bundled"
NAMES = sorted(p.parent.name for p in BUNDLED_DIR.glob("*/model.keras"))
COMPARED = ("dice", "iou")  # per-image means; to 3 decimals as the app shows them

pytestmark = pytest.mark.slow


def _card(name: str) -> dict:
    return json.loads((BUNDLED_DIR / name / "card.json").read_text(encoding="utf-8"))


def _rounded(scores: dict) -> dict:
    return {key: round(float(scores[key]), 3) for key in COMPARED}


def test_every_bundled_dataset_has_a_model():
    assert NAMES == ["brain_skullstrip", "brain_tissue", "nuclei", "synthetic_lesions"]


@pytest.mark.parametrize("name", NAMES)
def test_cli_evaluate_matches_card(name, monkeypatch, capsys):
    monkeypatch.setenv("UNET_DEMO_BUNDLED_MODELS_DIR", str(BUNDLED_DIR))
    card = _card(name)["test_metrics"]
    code = main(["evaluate", "--model", f"bundled:{name}", "--dataset", name, "--split", "test",
                 "--no-distances", "--json"])
    assert code == 0
    outcome = json.loads(capsys.readouterr().out)
    assert len(outcome["rows"]) == card["num_images"]
    assert _rounded(outcome["mean"]) == _rounded(card)


@pytest.mark.parametrize("name", NAMES)
def test_engine_evaluate_split_with_card_spec_matches_card(name):
    import keras

    card = _card(name)
    spec = RunSpec.from_dict(card["config"])
    model = keras.saving.load_model(BUNDLED_DIR / name / "model.keras", compile=False,
                                    safe_mode=True)
    result = evaluate_split(model, spec, "test", distances=False)
    assert len(result.rows) == card["test_metrics"]["num_images"]
    assert _rounded(result.mean) == _rounded(card["test_metrics"])
