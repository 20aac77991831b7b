"""Peers in their own virtualenvs: build once (cached), run a peer script there, read its JSON.

A peer whose pins conflict with the project's (vectorbt 1.2.0 needs pandas >= 3 and numba) gets
``benchmarks/peers/.venv-<name>`` made with ``python3.11 -m venv`` and ``pip install -r
requirements-<name>.txt`` (every package pinned exactly). The venv is reused while a stamp file in it
holds the requirements' SHA-256; a venv without a matching stamp (changed pins, or a build that died
half way) is deleted and built again. Builds hold an exclusive lock on ``.venv-<name>.lock``, so two
benchmarks started together build it once.

When the venv cannot be built (no python3.11, no package index, a pin not found) or the peer fails,
:func:`run_peer` raises :class:`PeerUnavailable` with the reason; the benchmark prints the peer's row as
SKIPPED with it and runs the rest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "python3.11"
BUILD_TIMEOUT_S = 1800.0


class PeerUnavailable(RuntimeError):
    """The peer's environment could not be built or the peer did not produce its JSON (the reason)."""


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def peer_python(name: str) -> Path:
    """The peer venv's interpreter, building the venv first if it is missing or its pins changed."""
    req = HERE / f"requirements-{name}.txt"
    if not req.is_file():
        raise PeerUnavailable(f"no pinned requirements at {req}")
    venv = HERE / f".venv-{name}"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.sha256"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    with open(HERE / f".venv-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            return python
        base = shutil.which(PYTHON)
        if base is None:
            raise PeerUnavailable(f"{PYTHON} not found on PATH (the {name} venv is built with it)")
        if venv.exists():
            shutil.rmtree(venv)
        print(f"building the {name} venv at {venv} from {req.name} (once; reused while the pins stay the same)",
              file=sys.stderr)
        steps = ([base, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(req)])
        for cmd in steps:
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise PeerUnavailable(f"building the {name} venv timed out after {BUILD_TIMEOUT_S:g} s: "
                                      f"{' '.join(cmd[:4])} ...") from None
            if done.returncode != 0:
                raise PeerUnavailable(f"building the {name} venv failed ({' '.join(cmd[1:4])} ...): "
                                      f"{_tail(done.stderr or done.stdout)}")
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(digest + "\n")
        os.replace(tmp, stamp)  # the stamp comes last: a venv without it is rebuilt
        return python


def run_peer(name: str, script: str, folder: Path, timeout_s: float = 900.0) -> dict:
    """Run ``benchmarks/peers/<script> <folder>`` in the ``name`` venv and return the JSON it prints."""
    python = peer_python(name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("OMP_NUM_THREADS", "1")  # one native thread, like the project's engine (BLAS limited to 1)
    env.setdefault("NUMBA_NUM_THREADS", "1")
    try:
        done = subprocess.run([str(python), str(HERE / script), str(folder)], capture_output=True, text=True,
                              timeout=timeout_s, env=env, cwd=str(folder), check=False)
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"{script} did not finish within {timeout_s:g} s") from None
    if done.returncode != 0:
        raise PeerUnavailable(f"{script} failed (exit {done.returncode}): {_tail(done.stderr)}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise PeerUnavailable(f"{script} printed no JSON: {_tail(done.stdout + done.stderr)}") from None
