"""Debian's Chromium, headless, with a fake microphone reading a WAV file.

We never run ``playwright install``: the browser is the distribution's (``apt-get install -y
chromium``), found at ``/usr/bin/chromium`` or ``$AUTORTC_CHROMIUM``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")

# Media: permission prompts auto-accepted, the fake device reads our file, audio may play
# without a gesture. CI (root, no GPU, small /dev/shm, no network beyond the stack).
MEDIA_FLAGS = (
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)
CI_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # A hidden page must not be throttled: timers drive getStats and the clock map.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


def find_chromium(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The Chromium executable: ``explicit``, ``$AUTORTC_CHROMIUM``, or a Debian path.

    Raises FileNotFoundError saying how to install it.
    """
    for cand in (explicit, os.environ.get("AUTORTC_CHROMIUM"), *CANDIDATES, shutil.which("chromium")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    raise FileNotFoundError(
        "Chromium not found (looked at $AUTORTC_CHROMIUM, " + ", ".join(CANDIDATES)
        + "); install it with `apt-get install -y chromium`"
    )


def chromium_args(capture_wav: Path) -> list[str]:
    """Command-line flags for a run whose microphone plays ``capture_wav`` (looped by Chromium)."""
    wav = Path(capture_wav).resolve()
    if not wav.is_file():
        raise FileNotFoundError(f"fake-capture WAV not found: {wav}")
    # Chromium splits this flag's value at '%' (optional "%noloop" suffix): refuse such paths.
    if "%" in str(wav):
        raise ValueError(f"fake-capture WAV path must not contain '%': {wav}")
    return [*MEDIA_FLAGS, f"--use-file-for-fake-audio-capture={wav}", *CI_FLAGS]
