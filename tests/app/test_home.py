"""Home page: runs, shows the disclaimer, a picture of every dataset, links; no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from streamlit.testing.v1 import AppTest

from unet_demo import DISCLAIMER
from unet_demo.data.bundled import DATASET_NAMES

REPO = Path(__file__).resolve().parents[2]


def test_home_page_runs_and_shows_gallery_and_disclaimer():
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any(DISCLAIMER in c.value for c in at.caption)
    assert "U-Net" in at.title[0].value
    # Two thumbnails (image + overlay) and a colour legend per bundled dataset.
    assert len(at.get("image")) == 3 * len(DATASET_NAMES)
    legends = [img.caption for element in at.get("image") for img in element.proto.imgs
               if img.caption.startswith("Colours:")]
    assert any("grey_matter" in caption for caption in legends), legends
    markdown = " ".join(m.value for m in at.markdown)
    assert "skip connections" in markdown


def test_home_page_does_not_import_tensorflow():
    """Run the page in a fresh interpreter and list the modules it loaded."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(REPO / "streamlit_app.py")!r}, default_timeout=120).run()
        assert not at.exception, at.exception
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        print(json.dumps(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the home page imported {loaded[:5]}"
