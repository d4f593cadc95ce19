"""``python -m unet_demo predict``: segment image files with a bundled or trained model.

Writes one mask per input into ``--out``: ``<name>_mask.png`` for 2-D images (0/255 for binary
models, label numbers for multi-class) and ``<name>_mask.nii.gz`` for NIfTI volumes (every
slice segmented, original affine kept). A multi-frame DICOM gives one mask per frame with
``--all-frames``; ``--seg`` adds ``<name>_seg.dcm`` (a DICOM Segmentation object referencing the
source) for DICOM input. Every result carries the feature-space OOD score ("ood": score, verdict;
above 1 means unlike the training images). A bad file is reported and skipped; the others are
still processed and the exit code is 2 when any file failed.

Example:
    $ python -m unet_demo predict --model bundled:nuclei --input cells.png --out masks/ --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    parser = subparsers.add_parser(
        "predict",
        help="segment image files (PNG/JPEG/TIFF/DICOM/NIfTI) with a model",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--model", required=True,
                        help="'bundled:NAME', a run folder with model.keras, or a .keras file")
    parser.add_argument("--input", required=True, nargs="+", type=Path, metavar="FILE",
                        help="one or more image files (or a ZIP of one DICOM series)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the masks")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="foreground probability cut for binary models (default 0.5)")
    parser.add_argument("--tta", action="store_true",
                        help="average the four flips (test-time augmentation)")
    parser.add_argument("--postprocess", nargs="*", default=[], metavar="OP",
                        help="clean-up operations, e.g. fill_holes largest_component opening:1")
    parser.add_argument("--plane", default="axial", choices=("axial", "coronal", "sagittal"),
                        help="slicing plane for NIfTI volumes (default axial)")
    parser.add_argument("--frame", type=int, default=None, metavar="N",
                        help="frame of a multi-frame DICOM to segment (0-based; default 0)")
    parser.add_argument("--all-frames", action="store_true",
                        help="segment every frame of a multi-frame DICOM (<name>_mask_fNNN.png)")
    parser.add_argument("--seg", action="store_true",
                        help="for DICOM input also write <name>_seg.dcm, a DICOM Segmentation "
                             "object referencing the source (every frame of a multi-frame file)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary to stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Segment every input; return 0 when all succeeded, 2 when any file was refused."""
    from unet_demo.inference.postprocess import parse_op
    from unet_demo.inference.registry import open_model

    if not 0.0 <= args.threshold <= 1.0:
        raise UNetDemoError(f"--threshold must be between 0 and 1. Received: {args.threshold}.")
    for op in args.postprocess:
        parse_op(op)
    handle = open_model(args.model)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UNetDemoError(f"Cannot create the output folder {args.out}: {error}.") from None
    results = []
    for path in args.input:
        try:
            results.append({"input": str(path), "ok": True,
                            **predict_file(handle, path, args)})
        except UNetDemoError as error:
            results.append({"input": str(path), "ok": False, "error": str(error)})
            print(f"error: {error}", file=sys.stderr)
    failures = sum(not r["ok"] for r in results)
    if args.json:
        print(json.dumps({"model": handle.model_id, "files": results, "failed": failures},
                         indent=2))
    else:
        for result in results:
            if result["ok"]:
                area = result.get("area_mm2") or result.get("volume_mm3")
                unit = " mm²" if result.get("area_mm2") else " mm³" if area else ""
                extra = f" ({_fmt_areas(area)}{unit})" if area else ""
                print(f"{result['input']} -> {result['output']}: "
                      f"{_fmt_areas(result['foreground_pixels'])} px{extra}")
                ood = result.get("ood")
                if ood and "error" in ood:
                    print(f"  note: {ood['error']}")
                elif ood:
                    print(f"  OOD score {ood['score']:.2f} (above 1 = unlike the training "
                          f"images): {ood['verdict']}")
                for warning in result["warnings"]:
                    print(f"  warning: {warning}")
                if result.get("seg"):
                    print(f"  DICOM SEG: {result['seg']}")
        print(f"{len(results) - failures} of {len(results)} file(s) segmented; "
              "education and research only, not for diagnosis.")
    return 2 if failures else 0


