"""SharedModel: concurrent sessions get exactly the single-threaded results; cache keys."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.inference.shared import SharedModel, inference_cache_key

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def shared() -> SharedModel:
    from unet_demo.config import UNetConfig
    from unet_demo.models.builder import build_unet

    keras.utils.set_random_seed(0)
    cfg = UNetConfig(input_height=32, input_width=32, depth=2, base_filters=4,
                     normalization="batch", dropout_rate=0.3)
    # Dropout and batch norm make `training=True` visibly different: a wrapper that ran the
    # model in training mode would give results that change from call to call.
    return SharedModel(build_unet(cfg), model_id="test@0")


def images(seed: int, count: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 32, 32, 1), dtype=np.float32)


def test_predictions_are_inference_mode_and_repeatable(shared):
    batch = images(0)
    first = shared.predict_probabilities(batch, batch_size=2)
    assert first.shape == (5, 32, 32, 1) and first.dtype == np.float32
    np.testing.assert_array_equal(first, shared.predict_probabilities(batch, batch_size=2))
    np.testing.assert_allclose(first, shared.keras_model(batch, training=False), atol=1e-6)
    np.testing.assert_allclose(shared(batch[0], batch_size=1), first[:1], atol=1e-6)


def test_eight_threads_match_single_threaded_results(shared):
    inputs = [images(seed) for seed in range(8)]
    expected = [shared.predict_probabilities(batch, batch_size=2) for batch in inputs]
    results: dict[int, list[np.ndarray]] = {index: [] for index in range(8)}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def session(index: int) -> None:
        try:
            start.wait()
            for _ in range(4):
                results[index].append(shared.predict_probabilities(inputs[index], batch_size=2))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    calls_before = shared.calls
    threads = [threading.Thread(target=session, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert shared.calls - calls_before == 8 * 4 * 3  # 5 images in batches of 2 = 3 calls
    for index in range(8):
        assert len(results[index]) == 4
        for result in results[index]:
            np.testing.assert_array_equal(result, expected[index])


def test_wrong_input_shape_is_a_clear_error(shared):
    with pytest.raises(UNetDemoError, match=r"expects images of shape \(32, 32, 1\)"):
        shared.predict_probabilities(np.zeros((1, 16, 16, 1), np.float32))
    assert shared.predict_probabilities(np.zeros((0, 32, 32, 1), np.float32)).shape[0] == 0


def test_cache_key_covers_every_byte_model_and_options():
    rng = np.random.default_rng(0)
    raw = rng.bytes(4_000_000)
    base = inference_cache_key(raw, "bundled:nuclei@abc", {"threshold": 0.5, "tta": False})
    assert len(base) == 64 and int(base, 16) >= 0
    changed = bytearray(raw)
    changed[2_345_677] ^= 1  # one bit in the middle: a sampling hash could miss this
    assert inference_cache_key(bytes(changed), "bundled:nuclei@abc",
                               {"threshold": 0.5, "tta": False}) != base
    assert inference_cache_key(raw, "bundled:nuclei@abd", {"threshold": 0.5, "tta": False}) != base
    assert inference_cache_key(raw, "bundled:nuclei@abc", {"threshold": 0.6, "tta": False}) != base
    assert inference_cache_key(raw, "bundled:nuclei@abc", {"tta": False, "threshold": 0.5}) == base
    assert inference_cache_key(memoryview(raw), "bundled:nuclei@abc",
                               {"threshold": 0.5, "tta": False}) == base
    # Parts are length-prefixed: moving text between the model id and the bytes changes the key.
    assert inference_cache_key(b"xabc", "m", {}) != inference_cache_key(b"abc", "mx", {})


def test_cache_key_options_must_be_plain_values():
    key = inference_cache_key(b"a", "m", {"ops": ("fill_holes",), "window": (40.0, 80.0),
                                          "slice": np.int64(3)})
    assert key == inference_cache_key(b"a", "m", {"ops": ["fill_holes"], "window": [40.0, 80.0],
                                                  "slice": 3})
    with pytest.raises(UNetDemoError, match="plain values"):
        inference_cache_key(b"a", "m", {"fn": object()})
