"""Every test file pydicom and nibabel ship, through ``python -m unet_demo predict``.

Collects every file in the installed pydicom's ``data`` folder (``test_files``,
``charset_files``, ``palettes``; not the data manager's own ``*.py``, ``hashes.json`` and
``urls.json``) and every NIfTI file (``.nii``, ``.nii.gz``) in nibabel's ``tests/data``. Only
files already on disk: nothing is downloaded (pydicom's ``get_testdata_files`` may fetch extra
files over the network, so it is not used).

Runs the real CLI ``predict --json`` on them with the bundled brain_skullstrip model, in a few
batches (one per set of files whose masks would have distinct names, each with its own output
folder), in this process (``unet_demo.cli.main``) or with ``--subprocess`` as
``python -m unet_demo``. A batch that ends in an unexpected error or prints a traceback is run
again one file at a time, to find the file. Each file is then

* ``segmented``: the CLI reports it ok and every mask it names was written;
* ``refused``: the CLI's one-sentence ``error:`` message (recorded), no mask written;
* ``traceback``: a traceback in the output, an unexpected exception (a bug), or a result that
  does not add up (a mask missing, a file not reported).

and described from its header: DICOM or not, pixel data or not, the transfer syntax and whether
it is compressed. Multi-frame DICOMs are segmented at frame 0 (the CLI's default).

Example:
    .venv/bin/python benchmarks/sweep_test_files.py   # table; results/sweep_test_files.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, machine_description, save_result  # noqa: E402

MODEL = "bundled:brain_skullstrip"
# The data manager's own files in pydicom/data, not test data.
PYDICOM_NOT_TEST_DATA = {"hashes.json", "urls.json"}


def pydicom_test_files() -> list[Path]:
    """Every test data file on disk in the installed pydicom (no download)."""
    import pydicom

    root = Path(pydicom.__file__).parent / "data"
    return sorted(
        path for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
        and path.suffix not in (".py", ".pyc")
        and not (path.parent == root and path.name in PYDICOM_NOT_TEST_DATA)
    )


def nibabel_nifti_files() -> list[Path]:
    """Every ``.nii`` / ``.nii.gz`` in the installed nibabel's ``tests/data``."""
    import nibabel

    root = Path(nibabel.__file__).parent / "tests" / "data"
    return sorted(path for path in root.rglob("*")
                  if path.is_file() and path.name.lower().endswith((".nii", ".nii.gz")))


def describe(path: Path) -> dict[str, Any]:
    """What the header says: DICOM or not, pixel data, transfer syntax, compressed, size."""
    import pydicom
    from pydicom.datadict import keyword_for_tag

    info: dict[str, Any] = {"dicom": False, "pixel_data": False, "transfer_syntax": None,
                            "compressed": None, "rows": None, "columns": None}
    if path.name.lower().endswith((".nii", ".nii.gz")):
        return info
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            meta = getattr(ds, "file_meta", None)
            syntax = meta.get("TransferSyntaxUID") if meta is not None else None
            # force=True turns any bytes into a dataset; a DICOM file has a preamble, a
            # transfer syntax or at least one element pydicom knows.
            tags = list(ds.keys())
            known = any(keyword_for_tag(tag) for tag in tags)
            if not (ds.preamble is not None or syntax is not None or known):
                return info
            info["dicom"] = True
            info["pixel_data"] = any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009))
            if syntax is not None:
                uid = pydicom.uid.UID(str(syntax))
                info["transfer_syntax"] = uid.name
                info["compressed"] = bool(uid.is_compressed) if uid.is_transfer_syntax else None
            for key in ("Rows", "Columns"):
                value = ds.get(key)
                info[key.lower()] = int(value) if isinstance(value, int) else None
    except Exception as error:  # noqa: BLE001 - a file pydicom cannot parse is not described
        info["describe_error"] = f"{type(error).__name__}: {error}"
    return info


def _batches(files: list[Path]) -> list[list[Path]]:
    """Split the files so that no two in a batch would write masks of the same name."""
    from unet_demo.inference.encoders import mask_file_stem

    batches: list[tuple[set[str], list[Path]]] = []
    for path in files:
        stem = mask_file_stem(path.name).lower()
        for stems, members in batches:
            if stem not in stems:
                stems.add(stem)
                members.append(path)
                break
        else:
            batches.append(({stem}, [path]))
    return [members for _, members in batches]


