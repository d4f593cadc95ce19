"""Streamlit pieces for the runs folder's disk budget (the Train page draws them).

* `removed_notice(run_id)`: an info box when a linked run was removed to save space.
* `pin_toggle(run_id)`: the "Keep this run" checkbox (`housekeeping.set_pinned`).
* `disk_caption()`: one caption line, runs folder size / budget.

A page that shows a run should also call `unet_demo.training.housekeeping.mark_opened(run_dir)`
on every rerun (cheap), so runs people look at are removed last.

Example:
    >>> format_bytes(4_698_359), format_bytes(5 * 1024**3)
    ('4.48 MB', '5 GB')
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.settings import runs_dir, runs_max_gb
from unet_demo.training import housekeeping

PIN_LABEL = "Keep this run (never removed to save space)"
PIN_KEY_PREFIX = "housekeeping.pin."
SIZE_CACHE_SECONDS = 10.0
_size_cache: dict[str, tuple[float, int]] = {}


def format_bytes(count: float) -> str:
    """Bytes in words with binary units: B, KB, MB, GB (3 significant digits).

    Args:
        count: a number of bytes.

    Example:
        >>> format_bytes(512), format_bytes(1536), format_bytes(0.25 * 1024**3)
        ('512 B', '1.5 KB', '256 MB')
    """
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} GB"  # pragma: no cover


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else runs_dir()


def removed_text(record: housekeeping.RemovedRun) -> str:
    """The sentence `removed_notice` shows for a removal record.

    Args:
        record: the tombstone of the run.

    Example:
        >>> removed_text(housekeeping.RemovedRun("r1", label="my run", removed=0.0,
        ...              budget_bytes=5 * 1024**3))  # doctest: +ELLIPSIS
        'Run r1 (my run) was removed on 1970-01-01 ... to keep the runs folder under 5 GB; ...'
    """
    name = record.label or record.dataset
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.removed))
    budget = (f"under {format_bytes(record.budget_bytes)}" if record.budget_bytes
              else "within its budget")
    return (f"Run {record.run_id}{f' ({name})' if name else ''} was removed on {when} to keep "
            f"the runs folder {budget}; its model and curves are gone. Train it again, and "
            f"tick “{PIN_LABEL}” on runs you want to keep.")


def removed_notice(run_id: str, root: str | Path | None = None) -> bool:
    """Show an info box and return True when ``run_id`` was removed to save space.

    Returns False (and shows nothing) when the run folder exists or no removal was recorded.

    Args:
        run_id: the run the page was asked to show (e.g. from its link).
        root: the runs folder (default `unet_demo.settings.runs_dir()`).

    Example:
        >>> removed_notice("20261123-093000-1a2b3c")  # doctest: +SKIP
        True
    """
    folder = _root(root)
    if not run_id or (folder / str(run_id)).is_dir():
        return False
    record = housekeeping.removed_run(folder, str(run_id))
    if record is None:
        return False
    st.info(removed_text(record), icon="🧹")
    return True


def pin_toggle(run_id: str, root: str | Path | None = None) -> bool:
    """Draw the "Keep this run" checkbox for ``run_id``; returns whether it is pinned.

    Ticking it pins the run at once (`housekeeping.set_pinned`); nothing is drawn for a run
    folder that does not exist.

    Args:
        run_id: the run.
        root: the runs folder (default `unet_demo.settings.runs_dir()`).

    Example:
        >>> pin_toggle("20261123-093000-1a2b3c")  # doctest: +SKIP
        False
    """
    path = _root(root) / str(run_id)
    if not run_id or not path.is_dir():
        return False
    key = PIN_KEY_PREFIX + str(run_id)

    def changed() -> None:
        housekeeping.set_pinned(path, bool(st.session_state[key]))

    # Follow the file, so a pin set elsewhere (CLI, another session) shows; no value= below,
    # since a widget given both a value and a Session State entry warns.
    st.session_state[key] = housekeeping.is_pinned(path)
    st.checkbox(PIN_LABEL, key=key, on_change=changed,
                help="Runs are removed, oldest first, when the runs folder grows past its "
                     "budget (UNET_DEMO_RUNS_MAX_GB). A kept run is never removed.")
    return housekeeping.is_pinned(path)


def folder_size_cached(root: str | Path | None = None) -> int:
    """`housekeeping.folder_size_bytes`, recomputed at most every `SIZE_CACHE_SECONDS`.

    Args:
        root: the runs folder (default `unet_demo.settings.runs_dir()`).
    """
    folder = str(_root(root))
    now = time.monotonic()
    cached = _size_cache.get(folder)
    if cached is None or now - cached[0] > SIZE_CACHE_SECONDS:
        cached = (now, housekeeping.folder_size_bytes(folder))
        _size_cache[folder] = cached
    return cached[1]


def disk_caption_text(size_bytes: int, budget_gb: float) -> str:
    """The caption line: runs folder size and budget.

    Args:
        size_bytes: the runs folder's size.
        budget_gb: the budget in GB (0 = no limit).

    Example:
        >>> disk_caption_text(1024**3, 4.0)
        'Runs folder: 1 GB of its 4 GB budget (25%); the oldest unpinned runs are removed beyond it.'
        >>> disk_caption_text(2048, 0)
        'Runs folder: 2 KB (no size limit; set UNET_DEMO_RUNS_MAX_GB to cap it).'
    """
    size = format_bytes(size_bytes)
    if budget_gb <= 0:
        return f"Runs folder: {size} (no size limit; set UNET_DEMO_RUNS_MAX_GB to cap it)."
    budget = budget_gb * housekeeping.GB
    return (f"Runs folder: {size} of its {format_bytes(budget)} budget "
            f"({100 * size_bytes / budget:.0f}%); the oldest unpinned runs are removed beyond it.")


def disk_caption(root: str | Path | None = None) -> str:
    """Draw one caption line, runs folder size / budget, and return its text.

    Args:
        root: the runs folder (default `unet_demo.settings.runs_dir()`).

    Example:
        >>> disk_caption()  # doctest: +SKIP
        'Runs folder: 1.2 GB of its 5 GB budget (24%); ...'
    """
    try:
        text = disk_caption_text(folder_size_cached(root), runs_max_gb())
    except UNetDemoError as error:
        text = f"Runs folder: {format_bytes(folder_size_cached(root))}. {error}"
    st.caption(text)
    return text


__all__ = ["disk_caption", "format_bytes", "pin_toggle", "removed_notice", "removed_text"]
