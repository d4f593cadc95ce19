"""Build page with the Dense U-Net: diagram note, calculator figures equal to Keras', code export."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from unet_demo import DISCLAIMER
from unet_demo.config import UNetConfig
from unet_demo.models.builder import build_unet
from unet_demo.ui.state import UNET_CONFIG_KEY

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "3_Build.py")
SMALL = UNetConfig(input_height=64, input_width=64, depth=3, base_filters=4)


def test_dense_variant_is_drawn_counted_and_exported():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[UNET_CONFIG_KEY] = SMALL
    at.run()
    at.selectbox(key="build.variant").set_value("dense").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any(DISCLAIMER in c.value for c in at.caption)
    assert any("dense" in c.value.lower() and "earlier" in c.value for c in at.caption)
    assert "Dense U-Net" in at.get("plotly_chart")[0].proto.spec
    params = build_unet(SMALL.replace(variant="dense")).count_params()
    assert next(m.value for m in at.metric if m.label == "Parameters") == f"{params:,}"
    code = "\n".join(c.value for c in at.code)
    assert "name='enc0_stack'" in code and "name='bottleneck_transition'" in code
