"""The Segment page's 3D path: a NIfTI volume segmented by a 3D U-Net, compared with 2D.

Draw-and-return only: the work is `unet_demo.inference.volume3d` and
`unet_demo.evaluation.volume`. The user picks a 3D model (the
bundled one or a finished 3D run), a NIfTI file or the bundled head volume, and gets the 3D mask
(download as NIfTI), and, side by side, a bundled 2D model (the skull-strip one by default) run
slice by slice on the same volume: time of each, their Dice agreement and, for the bundled
volume, each one's Dice and HD95 (mm) on the held-out test box.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from unet_demo.errors import UNetDemoError

PREFIX = "segment3d."
SAMPLE_NAME = "brain_volume.nii.gz"
SAMPLE_LABEL = "the bundled head volume (brain_volume, 2 mm; scores on its test box)"
COMPARE_MODEL = "brain_skullstrip"
RESULTS_KEY = PREFIX + "results"


@st.cache_resource(max_entries=4, show_spinner=False)
def _volume_model(folder: str, mtime: float):
    from unet_demo.inference.volume3d import open_volume_model

    return open_volume_model(folder)


def sample_volume_bytes() -> bytes:
    """The bundled head volume as .nii.gz bytes (what a user could upload).

    Example:
        >>> import gzip; gzip.decompress(sample_volume_bytes())[344:348]
        b'n+1\\x00'
    """
    import gzip

    import nibabel as nib

    from unet_demo.data.volumes import load_volume

    volume = load_volume("brain_volume")
    image = nib.Nifti1Image(np.rint(volume.image * 255.0).astype(np.uint8),
                            np.asarray(volume.affine, np.float64))
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes(), mtime=0)


@st.cache_data(max_entries=1, show_spinner=False)
def _cached_sample() -> bytes:
    return sample_volume_bytes()


def volume_3d_page() -> None:
    """Draw the 3D path of the Segment page."""
    from unet_demo.inference.volume3d import list_volume_models
    from unet_demo.settings import REPO_ROOT, runs_dir

    st.caption("3D: a 3D U-Net reads the whole volume in cubes, so it sees context across "
               "slices; the slice-by-slice 2D model sees one slice at a time.")
    models = list_volume_models(runs_dir(), REPO_ROOT)
    if not models:
        st.info("No 3D model yet: train one on the Train page (dataset brain_volume, 3D).")
        return
    label = st.selectbox("3D model", list(models), key=PREFIX + "model",
                         help="The bundled 3D U-Net or one of your finished 3D runs.")
    folder = models[label]
    try:
        model = _volume_model(str(folder), (folder / "model.keras").stat().st_mtime)
    except UNetDemoError as error:
        st.error(str(error))
        return
    spacing = "unknown" if model.spacing is None else "x".join(f"{s:g}" for s in model.spacing)
    st.caption(f"Input cubes {model.patch[0]}x{model.patch[1]}x{model.patch[2]} voxels at "
               f"{spacing} mm; a volume is resampled to that voxel size, cut into overlapping "
               "cubes and the answers are averaged.")
    upload = st.file_uploader("NIfTI volume (.nii or .nii.gz)", key=PREFIX + "upload",
                              help="Checked by its content; kept in this session only.")
    if upload is not None:
        data, name, reference = upload.getvalue(), upload.name, False
    elif st.checkbox(f"...or use {SAMPLE_LABEL}", value=True, key=PREFIX + "sample"):
        data, name, reference = _cached_sample(), SAMPLE_NAME, True
    else:
        st.info("Upload a NIfTI volume to segment it in 3D.")
        return
    from unet_demo.inference.registry import bundled_model_names

    names = bundled_model_names()
    compare_with = None
    if names and st.checkbox("Compare with a 2D model run slice by slice (axial)", value=True,
                             key=PREFIX + "compare"):
        compare_with = st.selectbox(
            "2D model", names, index=names.index(COMPARE_MODEL) if COMPARE_MODEL in names else 0,
            key=PREFIX + "model2d", help="A bundled 2D model; the skull-strip model does the "
                                         "same task on 2D slices.")
    key = (hashlib.sha256(data).hexdigest()[:16], str(folder), compare_with)
    results: dict[Any, Any] = st.session_state.setdefault(RESULTS_KEY, {})
    if key not in results:
        if not st.button("Segment in 3D", key=PREFIX + "run", type="primary"):
            return
        with st.spinner("Segmenting the volume..."):
            results[key] = run_3d(model, data, name, compare_with, reference)
    outcome = results[key]
    if isinstance(outcome, str):
        st.error(outcome)
        return
    show_outcome(outcome, data, name)


def run_3d(model, data: bytes, name: str, compare: str | None, reference: bool):
    """Segment ``data`` in 3D (and slice by slice in 2D); a dict of results or an error text.

    Args:
        model: a `VolumeModel`.
        data: NIfTI bytes.
        name: file name.
        compare: a bundled 2D model to run slice by slice as well, or None.
        reference: the bundled volume: score both on its test box.
    """
    import time

    from unet_demo.data.readers import read_image_bytes
    from unet_demo.evaluation.volume import compare_3d_with_slices
    from unet_demo.inference.volume3d import segment_volume_3d

    try:
        loaded = read_image_bytes(data, name)
        if loaded.volume is None:
            raise UNetDemoError(f"'{name}' holds a 2-D image, not a volume. The 3D path needs "
                                "a NIfTI volume; segment 2-D images with the 2D path.")
        zooms = loaded.meta.get("voxel_size") or (1.0, 1.0, 1.0)
        if not compare:
            start = time.perf_counter()
            labels, _ = segment_volume_3d(
                model.predict_fn(), loaded.volume, patch=model.patch,
                num_classes=model.num_classes, zooms=zooms, model_spacing=model.spacing,
                normalization=model.normalization)
            return {"volume": loaded.volume, "labels_3d": labels, "zooms": zooms,
                    "seconds_3d": time.perf_counter() - start}
        from unet_demo.inference.registry import open_model

        truth, box = None, None
        if reference:
            from unet_demo.data.volumes import load_volume

            bundled = load_volume("brain_volume")
            truth = bundled.mask
            box = tuple(slice(a, b) for a, b in bundled.regions["test"])
        result = compare_3d_with_slices(model, open_model(f"bundled:{compare}"),
                                        loaded.volume, zooms, reference=truth, region=box)
        return {"volume": loaded.volume, "labels_3d": result.labels_3d, "zooms": zooms,
                "seconds_3d": result.seconds_3d, "comparison": result}
    except UNetDemoError as error:
        return str(error)


def show_outcome(outcome: dict[str, Any], data: bytes, name: str) -> None:
    """Figures of one 3D result: timings, Dice, a middle slice of each mask, the download."""
    from unet_demo.data.readers import slice_volume
    from unet_demo.inference.encoders import nifti_mask_bytes
    from unet_demo.plots.images import overlay_rgb

    comparison = outcome.get("comparison")
    voxel = float(np.prod([float(z) for z in outcome["zooms"][:3]]))
    brain = float((outcome["labels_3d"] > 0).sum()) * voxel / 1000.0
    columns = st.columns(4 if comparison is not None else 2)
    columns[0].metric("3D time", f"{outcome['seconds_3d']:.1f} s")
    columns[1].metric("3D foreground volume", f"{brain:.0f} cm³")
    if comparison is not None:
        columns[2].metric("2D slice-by-slice time", f"{comparison.seconds_2d:.1f} s")
        columns[3].metric("Dice 3D vs 2D", f"{comparison.agreement_dice:.3f}")
        if comparison.dice_3d is not None:
            st.dataframe([
                {"model": "3D U-Net (cubes)", "Dice (test box)": round(comparison.dice_3d, 4),
                 "HD95 mm (test box)": round(comparison.hd95_3d_mm, 2),
                 "seconds": round(comparison.seconds_3d, 2)},
                {"model": "2D U-Net (axial slices)", "Dice (test box)": round(comparison.dice_2d, 4),
                 "HD95 mm (test box)": round(comparison.hd95_2d_mm, 2),
                 "seconds": round(comparison.seconds_2d, 2)},
            ], hide_index=True, key=PREFIX + "scores")
            st.caption("Scores on the held-out test box of the bundled volume (the 3D model "
                       "never trained there; the 2D model trained on slices of the same head "
                       "at other levels). One head only: the figures do not generalise.")
    volume = outcome["volume"]
    count = volume.shape[2]
    index = st.slider("Axial slice", 0, count - 1, count // 2, key=PREFIX + "slice")
    image = slice_volume(volume, "axial", index)
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    tiles = [("3D U-Net", outcome["labels_3d"])]
    if comparison is not None:
        tiles.append(("2D slice by slice", comparison.labels_2d))
    for column, (title, labels) in zip(st.columns(len(tiles)), tiles, strict=True):
        column.image(overlay_rgb(image, slice_volume(labels, "axial", index), 2),
                     caption=title, width="stretch")
    try:
        mask = nifti_mask_bytes(outcome["labels_3d"], data, name)
    except UNetDemoError as error:
        st.error(str(error))
        return
    st.download_button("3D mask (NIfTI)", mask, file_name=f"{Path(name).name.split('.')[0]}"
                       "_mask3d.nii.gz", mime="application/gzip", key=PREFIX + "download",
                       on_click="ignore")
