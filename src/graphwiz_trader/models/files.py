"""Model files that are checked before any library reads them.

A saved model is trusted only as far as its recorded checksum: every writer here records the SHA-256 of
the file it wrote (hex, of the exact bytes on disk), and every reader verifies it on the bytes it has read
into memory, then hands *those bytes* to the library (no second read, so the file cannot change between
check and use). A file without a recorded checksum, or with a different one, is refused with a
:class:`ModelFileError` that names the file and the reason; nothing in it is parsed.

Writes are crash-safe: a unique temp file in the target folder, fsync, rename, fsync of the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graphwiz_trader.errors import GraphwizError


class ModelFileError(GraphwizError):
    """A saved model file is missing, altered, truncated or not in the expected form."""


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path`` (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a unique temp path next to ``path``; on success fsync it and rename it over ``path``.

    The caller (or a library it calls) writes the whole file to the yielded path. On an exception the temp
    file is removed and ``path`` is left as it was. ``suffix`` is appended to the temp name for libraries
    that insist on an extension (stable-baselines3 appends ``.zip`` otherwise).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON to ``path`` through :func:`atomic_output`."""
    text = json.dumps(payload, indent=2, default=str)
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """Parse a JSON object from ``path``; :class:`ModelFileError` naming ``what`` when it is not one."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{what} {path} is not readable JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ModelFileError(f"{what} {path} holds {type(doc).__name__}, expected a JSON object")
    return doc


def read_verified(path: Path, expected_sha256: object, what: str) -> bytes:
    """The bytes of ``path`` after checking them against ``expected_sha256``.

    Raises
    ------
    ModelFileError
        when the file is missing, no checksum was recorded (a file saved before checksums, or a metadata
        file that was edited), or the checksum differs (altered, truncated or swapped file).
    """
    if not isinstance(expected_sha256, str) or len(expected_sha256) != 64:
        raise ModelFileError(f"{what} {path}: no SHA-256 checksum is recorded for it, so it is not loaded "
                             f"(saved by an older version or the metadata was edited); retrain and save it again")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"{what} {path} cannot be read: {e.strerror or e}") from None
    actual = sha256_bytes(data)
    if actual != expected_sha256.lower():
        raise ModelFileError(f"{what} {path}: SHA-256 {actual} differs from the recorded {expected_sha256} "
                             f"({len(data)} bytes); the file was altered, truncated or replaced, so it is not loaded")
    return data


# -- LightGBM text models -------------------------------------------------------------------------------------

def lightgbm_feature_name(column: object) -> str:
    """The name LightGBM stores for a pandas column: ``str(column)`` with whitespace replaced by ``_``."""
    return str(column).replace(" ", "_")


def lightgbm_feature_names(text: str, path: Path) -> list[str]:
    """The ``feature_names=`` line of a LightGBM text model (its header, before the first tree).

    Raises
    ------
    ModelFileError
        when the header has no ``feature_names=`` line.
    """
    for line in text.splitlines():
        if line.startswith("Tree="):
            break
        if line.startswith("feature_names="):
            return line[len("feature_names="):].split(" ")
    raise ModelFileError(f"LightGBM model {path} has no feature_names= line in its header")


def check_lightgbm_features(model_names: list[str], columns: list[str], model_path: Path, meta_path: Path) -> None:
    """Refuse a model whose own feature names differ from the metadata's feature list (order included).

    A permuted list would feed every feature into another feature's splits and predict silently wrong.

    Raises
    ------
    ModelFileError
        naming the missing/unexpected names, or the first positions where the order differs.
    """
    expected = [lightgbm_feature_name(c) for c in columns]
    if model_names == expected:
        return
    head = (f"LightGBM model {model_path} was trained on features that differ from {meta_path}'s feature_columns "
            f"({len(model_names)} in the model, {len(expected)} in the metadata)")
    only_model = [n for n in model_names if n not in set(expected)]
    only_meta = [n for n in expected if n not in set(model_names)]
    if only_model or only_meta:
        raise ModelFileError(f"{head}: only in the model: {', '.join(only_model[:8]) or '-'}"
                             f"{' ...' if len(only_model) > 8 else ''}; only in the metadata: "
                             f"{', '.join(only_meta[:8]) or '-'}{' ...' if len(only_meta) > 8 else ''}")
    if len(model_names) != len(expected):
        raise ModelFileError(f"{head}: the same names, repeated a different number of times")
    moved = [(i, a, b) for i, (a, b) in enumerate(zip(model_names, expected)) if a != b]
    shown = "; ".join(f"position {i}: model {a}, metadata {b}" for i, a, b in moved[:6])
    raise ModelFileError(f"{head}: same names in another order, {len(moved)} positions differ ({shown}"
                         f"{' ...' if len(moved) > 6 else ''})")
