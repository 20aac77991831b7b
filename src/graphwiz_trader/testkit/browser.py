"""The system Chromium for browser tests: where it is, why it cannot run, and the flags it is launched with.

The browser is Debian's ``chromium`` (``$GRAPHWIZ_CHROMIUM`` or ``/usr/bin/chromium``, else ``chromium`` on the
PATH), driven by Playwright's Python API with ``executable_path``; Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ARGS: tuple[str, ...] = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium_path() -> Path | None:
    """The Chromium binary, or None when there is none."""
    env = os.environ.get("GRAPHWIZ_CHROMIUM")
    for cand in ([env] if env else []) + ["/usr/bin/chromium", shutil.which("chromium") or ""]:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    return None


def browser_missing() -> str | None:
    """Why a browser test cannot run (None when it can): no playwright, or no Chromium."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return "no Chromium at /usr/bin/chromium or $GRAPHWIZ_CHROMIUM (apt-get install chromium)"
    return None