def _run_cli(argv: list[str], subprocess_cli: bool) -> tuple[int, str, str]:
    """The CLI's exit code, stdout and stderr, in this process or as ``python -m unet_demo``."""
    if subprocess_cli:
        done = subprocess.run([sys.executable, "-m", "unet_demo", *argv], cwd=REPO,
                              capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr
    from unet_demo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException as error:  # noqa: BLE001 - record it as the CLI would crash
            import traceback

            traceback.print_exc(file=err)
            code = 1 if not isinstance(error, SystemExit) else int(error.code or 0)
    return code, out.getvalue(), err.getvalue()


def _predict(files: list[Path], out: Path, model: str,
             subprocess_cli: bool) -> tuple[int, dict[str, Any] | None, str]:
    code, stdout, stderr = _run_cli(
        ["predict", "--model", model, "--input", *map(str, files), "--out", str(out), "--json"],
        subprocess_cli)
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        report = None
    return code, report, stderr


def _outcome(path: Path, entry: dict[str, Any] | None, stderr: str, out: Path) -> dict[str, Any]:
    from unet_demo.inference.encoders import mask_file_stem

    stem = mask_file_stem(path.name)
    if entry is None:
        return {"status": "traceback", "message": stderr.strip()[-2000:] or "no result"}
    if "Traceback" in stderr:
        return {"status": "traceback", "message": stderr.strip()[-2000:]}
    if entry["ok"]:
        outputs = entry["output"] if isinstance(entry["output"], list) else [entry["output"]]
        missing = [o for o in outputs if not Path(o).is_file() or Path(o).stat().st_size == 0]
        if missing:
            return {"status": "traceback", "message": f"reported ok but no mask at {missing}"}
        ood = entry.get("ood") or {}
        return {"status": "segmented", "kind": entry.get("kind"), "shape": entry.get("shape"),
                "ood_score": ood.get("score"), "ood_flagged": ood.get("flagged")}
    written = [p.name for p in out.glob(f"{glob_escape(stem)}_mask*")]
    if written:
        return {"status": "traceback", "message": f"refused but wrote {written}: "
                                                  f"{entry['error']}"}
    return {"status": "refused", "message": entry["error"]}


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters bracketed."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def reason(message: str) -> str:
    """A refusal message without the file name, its details and numbers: a grouping key.

    Example:
        >>> reason("'a.dcm' is only 3x3 pixels; at least 8x8 is needed. Upload it.")
        'is only NxN pixels; at least NxN is needed'
    """
    text = re.sub(r"^'[^']*'\s*", "", message.strip())
    text = re.split(r"\.\s|\s\(|:\s", text, maxsplit=1)[0].rstrip(".")
    return re.sub(r"\d+", "N", text)


def sweep(files: list[Path] | None = None, model: str = MODEL, subprocess_cli: bool = False,
          work: Path | None = None) -> list[dict[str, Any]]:
    """Run ``predict`` over the files (default: every pydicom and nibabel test file).

    Returns one record per file: path, name, source, the header description and the outcome
    (status ``segmented`` / ``refused`` / ``traceback``, message for the last two).
    """
    if files is None:
        files = pydicom_test_files() + nibabel_nifti_files()
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sweep-")))
        outcomes: dict[Path, dict[str, Any]] = {}
        for number, batch in enumerate(_batches(files)):
            out = work / f"batch{number}"
            code, report, stderr = _predict(batch, out, model, subprocess_cli)
            entries = {e["input"]: e for e in report["files"]} if report else {}
            if report is None or code not in (0, 2) or "Traceback" in stderr or \
                    len(entries) != len(batch):
                # Something escaped the per-file handling: one file at a time finds which.
                for index, path in enumerate(batch):
                    single = work / f"batch{number}_file{index}"
                    code, report, stderr = _predict([path], single, model, subprocess_cli)
                    entry = report["files"][0] if report and report["files"] else None
                    outcomes[path] = _outcome(path, entry, stderr, single)
                continue
            for path in batch:
                outcomes[path] = _outcome(path, entries.get(str(path)), stderr, out)
    records = []
    for path in files:
        source = "nibabel" if path.name.lower().endswith((".nii", ".nii.gz")) else "pydicom"
        records.append({"path": str(path), "name": path.name, "source": source,
                        **describe(path), **outcomes[path]})
    return records


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts the report gives (see the module docstring)."""
    def count(predicate) -> int:
        return sum(1 for r in records if predicate(r))

    dicom = [r for r in records if r["source"] == "pydicom" and r["dicom"]]
    with_pixels = [r for r in dicom if r["pixel_data"]]
    compressed = [r for r in with_pixels if r["compressed"]]
    nifti = [r for r in records if r["source"] == "nibabel"]
    segmented = [r for r in records if r["status"] == "segmented"]
    reasons = Counter(reason(r["message"]) for r in records if r["status"] == "refused")
    return {
        "files": len(records),
        "pydicom_files": count(lambda r: r["source"] == "pydicom"),
        "nibabel_nifti_files": len(nifti),
        "segmented": len(segmented),
        "refused": count(lambda r: r["status"] == "refused"),
        "tracebacks": count(lambda r: r["status"] == "traceback"),
        "dicom": len(dicom),
        "dicom_with_pixel_data": len(with_pixels),
        "dicom_with_pixel_data_segmented": count(
            lambda r: r in with_pixels and r["status"] == "segmented"),
        "uncompressed_with_pixel_data_refused": {
            r["name"]: r["message"] for r in with_pixels
            if not r["compressed"] and r["status"] == "refused"},
        "uncompressed_segmented": count(
            lambda r: r in with_pixels and not r["compressed"] and r["status"] == "segmented"),
        "compressed_with_pixel_data": len(compressed),
        "compressed_segmented": count(lambda r: r in compressed and r["status"] == "segmented"),
        "compressed_refused": {r["name"]: r["message"] for r in compressed
                               if r["status"] == "refused"},
        "compressed_transfer_syntaxes": dict(Counter(r["transfer_syntax"] for r in compressed)),
        "dicom_without_pixel_data": len(dicom) - len(with_pixels),
        "dicom_without_pixel_data_refused": count(
            lambda r: r in dicom and not r["pixel_data"] and r["status"] == "refused"),
        "not_dicom_pydicom_files": count(lambda r: r["source"] == "pydicom" and not r["dicom"]),
        "not_dicom_refused": count(lambda r: r["source"] == "pydicom" and not r["dicom"]
                                   and r["status"] == "refused"),
        "nifti_segmented": count(lambda r: r in nifti and r["status"] == "segmented"),
        "nifti_refused": {r["name"]: r["message"] for r in nifti if r["status"] == "refused"},
        "segmented_ood_flagged": count(lambda r: r in segmented and r.get("ood_flagged")),
        "refusal_reasons": dict(reasons.most_common()),
    }


def print_table(records: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Every file's outcome, then the counts."""
    width = max(len(r["name"]) for r in records)
    for r in records:
        kind = ("NIfTI" if r["source"] == "nibabel" else
                "DICOM" if r["dicom"] else "other")
        pixels = "pixels" if r["pixel_data"] else ""
        syntax = r["transfer_syntax"] or ""
        detail = r.get("message", "") if r["status"] != "segmented" else \
            f"{r.get('kind')} {r.get('shape')} OOD {r.get('ood_score') or 0:.2f}"
        print(f"{r['name']:<{width}}  {kind:<5} {pixels:<6} {syntax[:34]:<34} "
              f"{r['status']:<9} {detail[:160]}")
    print()
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"{key}: {len(value) if key != 'compressed_transfer_syntaxes' else ''}")
            for name, message in value.items():
                print(f"    {name}: {message}")
        else:
            print(f"{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subprocess", action="store_true",
                        help="run `python -m unet_demo` in a child process (default: in this one)")
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args(argv)
    from unet_demo.cli import quiet_tensorflow_logs

    quiet_tensorflow_logs()  # as `python -m unet_demo` does, before TensorFlow is imported
    start = time.perf_counter()
    records = sweep(model=args.model, subprocess_cli=args.subprocess)
    seconds = time.perf_counter() - start
    summary = summarise(records)
    print_table(records, summary)
    print(f"{seconds:.1f} s on {machine_description()}")
    import nibabel
    import pydicom

    path = save_result("sweep_test_files", {
        "model": args.model, "pydicom": pydicom.__version__, "nibabel": nibabel.__version__,
        "cli": "subprocess" if args.subprocess else "in-process", "seconds": round(seconds, 1),
        "summary": summary,
        "files": [r | {"path": f"{r['source']}:{Path(r['path']).relative_to(_root(r))}"}
                  for r in records],
    })
    print(f"saved {path}")
    return 1 if summary["tracebacks"] else 0


def _root(record: dict[str, Any]) -> Path:
    """The package folder a file came from (pydicom/data or nibabel/tests/data)."""
    import nibabel
    import pydicom

    if record["source"] == "nibabel":
        return Path(nibabel.__file__).parent / "tests" / "data"
    return Path(pydicom.__file__).parent / "data"


if __name__ == "__main__":
    sys.exit(main())
