"""Offline check of the page's measurement: no LiveKit, a known signal, exact expectations.

The capture WAV holds tone bursts whose onsets and ends are known to the sample (and found by
``detect.detect_segments`` on the very file Chromium reads). The page runs with ``?selftest=1``:
the fake microphone goes through the mic worklet, and, delayed by exactly ``delay_ms``, through
the playout path (worklet → speakers → MediaRecorder) as a stand-in agent. So:

- each mic segment's duration and spacing must match the file's (detection error, samples);
- the playout onset must be the mic onset + ``delay_ms`` (playout detector error, samples);
- USER_KPI must equal ``delay + onset - eot`` in frames plus the render→output latency
  (the time mapping's error, ms).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .chromium import chromium_args, find_chromium
from .detect import DetectorConfig, Segment
from .harness import _clock_sync, _mic_zero_runs, _state, _wait
from .kpi import UserKpi
from .static import WEB_DIST, StaticServer
from .trace import BrowserTrace
from .underruns import MicZeroRuns
from .wavprep import PreparedWav, prepare_chromium_wav

logger = logging.getLogger("autortc.autobrowser")

CAPTURE_CHUNK_SAMPLES = 480  # 10 ms at 48 kHz


def tone_bursts_wav(path: Path, *, sr: int = 48_000, freq_hz: float = 440.0, amplitude: float = 0.3,
                    bursts_ms: tuple[tuple[float, float], ...] = ((500, 1200), (1450, 1950), (2650, 3050)),
                    total_ms: float = 7050.0, floor_amplitude: float = 0.003) -> Path:
    """Write a mono 16-bit WAV with sine bursts ``(start_ms, end_ms)`` over a quiet floor.

    The floor (a 97 Hz sine, ``floor_amplitude``, far below the 0.015 RMS threshold) keeps the
    file free of digital silence, so any run of exact zeros the page sees is an underrun the
    browser inserted, and the page's ``zero_runs`` account for it.
    """
    n_total = int(round(total_ms * sr / 1000))
    x = (floor_amplitude * np.sin(2 * np.pi * 97.0 * np.arange(n_total) / sr)).astype(np.float32)
    for a, b in bursts_ms:
        i0, i1 = int(round(a * sr / 1000)), int(round(b * sr / 1000))
        n = np.arange(i1 - i0)
        x[i0:i1] = amplitude * np.sin(2 * np.pi * freq_hz * n / sr)
    sf.write(str(path), x, sr, subtype="PCM_16")
    return path


@dataclass(frozen=True)
class SelftestResult:
    file_segments: tuple[Segment, ...]  # in the capture file, samples
    page_segments: tuple[Segment, ...]  # on the page's AudioContext, frames
    playout_onset_frame: int | None
    delay_samples: int
    eot_error_samples: int | None  # (page eot - page onset0) - (file eot - file onset0)
    onset_spacing_errors: tuple[int, ...]  # per segment: (page onset_i - onset0) - (file ...)
    duration_errors: tuple[int, ...]  # per segment: page duration - file duration
    playout_onset_error_samples: int | None  # (playout onset - mic onset0) - delay
    kpi: UserKpi
    kpi_expected_ms: float | None  # from frames: (playout onset - eot) / sr + render->output
    kpi_mapping_error_ms: float | None  # kpi.raw - kpi_expected
    capture_offset_samples: int | None  # page onset0 - mic first input - file onset0 (start-up)
    inserted_zero_samples: int  # frames of the 10 ms chunks the browser inserted into the mic during the file's speech

    @property
    def underrun_blocks(self) -> int:
        """Capture underruns as whole 10 ms chunks (Chromium delivers capture in 10 ms buffers)."""
        return round(self.inserted_zero_samples / CAPTURE_CHUNK_SAMPLES)

    @property
    def eot_error_net_samples(self) -> int | None:
        """EoT error once the reported underrun chunks are taken out."""
        if self.eot_error_samples is None:
            return None
        return self.eot_error_samples - self.underrun_blocks * CAPTURE_CHUNK_SAMPLES
    render_to_output_ms: float | None
    mapping: dict | None
    webm_bytes: int
    trace_path: Path


async def arun_selftest(out_dir: Path, *, delay_ms: float = 3000.0,
                        detector: DetectorConfig = DetectorConfig(), chromium: str | None = None,
                        source_wav: Path | None = None, timeout_s: float = 60.0) -> SelftestResult:
    from playwright.async_api import async_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    src = source_wav or tone_bursts_wav(out_dir / "selftest_source.wav")
    # The source carries its own lead and tail (quiet floor, no digital silence).
    cap: PreparedWav = prepare_chromium_wav(src, out_dir / "selftest_capture.wav", lead_s=0.0, pad_s=0.0,
                                            detector=detector)
    sr = cap.sr
    delay_samples = int(round(delay_ms * sr / 1000))
    q = {"selftest": "1", "selftest_delay_ms": f"{delay_samples * 1000 / sr:.6f}", "speech_ms": f"{cap.speech_ms:.3f}",
         "speech_thr": str(detector.threshold_rms), "silence_ms": str(detector.silence_ms),
         "window_ms": str(detector.window_ms), "playout_thr": str(detector.threshold_rms),
         "playout_silence_ms": str(detector.silence_ms)}
    with StaticServer(WEB_DIST) as srv:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(find_chromium(chromium)), headless=True,
                                               args=chromium_args(cap.path))
            try:
                page = await browser.new_page()
                await page.goto(f"{srv.url}/?{urllib.parse.urlencode(q)}", timeout=20_000)
                if not await _wait(page, "s.mic_live", 20):
                    raise RuntimeError(f"selftest page never went live: {await _state(page)}")
                st = await _state(page)
                if st["failure"]:
                    raise RuntimeError(f"selftest page failed: {st['failure']}")
                await _clock_sync(page)
                # Done once the delayed copy of the last burst has been played and closed.
                last_play_end = cap.speech_end_sample + delay_samples + detector.silence_samples(sr)
                done = ("s.mic_first_input_frame !== null && !s.playout_open && "
                        f"s.ctx_frame - s.mic_first_input_frame >= {last_play_end + sr // 5}")
                if not await _wait(page, done, timeout_s):
                    raise RuntimeError(f"selftest did not complete in {timeout_s} s: {await _state(page)}")
                raw = await asyncio.wait_for(page.evaluate("window.autortc.finish()"), 20)
                webm = await page.evaluate("window.autortc.recordingBase64()")
            finally:
                await browser.close()
    webm_bytes = 0
    if webm:
        data = base64.b64decode(webm)
        (out_dir / "post_browser_reply.webm").write_bytes(data)
        webm_bytes = len(data)
    trace_path = out_dir / "browser_trace.json"
    trace_path.write_text(json.dumps(raw, indent=1))
    tr = BrowserTrace.from_dict(raw)
    return evaluate_selftest(tr, cap, delay_samples, webm_bytes, trace_path,
                             zero_runs=_mic_zero_runs(tr, cap, scripted=False))


def evaluate_selftest(tr: BrowserTrace, cap: PreparedWav, delay_samples: int, webm_bytes: int,
                      trace_path: Path, *, zero_runs: MicZeroRuns | None) -> SelftestResult:
    """Compare what the page measured with what the file holds (pure).

    ``zero_runs``: the page's mic zero runs placed on the capture file, as the turn path places them
    (:func:`autobrowser.harness._mic_zero_runs`): runs on the file's own digital silence are the
    stimulus, not inserted zeros; ``None`` (no mic onset, other rate) counts none."""
    # Only the first play of the (looping) file.
    page = [Segment(s.onset_frame, s.end_frame) for s in sorted(tr.mic, key=lambda s: s.onset_frame)]
    fileseg = list(cap.segments)
    if page:
        horizon = page[0].onset + (cap.speech_end_sample - cap.speech_onset_sample) + cap.sr // 10
        page = [s for s in page if s.onset <= horizon]
    kpi = tr.user_kpi()
    inserted = 0
    if page and zero_runs is not None:
        inserted = (sum(u.chunks for u in zero_runs.within(cap.speech_onset_sample, cap.speech_end_sample))
                    * zero_runs.chunk_frames)
    n = min(len(page), len(fileseg))
    eot_err = spacing = durs = None
    play_err = kpi_exp = kpi_err = cap_off = None
    play_onset = None
    if n:
        p0, f0 = page[0].onset, fileseg[0].onset
        spacing = tuple((page[i].onset - p0) - (fileseg[i].onset - f0) for i in range(n))
        durs = tuple((page[i].end - page[i].onset) - (fileseg[i].end - fileseg[i].onset) for i in range(n))
        eot_err = (page[-1].end - p0) - (fileseg[-1].end - f0) if len(page) == len(fileseg) else None
        if tr.mic_first_input_frame is not None:
            cap_off = p0 - tr.mic_first_input_frame - f0
        plays = sorted((s for s in tr.playout if s.onset_frame >= p0), key=lambda s: s.onset_frame)
        if plays:
            play_onset = plays[0].onset_frame
            play_err = play_onset - p0 - delay_samples
            if kpi.raw_ms is not None and tr.render_to_output_ms is not None:
                kpi_exp = (play_onset - page[-1].end) * 1000.0 / cap.sr + tr.render_to_output_ms
                kpi_err = kpi.raw_ms - kpi_exp
    return SelftestResult(
        file_segments=tuple(fileseg), page_segments=tuple(page), playout_onset_frame=play_onset,
        delay_samples=delay_samples, eot_error_samples=eot_err, onset_spacing_errors=spacing or (),
        duration_errors=durs or (), playout_onset_error_samples=play_err, kpi=kpi, kpi_expected_ms=kpi_exp,
        kpi_mapping_error_ms=kpi_err, capture_offset_samples=cap_off, inserted_zero_samples=inserted, render_to_output_ms=tr.render_to_output_ms,
        mapping=tr.mapping, webm_bytes=webm_bytes, trace_path=trace_path,
    )


def run_selftest(out_dir: Path, **kw) -> SelftestResult:
    """Blocking ``arun_selftest``."""
    return asyncio.run(arun_selftest(out_dir, **kw))


def summary(r: SelftestResult) -> dict:
    d = asdict(r)
    d["trace_path"] = str(r.trace_path)
    d["underrun_blocks"] = r.underrun_blocks
    d["eot_error_net_samples"] = r.eot_error_net_samples
    return d


@dataclass(frozen=True)
class ScriptSelftestResult:
    """Scripted microphone, offline: errors in samples against the exact schedule."""

    mic_errors: tuple[tuple[int, int], ...]  # per expected segment: (onset err, end err)
    anchor_error_samples: int | None  # segment 1 start - (detected agent onset + offset)
    playout_onset_error_samples: int | None  # first playout onset - (segment 0 onset + delay)
    late_frames: tuple[int, ...]
    trace_path: Path


async def arun_script_selftest(out_dir: Path, *, delay_ms: float = 1500.0, offset_ms: float = 500.0,
                               detector: DetectorConfig = DetectorConfig(), chromium: str | None = None,
                               timeout_s: float = 60.0) -> ScriptSelftestResult:
    """``?selftest=1&mic=script``: segment 0 at the start, segment 1 ``offset_ms`` after the
    stand-in agent (the mic delayed by ``delay_ms``) starts speaking, as in a barge-in case."""
    from playwright.async_api import async_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    seg0 = prepare_chromium_wav(
        tone_bursts_wav(out_dir / "seg0_src.wav", bursts_ms=((100, 800), (1050, 1550)), total_ms=1700, floor_amplitude=0),
        out_dir / "seg0.wav", lead_s=0, pad_s=0, detector=detector)
    seg1 = prepare_chromium_wav(
        tone_bursts_wav(out_dir / "seg1_src.wav", freq_hz=660.0, bursts_ms=((50, 350),), total_ms=400, floor_amplitude=0),
        out_dir / "seg1.wav", lead_s=0, pad_s=0, detector=detector)
    sr = seg0.sr
    delay = int(round(delay_ms * sr / 1000))
    offset = int(round(offset_ms * sr / 1000))
    q = {"selftest": "1", "mic": "script", "script_lead_ms": "500", "selftest_delay_ms": f"{delay * 1000 / sr:.6f}",
         "speech_ms": f"{seg0.speech_ms:.3f}", "speech_thr": str(detector.threshold_rms),
         "silence_ms": str(detector.silence_ms), "window_ms": str(detector.window_ms)}

    def pcm(p: Path) -> str:
        x, _ = sf.read(str(p), dtype="int16")
        return base64.b64encode(x.astype("<i2").tobytes()).decode()

    script = [{"pcm_b64": pcm(seg0.path), "after": "start", "offset_ms": 0},
              {"pcm_b64": pcm(seg1.path), "after": "agent_speech_start", "offset_ms": offset * 1000 / sr}]
    with StaticServer(WEB_DIST) as srv:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(find_chromium(chromium)), headless=True,
                                               args=chromium_args(seg0.path))
            try:
                page = await browser.new_page()
                await page.goto(f"{srv.url}/?{urllib.parse.urlencode(q)}", timeout=20_000)
                if not await _wait(page, "s.audio_ready", 20):
                    raise RuntimeError(f"selftest page audio never started: {await _state(page)}")
                await page.evaluate("(segs) => window.autortc.setMicScript(segs)", script)
                # Both segments played, and the delayed copy of segment 1 played and closed.
                done = ("s.script_done && !s.mic_open && !s.playout_open && s.playout_segments >= 2 && "
                        f"s.playout_idle_ms !== null && s.playout_idle_ms >= {detector.silence_ms + 100}")
                if not await _wait(page, done, timeout_s):
                    raise RuntimeError(f"script selftest did not complete in {timeout_s} s: {await _state(page)}")
                raw = await asyncio.wait_for(page.evaluate("window.autortc.finish()"), 20)
            finally:
                await browser.close()
    trace_path = out_dir / "browser_trace.json"
    trace_path.write_text(json.dumps(raw, indent=1))
    entries = raw["mic"]["script"]["segments"]
    starts = [e["start_frame"] for e in entries]
    expected = [(starts[0] + s.onset, starts[0] + s.end) for s in seg0.segments]
    if len(starts) > 1:
        expected += [(starts[1] + s.onset, starts[1] + s.end) for s in seg1.segments]
    page_segs = sorted((s["onset_frame"], s["end_frame"]) for s in raw["mic"]["segments"])
    mic_errors = tuple((p[0] - e[0], p[1] - e[1]) for p, e in zip(page_segs, expected))
    if len(page_segs) != len(expected):
        raise AssertionError(f"page saw {len(page_segs)} mic segments, the schedule has {len(expected)}")
    onsets = sorted(o["onset_frame"] for o in raw["playout"]["onsets"])
    play_err = onsets[0] - (expected[0][0] + delay) if onsets else None
    anchor_err = None
    if len(entries) > 1:
        anchor_err = entries[1]["start_frame"] - (entries[1]["anchor_frame"] + offset)
        detected = [o for o in onsets if o >= starts[0]]
        if detected and detected[0] != entries[1]["anchor_frame"]:
            anchor_err = entries[1]["start_frame"] - (detected[0] + offset)
    return ScriptSelftestResult(mic_errors=mic_errors, anchor_error_samples=anchor_err,
                                playout_onset_error_samples=play_err,
                                late_frames=tuple(e["late_frames"] for e in entries), trace_path=trace_path)


def run_script_selftest(out_dir: Path, **kw) -> ScriptSelftestResult:
    """Blocking ``arun_script_selftest``."""
    return asyncio.run(arun_script_selftest(out_dir, **kw))
