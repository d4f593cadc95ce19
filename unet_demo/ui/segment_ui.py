"""Segment page: upload images (PNG/JPEG/TIFF/DICOM/NIfTI) and segment them with a model.

Every upload goes through the shared validation path (`unet_demo.data.readers`: bytes are
sniffed on the server; the browser's file-type filter is only a convenience). A bad file shows
a friendly error and the other files are still processed. Results are cached per session by
`unet_demo.inference.shared.inference_cache_key` (SHA-256 of the raw bytes + model id + options),
so moving the opacity slider never re-runs the model.

`process_upload` holds the upload handling without any widget, so tests can call it directly.

Example:
    >>> # pages/6_Segment.py
    >>> segment_page()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

import numpy as np
import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.inference.encoders import mask_file_stem
from unet_demo.inference.segment import SegmentOptions, segment_image_bytes
from unet_demo.ui.kept import keep, kept, kept_index

logger = logging.getLogger(__name__)

# No ``type=`` filter on the uploader: Streamlit 1.67 enforces it server-side by raising an
# exception for other names, which would end the script run; every file is instead judged by
# its bytes in `process_upload` and refused with a message.
SAMPLE_KEY = "segment.sample"
RESULT_CACHE_KEY = "segment.results"
PROBE_CACHE_KEY = "segment.probes"
VOLUME_CACHE_KEY = "segment.volumes"
SEG_CACHE_KEY = "segment.segs"
SERIES_CACHE_KEY = "segment.series"
MAX_CACHED_RESULTS = 24
NO_SAMPLE = "(none)"
UPLOADS_KEY = "segment.uploads"
"""Session-state key (no widget): the user's uploads, [{"name", "data", "digest"}], oldest first.

