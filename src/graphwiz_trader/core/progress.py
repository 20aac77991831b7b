"""Progress bars: one switch for the whole process (``--no-progress``), tqdm underneath.

Bars go to stderr, and only when stderr is a terminal (tqdm's ``disable=None``), so logs and CI output
stay clean. ``set_progress(False)`` (what ``--no-progress`` does) turns every bar off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_ENABLED: dict[str, bool] = {"on": True}


def set_progress(enabled: bool) -> None:
    """Turn every progress bar of this process on (the default: shown on a terminal) or off."""
    _ENABLED["on"] = bool(enabled)


def progress_enabled() -> bool:
    return _ENABLED["on"]


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             enabled: bool = True, **kwargs: Any) -> Iterator[T]:
    """``iterable`` wrapped in a tqdm bar labelled ``desc`` (no bar when off or not on a terminal)."""
    from tqdm.auto import tqdm

    show = enabled and _ENABLED["on"]
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=None if show else True,
                     leave=False, dynamic_ncols=True, **kwargs))


def bar(total: int | float | None, desc: str, unit: str = "it", enabled: bool = True, **kwargs: Any) -> Any:
    """A manually updated tqdm bar (``.update(n)``, ``.close()``) under the same switch as :func:`progress`."""
    from tqdm.auto import tqdm

    show = enabled and _ENABLED["on"]
    return tqdm(total=total, desc=desc, unit=unit, disable=None if show else True, leave=False,
                dynamic_ncols=True, **kwargs)
