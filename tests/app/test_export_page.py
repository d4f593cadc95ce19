"""Export page: a tiny bundled model is converted to every format; a run offers its bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

from tests.tiny_model import BUNDLED_DIR_ENV, shared_tiny_models_dir  # noqa: E402
from tests.unit.export_helpers import RUN_NAME, shared_tiny_run  # noqa: E402
from unet_demo import DISCLAIMER  # noqa: E402
from unet_demo.inference.deploy import FORMAT_NAMES  # noqa: E402

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "10_Export.py")


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _downloads(at: AppTest) -> list:
    return list(at.get("download_button"))


def test_bundled_model_is_converted_measured_and_offered(monkeypatch, tmp_path):
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = _run(AppTest.from_file(PAGE, default_timeout=300))
    assert any(DISCLAIMER in c.value for c in at.caption)
    assert at.selectbox(key="export.model").value.startswith("Bundled")
    assert any("Press the button" in i.value for i in at.info)
    assert not _downloads(at)  # nothing is converted before the button

    at.button(key="export.measure").click()
    _run(at)
    (table,) = [f.value for f in at.dataframe]
    assert list(table["format"]) == list(FORMAT_NAMES)
    assert (table["within tolerance"] == "yes").all(), table
    assert (table["size (MB)"] > 0).all() and (table["latency (ms, 1 image)"] > 0).all()
    assert any("within its tolerance" in s.value for s in at.success)
    labels = [d.proto.label for d in _downloads(at)]
    assert len(labels) == len(FORMAT_NAMES) and all(label.startswith("Download") for label in
                                                    labels)
    names = {d.proto.label.split()[1] for d in _downloads(at)}
    assert names == set(FORMAT_NAMES)


@pytest.fixture(scope="module")
def runs_with_one() -> Path:
    """A runs folder holding one real, finished 1-epoch run (shared with the export tests)."""
    return shared_tiny_run().parent


def test_finished_run_offers_its_reproducibility_bundle(monkeypatch, runs_with_one):
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(runs_with_one))
    at = _run(AppTest.from_file(PAGE, default_timeout=300))
    options = at.selectbox(key="export.model").options
    run_label = next(o for o in options if o.startswith(f"Run: {RUN_NAME}"))
    at.selectbox(key="export.model").set_value(run_label)
    _run(at)
    (bundle,) = _downloads(at)
    assert bundle.proto.label.startswith("Download the reproducibility bundle")
    assert any("--from-bundle" in c.value for c in at.caption)
    assert any(o.startswith("Bundled") for o in options)
