"""AutoBrowser: the cases through a real headless Chromium on the product web page.

The page (web/, bundled into web/dist/) joins the LiveKit room, publishes the fake-capture
microphone, plays the agent, and timestamps the user's end of speech and the first audible
playout sample-accurately with AudioWorklets. This package prepares the capture WAV, drives
Chromium with Playwright, and turns what the page measured into typed results.

Modules: ``wavprep`` (capture WAV), ``detect`` (the page's detector, in numpy),
``kpi`` (USER_KPI), ``trace`` (browser_trace.json model), ``stats`` (per-turn WebRTC stats),
``chromium`` (launch flags), ``static`` (local page server), ``harness`` (``run_browser_turn``,
``arun_browser_case``), ``selftest`` (offline page checks), ``calibration`` (browser vs probe
tables, ground-truth error), ``cli`` (``autortc browser-selftest`` / ``browser-turn``).
"""

import logging

logger = logging.getLogger("autortc.autobrowser")