The file_uploader forgets its files when the user visits another page (Streamlit drops a widget
that is not drawn, and a browser never lets a page refill a file input), so the page keeps
their bytes here and lists them as "your uploads" with a remove button."""
UPLOADS_REMOVED_KEY = "segment.uploads_removed"
"""Session-state key (no widget): digests the user removed (not shown again from the uploader)."""
UPLOADS_SEEN_KEY = "segment.uploads_seen"
"""Session-state key (no widget): file ids of uploader files already copied into UPLOADS_KEY."""
MAX_KEPT_UPLOADS = 8
MAX_KEPT_BYTES = 64 * 1024 * 1024
BINARY_WORDING = "binary (foreground/background)"
"""How a one-output (sigmoid) model is described, on this page and on Build."""


def keep_uploads(kept: list[dict[str, Any]], files: list[tuple[str, bytes]],
                 max_files: int = MAX_KEPT_UPLOADS,
                 max_bytes: int = MAX_KEPT_BYTES) -> tuple[list[dict[str, Any]], list[str]]:
    """Add uploads to the kept list: same bytes only once, oldest dropped beyond the limits.

    Args:
        kept: the uploads kept so far (oldest first); not modified.
        files: new (name, bytes) pairs.
        max_files: most files kept.
        max_bytes: most bytes kept in all.

    Returns:
        The new list and the names of the files dropped to stay within the limits.

    Example:
        >>> kept, dropped = keep_uploads([], [("a.png", b"1"), ("b.png", b"22"), ("a2.png", b"1")],
        ...                              max_files=1)
        >>> [f["name"] for f in kept], dropped
        (['b.png'], ['a.png'])
    """
    result = list(kept)
    for name, data in files:
        digest = hashlib.sha256(data).hexdigest()
        if any(item["digest"] == digest for item in result):
            continue
        result.append({"name": name, "data": data, "digest": digest})
    dropped = []
    while result and (len(result) > max_files
                      or sum(len(item["data"]) for item in result) > max_bytes):
        dropped.append(result.pop(0)["name"])
    return result, dropped


def model_wording(num_classes: int, class_names: tuple[str, ...] | list[str] = ()) -> str:
    """How the page describes a model's output: binary, or N classes with their names.

    Args:
        num_classes: the model's output channels (1 = one sigmoid output).
        class_names: names per label value, background first (the dataset card's), if known.

    Example:
        >>> model_wording(1)
        'binary (foreground/background)'
        >>> model_wording(3, ["background", "csf", "grey"])
        '3 classes (background, csf, grey)'
    """
    if num_classes <= 1:
        return BINARY_WORDING
    names = f" ({', '.join(class_names)})" if len(class_names) == num_classes else ""
    return f"{num_classes} classes{names}"


def class_names_of(handle: Any) -> list[str]:
    """Name per label value of a model's output, from its dataset's card ("class N" otherwise).

    Args:
        handle: `unet_demo.inference.registry.ModelHandle`.

    Example:
        >>> class_names_of(handle)  # doctest: +SKIP
        ['background', 'lesion']
    """
    count = max(2, int(handle.num_classes))
    try:
        from unet_demo.data.bundled import get_dataset_info

        names = list(get_dataset_info(handle.dataset).class_names) if handle.dataset else []
    except UNetDemoError:
        names = []
    return names if len(names) == count else [f"class {value}" for value in range(count)]


@dataclasses.dataclass
class UploadOutcome:
    """One processed file: the decoded image and its segmentation, or the error message."""

    name: str
    loaded: Any = None
    result: Any = None
    error: str | None = None
    ood: Any = None
    """The feature-space OOD score (`unet_demo.inference.ood.OODScore`), None without one."""

    @property
    def ok(self) -> bool:
        """True when the file was segmented."""
        return self.error is None


def process_upload(data: bytes, name: str, handle: Any, options: SegmentOptions) -> UploadOutcome:
    """Validate, decode and segment one uploaded file; never raises for a bad file.

    Args:
        data: raw bytes of the upload.
        name: file name as uploaded (only used in messages).
        handle: `unet_demo.inference.registry.ModelHandle`.
        options: threshold, TTA, post-processing, NIfTI plane/slice, DICOM window.

    Example:
        >>> outcome = process_upload(b"not an image", "x.png", handle, SegmentOptions())  # doctest: +SKIP
        >>> outcome.ok  # doctest: +SKIP
        False
    """
    try:
        loaded, result = segment_image_bytes(data, name, handle, options)
    except UNetDemoError as error:
        return UploadOutcome(name=name, error=str(error))
    except Exception as error:  # noqa: BLE001 - a hostile file must never show a traceback
        logger.exception("unexpected failure segmenting %r", name)
        return UploadOutcome(name=name, error=(
            f"'{name}' could not be segmented ({type(error).__name__}). The file may be "
            "damaged or unusual; try exporting it again as PNG, TIFF, DICOM or NIfTI."))
    # Keep cached results small: the whole volume is re-read only when asked for.
    loaded.volume = None
    loaded.meta.pop("volume", None)
    try:
        from unet_demo.inference.ood import score_for

        ood = score_for(handle, result.model_input)
    except UNetDemoError as error:  # damaged statistics file: segment anyway, say so
        loaded.meta.setdefault("notes", []).append(str(error))
        ood = None
    return UploadOutcome(name=name, loaded=loaded, result=result, ood=ood)


def cached_process(data: bytes, name: str, handle: Any, options: SegmentOptions) -> UploadOutcome:
    """`process_upload` with a per-session cache keyed by `inference_cache_key`."""
    from unet_demo.inference.shared import inference_cache_key

    key = inference_cache_key(data, handle.model_id, options.key_dict())
    cache: dict[str, UploadOutcome] = st.session_state.setdefault(RESULT_CACHE_KEY, {})
    if key not in cache:
        while len(cache) >= MAX_CACHED_RESULTS:
            cache.pop(next(iter(cache)))
        cache[key] = process_upload(data, name, handle, options)
    return cache[key]


def sample_images(channels: int = 1, first: str = "") -> dict[str, tuple[str, bytes]]:
    """Bundled test images as PNG bytes, label -> (file name, bytes), for trying the page.

    They go through exactly the same path as an upload.

    Args:
        channels: only datasets with this channel count.
        first: dataset to list first (the model's own).

    Example:
        >>> list(sample_images())[:1]  # doctest: +SKIP
        ['Synthetic lesions: test_000']
    """
    from unet_demo.data.bundled import available_datasets, load_split
    from unet_demo.inference.encoders import rgb_png_bytes

    infos = sorted(available_datasets(), key=lambda info: info.name != first)
    samples = {}
    for info in infos:
        if int(info.channels) != int(channels):
            continue
        try:
            split = load_split(info.name, "test")
        except UNetDemoError:
            continue
        for position in range(min(2, len(split.ids))):
            image = np.asarray(split.images[position], np.float32)
            rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
            ident = split.ids[position]
            samples[f"{info.title}: {ident}"] = (f"{info.name}_{ident}.png", rgb_png_bytes(rgb))
    return samples


# --------------------------------------------------------------------------- page

def segment_page() -> None:
    """Draw the whole Segment page (called by pages/6_Segment.py)."""
    if st.toggle("3D: segment a NIfTI volume with a 3D U-Net", key="segment.mode3d",
                 help="A 3D U-Net on the whole volume, compared with the 2D model slice by "
                      "slice (time and Dice)."):
        from unet_demo.ui.volume3d_ui import volume_3d_page

        volume_3d_page()
        return
    from unet_demo.evaluation.ensemble import open_any
    from unet_demo.ui.ensemble_ui import pick_model_or_ensemble
    from unet_demo.ui.evaluate_ui import pick_model, postprocess_controls

    spec = pick_model_or_ensemble("segment", pick_model, prefer="bundled")
    if spec is None:
        return
    try:
        with st.spinner("Loading the model..."):
            handle = open_any(spec)
    except UNetDemoError as error:
        st.error(str(error))
        return
    names = class_names_of(handle)
    if handle.model_id.startswith("ensemble:"):
        st.caption(f"{handle.title}: each pixel gets the mean of their probabilities.")
    st.caption(f"Model input {handle.input_shape[0]}x{handle.input_shape[1]}x"
               f"{handle.input_shape[2]}, output "
               f"{model_wording(handle.num_classes, names if handle.num_classes > 1 else ())}. "
               "Images of any size are scaled to fit and the mask is mapped back.")
    uploads = st.file_uploader(
        "Images (PNG, JPEG, TIFF, DICOM, NIfTI .nii/.nii.gz, a ZIP of one DICOM series)", accept_multiple_files=True, key="segment.uploader",
        help="Files are checked by their content, not their name. They are kept in this "
             "browser session only (up to 8 files), never written to disk.",
    )
    files = _kept_uploads_ui(uploads or [])
    if not files:
        samples = sample_images(handle.input_shape[-1], handle.dataset)
        if samples:
            options = [NO_SAMPLE, *samples]
            chosen = keep(SAMPLE_KEY, st.selectbox(
                "...or try a bundled test image", options,
                index=kept_index(SAMPLE_KEY, options), key=SAMPLE_KEY))
            if chosen != NO_SAMPLE:
                files = [samples[chosen]]
    if not files:
        st.info("Upload one or more images to segment them.")
        return
    col_t, col_tta, col_opacity = st.columns(3)
    threshold = 0.5
    if handle.num_classes <= 1:
        threshold = keep("segment.threshold", col_t.slider(
            "Threshold", 0.0, 1.0, kept("segment.threshold", 0.5), 0.01, key="segment.threshold"))
    tta = keep("segment.tta", col_tta.toggle(
        "Flip TTA (uncertainty)", kept("segment.tta", False), key="segment.tta"))
    opacity = keep("segment.opacity", col_opacity.slider(
        "Overlay opacity", 0.0, 1.0, kept("segment.opacity", 0.45), 0.05, key="segment.opacity"))
    with st.expander("Post-processing"):
        ops = postprocess_controls("segment.pp")
    base = SegmentOptions(threshold=threshold, tta=tta, postprocess=tuple(ops))
    summary = []
    for position, (name, data) in enumerate(files):
        st.divider()
        st.subheader(name)
        if _is_zip(data):
            summary.append(_series_ui(data, name, handle, base, opacity, position, names))
            continue
        options = _file_options(name, data, base, position)
        with st.spinner(f"Segmenting {name}..."):
            outcome = cached_process(data, name, handle, options)
        if not outcome.ok:
            st.error(outcome.error)
            summary.append({"file": name, "status": "refused", "detail": outcome.error})
            continue
        summary.append(_show_outcome(outcome, data, handle, options, opacity, position, names))
    if len(files) > 1:
        st.divider()
        st.subheader("Summary")
        ok = sum(row["status"] == "ok" for row in summary)
        st.caption(f"{ok} of {len(files)} file(s) segmented.")
        st.dataframe(summary, width="stretch", hide_index=True)


def _remove_upload(digest: str | None) -> None:
    """on_click of a remove button: drop one kept upload (all of them for None)."""
    kept_files = st.session_state.get(UPLOADS_KEY, [])
    removed = {item["digest"] for item in kept_files if digest is None or item["digest"] == digest}
    st.session_state[UPLOADS_REMOVED_KEY] = set(st.session_state.get(UPLOADS_REMOVED_KEY, ())) | removed
    st.session_state[UPLOADS_KEY] = [item for item in kept_files if item["digest"] not in removed]


def _kept_uploads_ui(uploads: list[Any]) -> list[tuple[str, bytes]]:
    """Copy new uploader files into the session, list them with remove buttons, return them."""
    state = st.session_state
    seen: list[str] = list(state.get(UPLOADS_SEEN_KEY, []))
    fresh = [upload for upload in uploads if upload.file_id not in seen]
    removed = set(state.get(UPLOADS_REMOVED_KEY, ()))
    if fresh:
        new_files = [(upload.name, upload.getvalue()) for upload in fresh]
        removed -= {hashlib.sha256(data).hexdigest() for _, data in new_files}  # uploaded again
        state[UPLOADS_REMOVED_KEY] = removed
        state[UPLOADS_KEY], dropped = keep_uploads(
            state.get(UPLOADS_KEY, []), new_files)
        state[UPLOADS_SEEN_KEY] = (seen + [upload.file_id for upload in fresh])[-64:]
        if dropped:
            st.caption(f"Only the last {MAX_KEPT_UPLOADS} files (at most "
                       f"{MAX_KEPT_BYTES // 2**20} MB) are kept: {', '.join(dropped)} removed.")
    kept_files = state.get(UPLOADS_KEY, [])
    # Files still in the uploader are always segmented, even those beyond the kept limits.
    digests = {item["digest"] for item in kept_files} | removed
    extra = [(upload.name, upload.getvalue()) for upload in uploads]
    extra = [(name, data) for name, data in extra
             if hashlib.sha256(data).hexdigest() not in digests]
    if not kept_files:
        return extra
    with st.container(border=True):
        head = st.columns([4, 1])
        head[0].markdown(f"**Your uploads** ({len(kept_files)}) — kept while you visit other "
                         "pages, for this browser session only")
        head[1].button("Remove all", key="segment.remove_all", on_click=_remove_upload,
                       args=(None,), icon=":material/delete_sweep:")
        for item in kept_files:
            row = st.columns([4, 1])
            size = len(item["data"])
            row[0].markdown(f"{item['name']} · " + (f"{size / 1024:.0f} KB" if size >= 10240
                                                    else f"{size / 1024:.1f} KB"))
            row[1].button("Remove", key=f"segment.remove.{item['digest'][:16]}",
                          on_click=_remove_upload, args=(item["digest"],),
                          icon=":material/close:", help=f"Forget {item['name']}")
    return [(item["name"], item["data"]) for item in kept_files] + extra


def _probe(data: bytes, name: str) -> dict[str, Any] | None:
    """Slice counts and DICOM facts of a file, cached by the SHA-256 of its bytes."""
    from unet_demo.data.readers import read_image_bytes

    key = hashlib.sha256(data).hexdigest()
    probes: dict[str, Any] = st.session_state.setdefault(PROBE_CACHE_KEY, {})
    if key not in probes:
        try:
            meta = read_image_bytes(data, name).meta
            probes[key] = {k: meta.get(k) for k in ("num_slices", "window_presets", "units",
                                                    "num_frames")}
        except UNetDemoError:
            probes[key] = None  # process_upload reports the problem
    return probes[key]


def _file_options(name: str, data: bytes, base: SegmentOptions, position: int) -> SegmentOptions:
    """Per-file controls: NIfTI plane and slice, DICOM window preset."""
    from unet_demo.data.readers import CT_WINDOW_PRESETS, PLANES
    from unet_demo.data.validation import sniff_format

    kind = sniff_format(data)
    if kind not in ("nifti", "dicom"):
        return base
    probe = _probe(data, name)
    if probe is None:
        return base
    if kind == "nifti" and probe.get("num_slices"):
        cols = st.columns(2)
        plane = cols[0].radio("Plane", list(PLANES), horizontal=True,
                              key=f"segment.plane.{position}")
        count = int(probe["num_slices"][plane])
        index = cols[1].slider("Slice", 0, max(0, count - 1), count // 2,
                               key=f"segment.slice.{position}.{plane}") if count > 1 else 0
        return dataclasses.replace(base, plane=plane, slice_index=index)
    if kind == "dicom":
        presets: dict[str, Any] = {"automatic (min-max)": None}
        presets.update({f"file: {k}": v for k, v in (probe.get("window_presets") or {}).items()})
        if probe.get("units") == "HU":
            presets.update({f"CT {k}": v for k, v in CT_WINDOW_PRESETS.items()})
        choice = st.selectbox("Window", list(presets), key=f"segment.window.{position}",
                              help="Which intensity range (center, width) to feed to the model.")
        window = presets[choice]
        frame = None
        frames = int(probe.get("num_frames") or 1)
        if frames > 1:
            frame = st.slider(f"Frame (of {frames})", 1, frames, 1,
                              key=f"segment.frame.{position}") - 1
        return dataclasses.replace(base, window=tuple(window) if window else None,
                                   slice_index=frame)
    return base


def _show_outcome(outcome: UploadOutcome, data: bytes, handle, options: SegmentOptions,
                  opacity: float, position: int, names: list[str] | None = None
                  ) -> dict[str, Any]:
    from unet_demo.inference.encoders import mask_png_bytes, rgb_png_bytes
    from unet_demo.plots.images import overlay_rgb, to_display_rgb

    loaded, result = outcome.loaded, outcome.result
    _ood_verdict(outcome.ood)
    for warning in result.warnings:
        st.warning(f"Out of distribution? {warning}")
    for note in loaded.meta.get("notes", []):
        st.caption(note)
    image = to_display_rgb(loaded.pixels)
    overlay = overlay_rgb(image, result.labels, max(2, handle.num_classes), opacity=opacity)
    cols = st.columns(3)
    cols[0].image(image, caption=f"input ({loaded.meta.get('format', loaded.kind)})",
                  width="stretch")
    cols[1].image(overlay, caption="overlay", width="stretch", alt=f"overlay of {outcome.name}")
    cols[2].image(result.foreground_probability(), caption="probability of foreground",
                  width="stretch", clamp=True)
    if result.uncertainty is not None:
        from unet_demo.plots.evaluation import uncertainty_figure
        from unet_demo.ui.evaluate_ui import PLOTLY_CONFIG, UNCERTAINTY_CAPTION

        # theme=None: the figure's own white background, so black reads as "no variance".
        st.plotly_chart(uncertainty_figure(result.uncertainty), width="stretch",
                        key=f"segment.unc.{position}", theme=None, config=PLOTLY_CONFIG)
        st.caption(UNCERTAINTY_CAPTION)
    row: dict[str, Any] = {"file": outcome.name, "status": "ok",
                           "size": f"{loaded.pixels.shape[1]}x{loaded.pixels.shape[0]}"}
    metric_cols = st.columns(max(1, len(result.area_pixels)) + 1)
    names = names or class_names_of(handle)
    for col, (label, pixels) in zip(metric_cols, result.area_pixels.items(), strict=False):
        name = names[label] if label < len(names) else f"class {label}"
        area = f"{pixels} px"
        if result.area_mm2:
            area += f" = {result.area_mm2[label]:.1f} mm²"
        col.metric(f"area of {name}", area)
        row[f"{name} px"] = pixels
        if result.area_mm2:
            row[f"{name} mm²"] = round(result.area_mm2[label], 2)
    if not result.area_mm2:
        metric_cols[-1].caption("Pixel size unknown (PNG/JPEG/TIFF): areas in pixels only.")
    row["warnings"] = len(result.warnings)
    stem = mask_file_stem(outcome.name)
    buttons = st.columns(3)
    buttons[0].download_button("Mask (PNG)", mask_png_bytes(result.labels, handle.num_classes),
                               file_name=f"{stem}_mask.png", mime="image/png",
                               key=f"segment.dl_mask.{position}", on_click="ignore")
    buttons[1].download_button("Overlay (PNG)", rgb_png_bytes(overlay),
                               file_name=f"{stem}_overlay.png", mime="image/png",
                               key=f"segment.dl_overlay.{position}", on_click="ignore")
    if loaded.kind == "nifti":
        with buttons[2]:
            _nifti_volume_section(data, outcome.name, handle, options, position, row, names)
    elif loaded.kind == "dicom":
        with buttons[2]:
            _dicom_seg_section(data, outcome, handle, options, position, names)
    if outcome.ood is not None:
        row["OOD score"] = round(outcome.ood.score, 2)
    return row


def _is_zip(data: bytes) -> bool:
    from unet_demo.data.validation import sniff_format

    return sniff_format(data) == "zip"


def _series_ui(data: bytes, name: str, handle, options: SegmentOptions, opacity: float,
               position: int, names: list[str]) -> dict[str, Any]:
    """A ZIP of one DICOM series: checked, segmented as a volume, the middle slice shown, a SEG."""
    from unet_demo.data.dicom import read_series_zip
    from unet_demo.inference.encoders import dicom_seg_bytes
    from unet_demo.inference.series import segment_series
    from unet_demo.inference.shared import inference_cache_key
    from unet_demo.plots.images import overlay_rgb, to_display_rgb

    try:
        series = read_series_zip(data, name)
    except UNetDemoError as error:
        st.error(str(error))
        return {"file": name, "status": "refused", "detail": str(error)}
    except Exception as error:  # noqa: BLE001 - a hostile archive must never show a traceback
        logger.exception("unexpected failure reading the series %r", name)
        message = (f"'{name}' could not be read as a DICOM series ({type(error).__name__}). "
                   "Upload a ZIP holding the slices of one series.")
        st.error(message)
        return {"file": name, "status": "refused", "detail": message}
    row_mm, col_mm, step = series.spacing
    st.caption(f"DICOM series: {len(series.names)} slices of {series.datasets[0].Columns}x"
               f"{series.datasets[0].Rows} pixels, {col_mm:.2f} x {row_mm:.2f} mm, slices "
               f"{step:.2f} mm apart (ordered by ImagePositionPatient).")
    key = inference_cache_key(data, handle.model_id, {**options.key_dict(), "series": True})
    done: dict[str, Any] = st.session_state.setdefault(SERIES_CACHE_KEY, {})
    if key not in done:
        if not st.button("Segment the series", key=f"segment.series.{position}",
                         help="Runs the model on every slice; then the mask downloads as one "
                              "DICOM SEG."):
            return {"file": name, "status": "waiting"}
        bar = st.progress(0.0, text="Segmenting slices...")
        try:
            outcome = segment_series(series, handle, options, progress=lambda i, n: bar.progress(
                i / n, text=f"slice {i}/{n}"))
        except UNetDemoError as error:
            bar.empty()
            st.error(str(error))
            return {"file": name, "status": "refused", "detail": str(error)}
        bar.empty()
        try:
            seg: bytes | str = dicom_seg_bytes(series.datasets, outcome.labels,
                                               handle.num_classes, class_names=names,
                                               model_name=handle.title,
                                               source_name=f"'{name}'")
        except UNetDemoError as error:
            seg = str(error)
        while len(done) >= MAX_CACHED_RESULTS:
            done.pop(next(iter(done)))
        done[key] = (outcome, seg)
    outcome, seg = done[key]
    _ood_verdict(outcome.ood)
    middle = len(outcome.labels) // 2
    image = to_display_rgb(outcome.middle)
    cols = st.columns(2)
    cols[0].image(image, caption=f"slice {middle + 1} of {len(outcome.labels)}", width="stretch")
    cols[1].image(overlay_rgb(image, outcome.labels[middle], max(2, handle.num_classes),
                              opacity=opacity), caption="overlay", width="stretch")
    text = ", ".join(f"{names[c] if c < len(names) else f'class {c}'}: {v / 1000:.1f} cm³"
                     for c, v in outcome.volumes_mm3.items())
    st.caption(f"Volume: {text}")
    if isinstance(seg, str):
        st.info(seg, icon=":material/info:")
    else:
        st.download_button("Mask (DICOM SEG)", seg, file_name=f"{mask_file_stem(name)}_seg.dcm",
                           mime="application/dicom", key=f"segment.dl_seg.{position}",
                           on_click="ignore")
    row: dict[str, Any] = {"file": name, "status": "ok", "size": f"{len(outcome.labels)} slices"}
    if outcome.ood is not None:
        row["OOD score"] = round(outcome.ood.score, 2)
    return row


OOD_HELP = ("Distance of the image's encoder features from the training images', divided by the "
            "model's threshold (set on its validation images): above 1 is unlike anything it "
            "was trained on. See docs/ood.md.")


def _ood_verdict(score: Any) -> None:
    """The feature-space score and its plain verdict (nothing for a model without statistics)."""
    if score is None:
        return
    text = f"**OOD score {score.score:.2f}** (1 = the model's threshold). {score.verdict}"
    if score.flagged:
        st.error(text, icon=":material/report:")
    else:
        st.success(text, icon=":material/check_circle:")
    st.caption(OOD_HELP)


def _dicom_seg_section(data: bytes, outcome: UploadOutcome, handle, options: SegmentOptions,
                       position: int, names: list[str]) -> None:
    """DICOM input: the mask as a DICOM SEG; a multi-frame file first segments every frame."""
    from unet_demo.inference.shared import inference_cache_key

    frames = int(outcome.loaded.meta.get("num_frames", 1) or 1)
    key = inference_cache_key(data, handle.model_id, {**options.key_dict(), "seg": True,
                                                      "slice_index": None})
    segs: dict[str, Any] = st.session_state.setdefault(SEG_CACHE_KEY, {})
    if key not in segs:
        if frames > 1 and not st.button(
                f"Segment all {frames} frames", key=f"segment.frames.{position}",
                help="Runs the model on every frame; then all of them download as one DICOM SEG."):
            return
        while len(segs) >= MAX_CACHED_RESULTS:
            segs.pop(next(iter(segs)))
        segs[key] = _dicom_seg(data, outcome, handle, options, frames, names)
    made = segs[key]
    if isinstance(made, str):  # the image was segmented; only the SEG cannot be made
        st.info(made, icon=":material/info:")
        return
    seg_bytes, flagged = made
    if frames > 1:
        st.caption(f"{frames} frames segmented; {flagged} look unlike the training images.")
    st.download_button("Mask (DICOM SEG)", seg_bytes,
                       file_name=f"{mask_file_stem(outcome.name)}_seg.dcm",
                       mime="application/dicom", key=f"segment.dl_seg.{position}",
                       on_click="ignore",
                       help="A DICOM Segmentation object referencing this file; opens in "
                            "3D Slicer or OHIF.")


def _dicom_seg(data: bytes, outcome: UploadOutcome, handle, options: SegmentOptions,
               frames: int, names: list[str]) -> tuple[bytes, int] | str:
    """(SEG bytes, frames flagged as OOD), or the one-sentence reason it cannot be made."""
    from unet_demo.data import dicom
    from unet_demo.inference.encoders import dicom_seg_bytes

    try:
        labels, flagged = [outcome.result.labels], int(bool(outcome.ood and outcome.ood.flagged))
        if frames > 1:
            labels, flagged = [], 0
            bar = st.progress(0.0, text="Segmenting frames...")
            for index in range(frames):
                frame = process_upload(data, outcome.name, handle,
                                       dataclasses.replace(options, slice_index=index))
                if not frame.ok:
                    return frame.error or "A frame could not be segmented."
                labels.append(frame.result.labels)
                flagged += int(bool(frame.ood and frame.ood.flagged))
                bar.progress((index + 1) / frames, text=f"frame {index + 1}/{frames}")
            bar.empty()
        seg = dicom_seg_bytes([dicom.read_dataset(data, outcome.name)], np.stack(labels),
                              handle.num_classes, class_names=names, model_name=handle.title,
                              source_name=f"'{outcome.name}'")
        return seg, flagged
    except UNetDemoError as error:
        return str(error)


def _nifti_volume_section(data: bytes, name: str, handle, options: SegmentOptions,
                          position: int, row: dict[str, Any],
                          names: list[str] | None = None) -> None:
    """Button to segment every slice; then volume in mm³ and a NIfTI mask download."""
    from unet_demo.inference.shared import inference_cache_key

    key = inference_cache_key(data, handle.model_id, {**options.key_dict(), "volume": True,
                                                      "slice_index": None})
    volumes: dict[str, Any] = st.session_state.setdefault(VOLUME_CACHE_KEY, {})
    if key not in volumes:
        if st.button("Segment all slices", key=f"segment.volume.{position}",
                     help="Runs the model on every slice of the chosen plane; then the mask "
                          "can be downloaded as NIfTI."):
            volumes[key] = _segment_whole_volume(data, name, handle, options)
        else:
            return
    outcome = volumes[key]
    if isinstance(outcome, str):
        st.error(outcome)
        return
    nifti_bytes, mm3 = outcome
    if mm3:
        names = names or class_names_of(handle)
        label = {c: names[c] if c < len(names) else f"class {c}" for c in mm3}
        text = ", ".join(f"{label[c]}: {v / 1000:.1f} cm³" for c, v in mm3.items())
        st.caption(f"Volume: {text}")
        row.update({f"{label[c]} mm³": round(v, 1) for c, v in mm3.items()})
    st.download_button("Mask (NIfTI)", nifti_bytes, file_name=f"{mask_file_stem(name)}_mask.nii.gz",
                       mime="application/gzip", key=f"segment.dl_nifti.{position}",
                       on_click="ignore")


def _segment_whole_volume(data: bytes, name: str, handle, options: SegmentOptions):
    from unet_demo.data.readers import read_image_bytes
    from unet_demo.inference.encoders import nifti_mask_bytes
    from unet_demo.inference.segment import segment_loaded_volume

    try:
        loaded = read_image_bytes(data, name)
        bar = st.progress(0.0, text="Segmenting slices...")
        labels, mm3 = segment_loaded_volume(
            loaded, handle, options,
            progress=lambda done, total: bar.progress(done / total, text=f"slice {done}/{total}"),
        )
        bar.empty()
        return nifti_mask_bytes(labels, data, name), mm3
    except UNetDemoError as error:
        return str(error)
