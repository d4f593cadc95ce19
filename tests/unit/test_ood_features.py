"""The feature-space OOD detector: bundled statistics, a small cross-domain matrix, runs."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from unet_demo.data.preprocess import prepare_image
from unet_demo.data.readers import read_image_file
from unet_demo.data.sources import load_split
from unet_demo.errors import UNetDemoError
from unet_demo.inference import ood
from unet_demo.inference.registry import list_bundled_models, open_model
from unet_demo.inference.segment import SegmentOptions, segment_loaded


def _scores(handle, images):
    detector = ood.load_feature_detector(handle.source)
    batch = np.stack([prepare_image(i, size=handle.input_shape[:2],
                                    channels=handle.input_shape[2],
                                    normalization=handle.normalization).model_input
                      for i in images])
    features = ood.pooled_features(handle.shared.keras_model, batch, detector.layers)
    return np.array([s.score for s in ood.score_features(detector, features)])


def _photos():
    import skimage.data

    return [np.asarray(getattr(skimage.data, n)(), np.float32)
            for n in ("camera", "astronaut", "coins", "moon", "chelsea", "text")]


def test_every_bundled_model_ships_small_statistics_named_in_its_card():
    for info in list_bundled_models():
        path = info.path.parent / ood.FEATURE_FILE
        assert path.is_file(), info.name
        assert path.stat().st_size < 200 * 1024
        assert info.card["ood_detector"]["file"] == ood.FEATURE_FILE
        detector = ood.load_feature_detector(info.path.parent)
        assert detector.threshold > 0 and detector.train_features.dtype == np.float16


@pytest.mark.parametrize(("model", "foreign"), [("brain_skullstrip", "nuclei"),
                                                ("nuclei", "brain_skullstrip")])
def test_small_matrix_own_test_split_passes_and_foreign_images_are_flagged(model, foreign):
    handle = open_model(f"bundled:{model}")
    own = _scores(handle, list(load_split(model, "test").images))
    others = _scores(handle, [*load_split(foreign, "test").images[:6], *_photos(),
                              read_image_file(get_testdata_file("CT_small.dcm")).pixels,
                              read_image_file(get_testdata_file("MR_small.dcm")).pixels])
    assert (own > 1).mean() <= 0.05
    assert (others > 1).mean() >= 0.9
    assert ood.auroc(own, others) >= 0.95


def test_ct_slice_given_to_the_brain_model_gets_the_plain_verdict():
    handle = open_model("bundled:brain_skullstrip")
    result = segment_loaded(read_image_file(get_testdata_file("CT_small.dcm")), handle,
                            SegmentOptions())
    score = ood.feature_score(handle.shared.keras_model, result.model_input,
                              ood.load_feature_detector(handle.source))
    assert score.flagged and score.score > 1.5
    assert "expect nonsense" in score.verdict
    assert set(score.to_dict()) == {"score", "distance", "threshold", "flagged", "verdict"}


def test_fit_save_load_and_a_damaged_file(tmp_path):
    handle = open_model("bundled:nuclei")
    model = handle.shared.keras_model
    train = load_split("nuclei", "train").images[:20]
    val = load_split("nuclei", "val").images
    detector = ood.fit_feature_detector(model, train, val, percentile=95)
    assert detector.info["num_train"] == 20 and detector.info["num_val"] == len(val)
    assert detector.threshold >= detector.info["train_max"]
    loaded = ood.load_feature_detector(ood.save_feature_detector(detector, tmp_path).parent)
    assert loaded.layers == detector.layers and loaded.threshold == detector.threshold
    assert ood.load_feature_detector(tmp_path / "none") is None
    (tmp_path / ood.FEATURE_FILE).write_bytes(b"not an npz")
    with pytest.raises(UNetDemoError, match="fit_ood.py"):
        ood.load_feature_detector(tmp_path)
    assert ood.fit_run_detector(model, train[:1], val, tmp_path / "run") is None
    foreign = ood.FeatureDetector(("no_such_layer",), detector.train_features, 1.0, {})
    with pytest.raises(UNetDemoError, match="do not fit this model"):
        ood.feature_score(model, np.zeros((128, 128, 1), np.float32), foreign)


def test_a_finished_run_stores_its_detector(tmp_path, monkeypatch):
    from tests.unit.training_helpers import tiny_spec
    from unet_demo.training.runner import run_training

    monkeypatch.setenv("UNET_DEMO_XLA", "0")  # no compile: the hook is what is tested
    run_training(tiny_spec(epochs=1, images=8), tmp_path)
    detector = ood.load_feature_detector(tmp_path)
    assert detector is not None and detector.info["num_train"] == 8
    assert detector.info["num_val"] > 0