def predict_file(handle: Any, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Segment one file and write its mask; return a JSON-ready summary.

    Args:
        handle: the opened model.
        path: the image file.
        args: parsed options (threshold, tta, postprocess, plane, out).
    """
    from unet_demo.data.readers import read_image_bytes
    from unet_demo.inference.encoders import mask_file_stem, mask_png_bytes, nifti_mask_bytes
    from unet_demo.inference.labels import foreground_classes
    from unet_demo.inference.segment import (
        SegmentOptions,
        segment_loaded,
        segment_loaded_volume,
    )

    try:
        data = path.read_bytes()
    except OSError as error:
        raise UNetDemoError(f"Cannot read '{path}': {error.strerror or error}.") from None
    options = SegmentOptions(threshold=args.threshold, tta=args.tta,
                             postprocess=tuple(args.postprocess), plane=args.plane)
    stem = mask_file_stem(path.name)
    from unet_demo.data.validation import sniff_format

    if sniff_format(data) == "zip":
        return _predict_series(handle, data, path, options, args)
    loaded = read_image_bytes(data, path.name, plane=args.plane,
                              slice_index=getattr(args, "frame", None))
    if loaded.kind == "dicom" and (getattr(args, "all_frames", False) or getattr(
            args, "seg", False)):
        return _predict_dicom(handle, data, path, loaded, options, args)
    if loaded.kind == "nifti" and loaded.volume is not None:
        labels, volumes = segment_loaded_volume(loaded, handle, options)
        output = args.out / f"{stem}_mask.nii.gz"
        output.write_bytes(nifti_mask_bytes(labels, data, path.name))
        counts = {str(c): int((labels == c).sum()) for c in foreground_classes(handle.num_classes)}
        return {"output": str(output), "kind": "nifti", "shape": list(labels.shape),
                "foreground_pixels": counts,
                "volume_mm3": {str(c): v for c, v in volumes.items()} if volumes else None,
                "ood": _ood(handle, pixels=loaded.pixels), "warnings": []}
    result = segment_loaded(loaded, handle, options)
    output = args.out / f"{stem}_mask.png"
    output.write_bytes(mask_png_bytes(result.labels, handle.num_classes))
    return {
        "output": str(output),
        "kind": loaded.kind,
        "shape": list(result.labels.shape),
        "foreground_pixels": {str(c): n for c, n in result.area_pixels.items()},
        "area_mm2": {str(c): a for c, a in result.area_mm2.items()} if result.area_mm2 else None,
        "ood": _ood(handle, result.model_input),
        "warnings": result.warnings,
    }


def _ood(handle: Any, model_input: Any = None, pixels: Any = None) -> dict[str, Any] | None:
    """The feature-space OOD score as JSON (None for a model without stored statistics)."""
    from unet_demo.inference.ood import score_for

    try:
        score = score_for(handle, model_input, pixels=pixels)
    except UNetDemoError as error:  # damaged or mismatched statistics: the mask is still written
        return {"error": str(error)}
    return score.to_dict() if score is not None else None


def _predict_dicom(handle: Any, data: bytes, path: Path, loaded: Any, options: Any,
                   args: argparse.Namespace) -> dict[str, Any]:
    """Every frame of a DICOM file (PNG mask per frame), and with ``--seg`` a DICOM SEG."""
    import numpy as np

    from unet_demo.data import dicom
    from unet_demo.data.readers import read_image_bytes
    from unet_demo.inference.encoders import dicom_seg_bytes, mask_file_stem, mask_png_bytes
    from unet_demo.inference.segment import segment_loaded

    stem = mask_file_stem(path.name)
    frames = int(loaded.meta.get("num_frames", 1) or 1)
    indices = range(frames) if frames > 1 else [0]
    labels, outputs, scores, warnings = [], [], [], []
    for index in indices:
        frame = loaded if frames == 1 else read_image_bytes(data, path.name, slice_index=index)
        result = segment_loaded(frame, handle, options)
        output = args.out / (f"{stem}_mask.png" if frames == 1 else
                             f"{stem}_mask_f{index:03d}.png")
        output.write_bytes(mask_png_bytes(result.labels, handle.num_classes))
        labels.append(result.labels)
        outputs.append(str(output))
        scores.append(_ood(handle, result.model_input))
        warnings += [w for w in result.warnings if w not in warnings]
    stack = np.stack(labels)
    summary: dict[str, Any] = {
        "output": outputs[0] if frames == 1 else outputs, "kind": "dicom",
        "frames": frames, "shape": list(stack.shape if frames > 1 else stack.shape[1:]),
        "foreground_pixels": {str(c): int((stack == c).sum()) for c in
                              range(1, max(2, handle.num_classes))},
        "ood": max((s for s in scores if s and "score" in s), key=lambda s: s["score"],
                   default=None),
        "warnings": warnings,
    }
    if frames > 1:
        summary["ood_flagged_frames"] = sum(bool(s and s.get("flagged")) for s in scores)
    if args.seg:
        names = (handle.card.get("class_names") if isinstance(handle.card, dict) else None)
        seg = dicom_seg_bytes([dicom.read_dataset(data, path.name)], stack, handle.num_classes,
                              class_names=names, model_name=handle.title,
                              source_name=f"'{path.name}'")
        seg_path = args.out / f"{stem}_seg.dcm"
        seg_path.write_bytes(seg)
        summary["seg"] = str(seg_path)
    return summary


def _fmt_areas(values: dict[Any, Any] | None) -> str:
    if not values:
        return "0"
    parts = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in values.values()]
    return "/".join(parts)


def _predict_series(handle: Any, data: bytes, path: Path, options: Any,
                    args: argparse.Namespace) -> dict[str, Any]:
    """A ZIP of one DICOM series: a PNG mask per slice (series order), with ``--seg`` a SEG."""
    from unet_demo.data.dicom import read_series_zip
    from unet_demo.inference.encoders import dicom_seg_bytes, mask_file_stem, mask_png_bytes
    from unet_demo.inference.series import segment_series

    stem = mask_file_stem(path.name).removesuffix(".zip")
    series = read_series_zip(data, path.name)
    outcome = segment_series(series, handle, options)
    outputs = []
    for index, labels in enumerate(outcome.labels):
        output = args.out / f"{stem}_mask_s{index:03d}.png"
        output.write_bytes(mask_png_bytes(labels, handle.num_classes))
        outputs.append(str(output))
    summary: dict[str, Any] = {
        "output": outputs, "kind": "dicom series", "slices": series.names,
        "shape": list(outcome.labels.shape), "spacing_mm": list(series.spacing),
        "foreground_pixels": {str(c): int((outcome.labels == c).sum()) for c in
                              outcome.volumes_mm3},
        "volume_mm3": {str(c): v for c, v in outcome.volumes_mm3.items()},
        "ood": outcome.ood.to_dict() if outcome.ood else None, "warnings": [],
    }
    if args.seg:
        names = handle.card.get("class_names") if isinstance(handle.card, dict) else None
        seg_path = args.out / f"{stem}_seg.dcm"
        seg_path.write_bytes(dicom_seg_bytes(series.datasets, outcome.labels, handle.num_classes,
                                             class_names=names, model_name=handle.title,
                                             source_name=f"'{path.name}'"))
        summary["seg"] = str(seg_path)
    return summary
