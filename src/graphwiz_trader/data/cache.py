"""Bounded feature caches: content-addressed Qlib bins and computed Alpha158 frames.

A cache folder (``data/qlib`` by default) holds entries of two kinds:

- ``<freq>_<fingerprint>/`` folders written by :func:`graphwiz_trader.data.qlib_bins.prepare_qlib_dir`,
  one per data slice (Qlib bins plus the Alpha158 frames computed from them in ``feature_cache/``);
- ``alpha158_<key>.parquet`` files in ``feature_cache/`` (or in the folder itself when it is a
  feature cache), computed from bins written by ``graphwiz data to-qlib``;
- Qlib's own disk cache (``features_cache/`` and ``dataset_cache/``, written when a redis server
  answers): each ``<hash>`` file with its ``.meta`` and ``.index`` is one entry, removed together (Qlib
  recomputes an entry any of whose files is missing).

An entry's last use is the newest of its modification time and its ``.last_used`` marker, which
:func:`mark_used` touches each time the entry is reused. Eviction removes entries unused for more than
``max_age_days``, then the least recently used ones until the folder holds at most ``max_size_mb``.
Entries in ``protect`` (the one the caller is about to read) and, for the automatic bound, entries used
within ``grace_minutes`` (another process may be reading them) are never removed. A folder entry is
renamed to ``.evicting-...`` before it is deleted, so a half-deleted entry is never taken for a valid one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = ".last_used"
FEATURE_CACHE_DIR = "feature_cache"
QLIB_CACHE_DIRS = ("features_cache", "dataset_cache")
_QLIB_SUFFIXES = (".meta", ".index")
_BINS_RE = re.compile(r"^(?:day|\d+min)_[0-9a-f]{16}$")
_FRAME_RE = re.compile(r"^alpha158_[0-9a-f]+\.parquet$")
_EVICTING_PREFIX = ".evicting-"
_MB = 1024 * 1024


def _settings_defaults() -> tuple[float, float]:
    from graphwiz_trader.config.settings import QlibSettings

    fields = QlibSettings.model_fields
    return float(fields["cache_max_size_mb"].default), float(fields["cache_max_age_days"].default)


@dataclass(frozen=True)
class CacheLimits:
    """Bounds of a cache folder. ``None`` switches a bound off.

    Parameters
    ----------
    max_size_mb : total size allowed, MB (1 MB = 2**20 bytes).
    max_age_days : entries unused for longer than this many days are removed.
    grace_minutes : entries used within this many minutes are never removed (they may be in use).
    """

    max_size_mb: float | None = field(default_factory=lambda: _settings_defaults()[0])
    max_age_days: float | None = field(default_factory=lambda: _settings_defaults()[1])
    grace_minutes: float = 60.0

    @classmethod
    def from_settings(cls, qlib_settings: object, grace_minutes: float = 60.0) -> "CacheLimits":
        """The bounds of a loaded :class:`~graphwiz_trader.config.settings.QlibSettings`."""
        return cls(float(qlib_settings.cache_max_size_mb), float(qlib_settings.cache_max_age_days),  # type: ignore[attr-defined]
                   grace_minutes)


@dataclass(frozen=True)
class CacheEntry:
    """One cache entry: a bins folder or one computed frame. ``last_used`` is epoch seconds (UTC)."""

    path: Path
    size_bytes: int
    last_used: float
    kind: str  # "bins", "frame" or "qlib" (one Qlib disk-cache item: the file, .meta and .index)


@dataclass(frozen=True)
class Eviction:
    """An entry chosen for removal and why (``age`` or ``size``)."""

    entry: CacheEntry
    reason: str


@dataclass(frozen=True)
class CacheReport:
    """What a clean did (or, with ``dry_run``, would do)."""

    root: Path
    entries: int
    size_bytes: int
    evicted: tuple[Eviction, ...]
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        return sum(e.entry.size_bytes for e in self.evicted)

    def to_dict(self) -> dict:
        return {
            "root": str(self.root), "entries": self.entries, "size_mb": self.size_bytes / _MB,
            "dry_run": self.dry_run, "freed_mb": self.freed_bytes / _MB,
            "evicted": [{"path": str(e.entry.path), "kind": e.entry.kind, "size_mb": e.entry.size_bytes / _MB,
                         "last_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.entry.last_used)),
                         "reason": e.reason} for e in self.evicted],
        }


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _last_used(path: Path) -> float:
    times = [path.stat().st_mtime]
    marker = path / MARKER
    if path.is_dir() and marker.exists():
        times.append(marker.stat().st_mtime)
    return max(times)


def mark_used(path: str | Path) -> None:
    """Record that the entry at ``path`` (a bins folder or a frame file) was used now."""
    p = Path(path)
    try:
        if p.is_dir():
            (p / MARKER).touch()
        elif p.exists():
            os.utime(p)
    except OSError as exc:  # a read-only cache still works, it just cannot be ordered by use
        log.debug("cannot mark %s as used: %s", p, exc)


def _remove_leftovers(root: Path) -> None:
    """Finish deletions a killed process left half-done (``.evicting-*``)."""
    for p in root.glob(f"{_EVICTING_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def scan_cache(root: str | Path) -> list[CacheEntry]:
    """The entries of the cache folder ``root`` (nothing else in it is ever counted or touched)."""
    base = Path(root)
    if not base.is_dir():
        return []
    out: list[CacheEntry] = []
    for folder in (base, base / FEATURE_CACHE_DIR):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            try:
                if folder == base and p.is_dir() and _BINS_RE.match(p.name):
                    out.append(CacheEntry(p, _tree_size(p), _last_used(p), "bins"))
                elif p.is_file() and _FRAME_RE.match(p.name):
                    out.append(CacheEntry(p, p.stat().st_size, p.stat().st_mtime, "frame"))
            except FileNotFoundError:  # removed by another process meanwhile
                continue
    for folder in (base / d for d in QLIB_CACHE_DIRS):
        if folder.is_dir():
            out.extend(_qlib_cache_entries(folder))
    return sorted(out, key=lambda e: (e.last_used, str(e.path)))


def _qlib_group(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + s) for s in _QLIB_SUFFIXES)]


def _qlib_cache_entries(folder: Path) -> list[CacheEntry]:
    """Qlib disk-cache items in ``folder``: a data file plus its ``.meta``/``.index``, as one entry."""
    groups: dict[str, list[os.stat_result]] = {}
    for p in folder.iterdir():
        if not p.is_file():
            continue
        stem = next((p.name[: -len(s)] for s in _QLIB_SUFFIXES if p.name.endswith(s)), p.name)
        with contextlib.suppress(FileNotFoundError):
            groups.setdefault(stem, []).append(p.stat())
    return [CacheEntry(folder / stem, sum(st.st_size for st in stats), max(st.st_mtime for st in stats), "qlib")
            for stem, stats in groups.items()]


def plan_eviction(entries: Iterable[CacheEntry], max_size_mb: float | None = None, max_age_days: float | None = None,
                  *, now: float | None = None, protect: Iterable[str | Path] = (),
                  grace_minutes: float = 0.0) -> list[Eviction]:
    """Which entries to remove, least recently used first.

    First every entry unused for more than ``max_age_days``; then, while the entries left exceed
    ``max_size_mb``, the least recently used. Entries in ``protect`` or used within ``grace_minutes``
    of ``now`` (epoch seconds, default the current time) are kept, even if the bound stays exceeded.
    """
    now = time.time() if now is None else now
    keep = {Path(p).resolve() for p in protect}
    ordered = sorted(entries, key=lambda e: (e.last_used, str(e.path)))
    removable = [e for e in ordered
                 if e.path.resolve() not in keep and now - e.last_used > grace_minutes * 60.0]
    chosen: list[Eviction] = []
    if max_age_days is not None:
        chosen = [Eviction(e, "age") for e in removable if now - e.last_used > max_age_days * 86_400.0]
    if max_size_mb is not None:
        taken = {id(c.entry) for c in chosen}
        total = sum(e.size_bytes for e in ordered) - sum(c.entry.size_bytes for c in chosen)
        for e in removable:
            if total <= max_size_mb * _MB:
                break
            if id(e) not in taken:
                chosen.append(Eviction(e, "size"))
                total -= e.size_bytes
    return sorted(chosen, key=lambda c: (c.entry.last_used, str(c.entry.path)))


def _delete(entry: CacheEntry) -> bool:
    p = entry.path
    try:
        if entry.kind == "bins":
            doomed = p.parent / f"{_EVICTING_PREFIX}{p.name}-{os.getpid()}"
            os.replace(p, doomed)  # atomic: nobody sees a half-deleted entry
            shutil.rmtree(doomed, ignore_errors=True)
        elif entry.kind == "qlib":
            removed = False
            for f in _qlib_group(p):  # the data file first: Qlib then treats the item as absent
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                    removed = True
            return removed
        else:
            p.unlink()
        return True
    except FileNotFoundError:
        return False


def clean_cache(root: str | Path, max_size_mb: float | None = None, max_age_days: float | None = None, *,
                dry_run: bool = False, protect: Iterable[str | Path] = (), grace_minutes: float = 0.0,
                now: float | None = None) -> CacheReport:
    """Remove (or with ``dry_run`` only list) the entries :func:`plan_eviction` chooses in ``root``."""
    base = Path(root)
    if base.exists() and not base.is_dir():
        from graphwiz_trader.errors import DataError

        raise DataError(f"cache folder {base} is a file, not a folder")
    if base.is_dir() and not dry_run:
        _remove_leftovers(base)
    entries = scan_cache(base)
    plan = plan_eviction(entries, max_size_mb, max_age_days, now=now, protect=protect, grace_minutes=grace_minutes)
    done = plan if dry_run else [c for c in plan if _delete(c.entry)]
    report = CacheReport(base, len(entries), sum(e.size_bytes for e in entries), tuple(done), dry_run)
    if done and not dry_run:
        log.info("cache %s: removed %d entries (%.1f MB; %s)", base, len(done), report.freed_bytes / _MB,
                 ", ".join(sorted({c.reason for c in done})))
    return report


def enforce_cache_limits(root: str | Path, limits: CacheLimits | None = None,
                         protect: Iterable[str | Path] = ()) -> CacheReport:
    """The automatic bound, run after each use of the cache: :func:`clean_cache` with ``limits``
    (default: the settings' defaults) and their grace period."""
    lim = limits or CacheLimits()
    report = clean_cache(root, lim.max_size_mb, lim.max_age_days, protect=protect, grace_minutes=lim.grace_minutes)
    left = report.size_bytes - report.freed_bytes
    if lim.max_size_mb is not None and left > lim.max_size_mb * _MB:
        log.warning("cache %s holds %.1f MB, above its bound of %.0f MB: the rest was used in the last %.0f "
                    "minutes; run `graphwiz cache clean` when no job is running", root, left / _MB,
                    lim.max_size_mb, lim.grace_minutes)
    return report
