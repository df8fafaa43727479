"""Open a run's ``report.html`` in headless Chromium and read back what a person would get per turn.

``python -m autortc.report.check output/runs/<run>/report.html [--screenshot out.png]`` prints one JSON
line per turn: the players Chromium could decode (their ``duration`` in s, read after
``loadedmetadata``) and what the turn's timeline drew (bars by kind, markers by kind).  Tests
compare those with the turn folders' WAVs; the command is the documented way to look.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["inspect_report"]

_JS = """
async () => {
  const out = [];
  for (const sec of document.querySelectorAll('section.turn')) {
    const players = [];
    for (const a of sec.querySelectorAll('audio')) {
      a.preload = 'metadata';
      const ok = await new Promise((resolve) => {
        if (a.readyState >= 1) return resolve(true);
        const t = setTimeout(() => resolve(false), 10000);
        a.addEventListener('loadedmetadata', () => { clearTimeout(t); resolve(true); }, {once: true});
        a.addEventListener('error', () => { clearTimeout(t); resolve(false); }, {once: true});
        a.load();
      });
      players.push({file: a.dataset.kind, decoded: ok, duration: ok ? a.duration : null,
                    error: a.error ? a.error.code : null});
    }
    const svg = sec.querySelector('svg.timeline');
    const bars = {}, marks = {}, marks_x = {}, ticks = [];
    if (svg) {
      for (const r of svg.querySelectorAll('rect')) if (r.getAttribute('class') !== 'lane') {
        const k = r.getAttribute('class'); bars[k] = (bars[k] || 0) + 1; }
      for (const l of svg.querySelectorAll('line[class]')) {
        const k = l.getAttribute('class').replace('m-', ''); marks[k] = (marks[k] || 0) + 1;
        (marks_x[k] = marks_x[k] || []).push(parseFloat(l.getAttribute('x1'))); }
      for (const t of svg.querySelectorAll('text.tick'))
        ticks.push([parseFloat(t.dataset.x), parseFloat(t.dataset.t)]);
    }
    const box = svg ? svg.getBoundingClientRect() : null;
    out.push({case_id: sec.dataset.case, trace_id: sec.dataset.trace, players, timeline: !!svg,
              timeline_px: box ? [box.width, box.height] : null, bars, marks, marks_x, ticks,
              gates: sec.querySelectorAll('table tr').length - 1});
  }
  return out;
}
"""


async def _inspect(html: Path, screenshot: Path | None, chromium: str | None) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    from autobrowser.chromium import find_chromium

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(find_chromium(chromium)), headless=True,
                                           args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(html.resolve().as_uri(), wait_until="load")
            turns = await page.evaluate(_JS)
            if screenshot is not None:
                await page.screenshot(path=str(screenshot), full_page=True)
            return turns
        finally:
            await browser.close()


def inspect_report(html: Path | str, *, screenshot: Path | str | None = None,
                   chromium: str | None = None) -> list[dict[str, Any]]:
    """Per turn section of ``html``: ``{case_id, trace_id, players: [{file, decoded, duration}],
    timeline, bars: {kind: n}, marks: {kind: n}, marks_x: {kind: [x px]}, ticks: [[x px, t s]], gates}``
    as Chromium rendered it.

    Raises:
        FileNotFoundError: no report at ``html`` or no Chromium (``autobrowser.chromium.find_chromium``).
    """
    html = Path(html)
    if not html.is_file():
        raise FileNotFoundError(f"{html}: no report (render one with autortc.report.write_report(run_dir))")
    return asyncio.run(_inspect(html, Path(screenshot) if screenshot else None, chromium))


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--screenshot", type=Path)
    a = ap.parse_args(argv)
    for t in inspect_report(a.html, screenshot=a.screenshot):
        print(json.dumps(t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
