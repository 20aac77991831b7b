"""One run folder per command invocation: ``runs/<command>/<UTC time>/``.

A run folder holds what produced the run and what it produced:

- ``command.json``: the command line, the parsed arguments, the package version, the start time (UTC);
- ``config.yaml``: the resolved settings (secrets masked) when the command reads settings;
- ``summary.json``: the command's figures (the same payload ``--json PATH`` writes);
- outputs as Parquet (``predictions.parquet``, ``weights.parquet``, ``trades.parquet``, ``equity.parquet``)
  and ``report.html`` where the command makes one.

The root is ``$GRAPHWIZ_RUNS_DIR`` when set, else ``runs`` in the working folder. Every file is written
atomically (temp file, fsync, rename), so a killed command never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.core.jsonout import plain


def runs_root() -> Path:
    """``$GRAPHWIZ_RUNS_DIR`` or ``runs``."""
    return Path(os.environ.get("GRAPHWIZ_RUNS_DIR") or "runs")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temp file in the same folder, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunFolder:
    """The folder of one invocation of ``graphwiz <command>``.

    Parameters
    ----------
    command
        the command path joined by ``-`` (``research-walkforward``).
    root
        parent folder (default :func:`runs_root`).
    path
        use exactly this folder instead (``--out DIR``); it is created when missing.
    """

    def __init__(self, command: str, root: str | Path | None = None, path: str | Path | None = None) -> None:
        self.command = command
        self.started = datetime.now(timezone.utc)
        if path is not None:
            self.path = Path(path)
            self.path.mkdir(parents=True, exist_ok=True)
        else:
            base = Path(root) if root is not None else runs_root()
            stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
            parent = base / command
            parent.mkdir(parents=True, exist_ok=True)
            for i in range(1000):
                candidate = parent / (stamp if i == 0 else f"{stamp}-{i}")
                try:
                    candidate.mkdir()
                except FileExistsError:
                    continue
                self.path = candidate
                break
            else:  # pragma: no cover - 1000 runs in one second
                raise RuntimeError(f"cannot create a run folder under {parent}")
        self.outputs: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """Path of an output inside the run folder (registered in ``summary.json``'s ``outputs``)."""
        p = self.path / name
        self.outputs[Path(name).stem] = str(p)
        return p

    def write_command(self, argv: list[str], args: Mapping[str, Any]) -> Path:
        from graphwiz_trader import __version__

        shown = {k: v for k, v in args.items() if k != "func" and not k.startswith("_") and not callable(v)}
        payload = {"argv": argv, "args": shown, "version": __version__, "python": sys.version.split()[0],
                   "started_utc": self.started.isoformat()}
        p = self.path / "command.json"
        atomic_write_bytes(p, json.dumps(plain(payload), indent=2, default=str).encode())
        return p

    def write_config(self, settings: Any) -> Path:
        """The resolved settings as YAML, secrets shown as ``**********``."""
        import yaml

        if hasattr(settings, "model_dump"):
            data = settings.model_dump(mode="json")
        else:
            data = dict(settings)
        p = self.file("config.yaml")
        atomic_write_bytes(p, yaml.safe_dump(plain(data), sort_keys=False).encode())
        return p

    def write_frame(self, name: str, frame: pd.DataFrame | pd.Series) -> Path:
        """``<name>.parquet`` in the run folder (a Series becomes a one-column frame)."""
        import io

        df = frame.to_frame() if isinstance(frame, pd.Series) else frame
        buf = io.BytesIO()
        df.to_parquet(buf)
        p = self.file(f"{name}.parquet")
        atomic_write_bytes(p, buf.getvalue())
        return p

    def write_summary(self, payload: Mapping[str, Any], json_path: str | Path | None = None) -> Path:
        """``summary.json`` (plus a copy at ``json_path`` when given), with the run folder and its outputs."""
        body = {"command": self.command, "run_dir": str(self.path), **dict(payload),
                "outputs": {**self.outputs, **dict(payload.get("outputs") or {})}}
        data = json.dumps(plain(body), indent=2, default=str).encode()
        p = self.path / "summary.json"
        atomic_write_bytes(p, data)
        if json_path is not None:
            atomic_write_bytes(Path(json_path), data)
        return p


def command_path(args: Any) -> str:
    """``research-walkforward``: the command and its action(s), for the run folder name."""
    parts = [str(getattr(args, "command", None) or "run")]
    for key, value in vars(args).items():
        if key.endswith(("_command", "_target")) and isinstance(value, str):
            parts.append(value)
    return "-".join(parts)


def open_run(args: Any) -> RunFolder:
    """The run folder of this invocation: ``args.run`` when the app already opened one, else a new one.

    Named by :func:`command_path`; ``--out DIR`` (``args.run_dir``) names the folder exactly. The command
    line and parsed arguments go to ``command.json``.
    """
    run = getattr(args, "run", None)
    if isinstance(run, RunFolder):
        return run
    run = RunFolder(command_path(args), path=getattr(args, "run_dir", None))
    argv = getattr(args, "_argv", None)
    run.write_command(list(sys.argv[1:] if argv is None else argv), vars(args))
    args.run = run
    return run
