"""One user turn through the product page in headless Chromium.

``arun_browser_turn`` (asyncio) / ``run_browser_turn`` (blocking):

1. convert the case WAV for the fake microphone (48 kHz, lead + 10 s trailing silence);
2. get a token from the token server (``GET /token?room=&identity=``);
3. launch Debian's Chromium with that WAV as the microphone, open the page served by the token
   server with ``?auto=1&lk_token=…&url=…`` (or ``page_url`` for another server);
4. wait, each stage with its own timeout and cause: page loaded → joined → agent in the room →
   agent audio track → the user's end of speech → first playout → the reply's end (or the loop
   of the capture file coming round, whichever is first);
5. ``finish()`` the page, read ``window.autortcTrace`` and the recording through Playwright, and
   write ``browser_trace.json``, ``post_browser_reply.webm``, ``webrtc_stats.json``.

``arun_browser_case`` takes a case's segments: one segment at ``start`` is the path above;
several (later ones anchored on the agent's speech, e.g. barge-in) use the page's scripted
microphone, which plays each segment sample-exactly at its anchor.

A failure raises ``BrowserTurnError`` with a ``cause`` (``BrowserFailure``) after writing what
the page had measured. Room creation and deletion belong to the caller.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
import re
import time
import urllib.parse
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .chromium import chromium_args, find_chromium
from .detect import DetectorConfig
from .kpi import UserKpi
from .stats import TurnStats, turn_stats
from .trace import BrowserTrace
from .underruns import MicZeroRuns, classify_zero_runs
from .wavprep import PreparedWav, prepare_chromium_wav

logger = logging.getLogger("autortc.autobrowser")

TRACE_FILE = "browser_trace.json"
WEBM_FILE = "post_browser_reply.webm"
STATS_FILE = "webrtc_stats.json"
CAPTURE_FILE = "browser_user.wav"
CONSOLE_FILE = "browser_console.log"


class BrowserFailure(str, enum.Enum):
    TOKEN_SERVER = "token_server"  # token server unreachable or answered an error
    PAGE_NOT_LOADED = "page_not_loaded"
    TOKEN_REJECTED = "token_rejected"
    CONNECT_FAILED = "connect_failed"
    NO_AGENT = "no_agent"  # no participant of kind AGENT (or the named agent) joined the room
    NO_AGENT_READY = "no_agent_ready"  # ?wait_ready=1 and the agent never answered the probe's probe_ready
    NO_MICROPHONE = "no_microphone"
    NO_AUDIO_TRACK = "no_audio_track"  # the agent never published audio we could subscribe to
    NO_USER_EOT = "no_user_eot"  # the page saw no end of speech on the mic
    NO_PLAYOUT = "no_playout"  # agent track there, nothing audible played
    PAGE_ERROR = "page_error"  # any other failure the page reported


_TOKEN_IN_URL = re.compile(r"(lk_token=)[^&\s\"']+")


def redact(text: str) -> str:
    """Hide the access token of page URLs quoted in errors and logs."""
    return _TOKEN_IN_URL.sub(r"\1<redacted>", text)


class BrowserTurnError(RuntimeError):
    def __init__(self, cause: BrowserFailure, message: str, out_dir: Path | None = None) -> None:
        super().__init__(redact(f"{cause.value}: {message}"))
        self.cause = cause
        self.out_dir = out_dir


@dataclass(frozen=True)
class BrowserTurnOptions:
    """Timeouts (s) per stage and the measurement settings passed to the page."""

    page_load_s: float = 20.0
    join_s: float = 20.0
    agent_join_s: float = 45.0
    audio_track_s: float = 15.0
    playout_s: float = 15.0  # from the user's EoT to the first audible playout
    reply_tail_ms: float = 300.0  # playout silence after the agent's reply_end (jitter buffer drain)
    reply_tail_no_protocol_ms: float = 3000.0  # playout silence that ends a reply without reply_end
    # Scripted turns: after the last segment, how long a quiet agent may take to start a new
    # reply (e.g. answering a barge-in) before the turn is declared over.
    reply_settle_ms: float = 6000.0
    lead_s: float = 1.0
    pad_s: float = 10.0  # seed: 10 s of silence after the speech (Chromium loops the file)
    mic: DetectorConfig = field(default_factory=DetectorConfig)
    playout: DetectorConfig = field(default_factory=DetectorConfig)
    identity: str = "browser-user"
    agent_kind: str = "agent"  # LiveKit participant kind AGENT is the agent; "any": anyone else
    agent_identity: str | None = None
    audio_processing: bool = False
    extra_query: dict[str, str] = field(default_factory=dict)
    chromium: str | None = None  # the executable (or a wrapper that starts it, e.g. in a network namespace)
    headless: bool = True
    livekit_url: str | None = None  # the SFU URL the page uses, instead of the token server's


@dataclass(frozen=True)
class ScriptSegment:
    """One user utterance of a multi-segment case, placed relative to an anchor (case files'
    ``after`` / ``offset_ms``): ``start``, ``previous_end``, ``agent_speech_start`` or
    ``agent_speech_end`` (the agent's speech as the page's playout worklet detects it)."""

    wav: Path
    after: str = "start"
    offset_ms: float = 0.0
    speech_end_ms: float | None = None  # annotated end of speech in ``wav`` (cases' speech_end_ms)

    def __post_init__(self) -> None:
        if self.after not in ("start", "previous_end", "agent_speech_start", "agent_speech_end"):
            raise ValueError(f"ScriptSegment.after: {self.after!r} is not start, previous_end, "
                             "agent_speech_start or agent_speech_end")


def script_from_case(case: Any) -> list[ScriptSegment]:
    """The segments of an ``autortc.cases.Case`` (``wav_path``, ``after``, ``offset_ms``)."""
    return [
        ScriptSegment(wav=s.wav_path, after=s.after, offset_ms=float(s.offset_ms), speech_end_ms=float(s.speech_end_ms))
        for s in case.segments
    ]


@dataclass(frozen=True)
class ClockSync:
    """``page_ms / 1000 - monotonic_s`` from the round trip with the smallest RTT (error ≤ RTT/2).

    ``wall_minus_monotonic_s`` (``time.time() - time.monotonic()`` at the same moment) is the
    same quantity if the page clock is the host's wall clock, which it is in Chromium
    (timeOrigin is wall time); their difference checks the conversion.
    """

    page_minus_monotonic_s: float
    rtt_ms: float
    samples: int
    wall_minus_monotonic_s: float = 0.0

    def to_monotonic(self, page_ms: float | None) -> float | None:
        return None if page_ms is None else page_ms / 1000.0 - self.page_minus_monotonic_s


@dataclass(frozen=True)
class BrowserTurnResult:
    out_dir: Path
    trace_path: Path
    webm_path: Path | None
    stats_path: Path
    kpi: UserKpi
    stats: TurnStats
    capture: PreparedWav  # the fake-capture file; for a scripted mic, the first segment
    clock_sync: ClockSync
    reply_complete: bool  # False: the turn ended at the capture loop or timeout, not reply silence
    t_user_eot_mono: float | None  # host CLOCK_MONOTONIC, comparable with the bots' trace.json
    t_first_playout_mono: float | None
    # host CLOCK_MONOTONIC of each scripted segment's first speech sample (None: not played / capture mode)
    t_script_onsets_mono: tuple[float | None, ...] = ()
    # capture mode: 10 ms chunks the browser zero-filled on the page's mic tap (underruns.MicUnderrun.to_dict
    # + in_speech); None: not measured (scripted mic, or no speech on the page)
    mic_underruns: tuple[dict[str, Any], ...] | None = None


async def fetch_token(token_url: str, room: str, identity: str, timeout_s: float = 10.0) -> tuple[str, str]:
    """``(token, ws_url)`` from the token server (aiohttp); raises BrowserTurnError(TOKEN_SERVER)."""
    import aiohttp

    url = f"{token_url.rstrip('/')}/token"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
            async with http.get(url, params={"room": room, "identity": identity}) as r:
                text = await r.text()
                if r.status != 200:
                    raise BrowserTurnError(BrowserFailure.TOKEN_SERVER, f"GET {url} answered HTTP {r.status}: {text[:200]}")
                body = json.loads(text)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, json.JSONDecodeError) as e:
        raise BrowserTurnError(BrowserFailure.TOKEN_SERVER, f"GET {url} (room={room}) failed: {type(e).__name__}: {e}") from e
    if not isinstance(body, dict) or not body.get("token") or not body.get("url"):
        raise BrowserTurnError(BrowserFailure.TOKEN_SERVER, f"GET {url}: expected JSON with 'token' and 'url', got {body!r}")
    return str(body["token"]), str(body["url"])


def page_query(
    opts: BrowserTurnOptions,
    capture: PreparedWav,
    *,
    room: str | None,
    token: str | None,
    ws_url: str | None,
    trace_id: str | None = None,
) -> dict[str, str]:
    q: dict[str, str] = {
        "wall_offset_s": f"{time.time() - time.monotonic():.6f}",
        "auto": "1",
        "identity": opts.identity,
        "speech_ms": f"{capture.speech_ms:.3f}",
        "speech_thr": str(capture.detector.threshold_rms),
        "silence_ms": str(capture.detector.silence_ms),
        "window_ms": str(capture.detector.window_ms),
        "playout_thr": str(opts.playout.threshold_rms),
        "playout_silence_ms": str(opts.playout.silence_ms),
        "aproc": "1" if opts.audio_processing else "0",
        "agent_timeout_ms": str(int(opts.agent_join_s * 1000)),
        "agent_kind": opts.agent_kind,
    }
    if opts.agent_identity:
        q["agent_identity"] = opts.agent_identity
    if room:
        q["room"] = room
    if token:
        q["lk_token"] = token
    if ws_url:
        q["url"] = ws_url
    if trace_id:
        q["trace_id"] = trace_id
    q.update(opts.extra_query)
    return q


async def _clock_sync(page: Any, n: int = 15) -> ClockSync:
    best: tuple[float, float] | None = None
    for _ in range(n):
        t0 = time.monotonic()
        p = await page.evaluate("window.autortc.nowMs()")
        t1 = time.monotonic()
        rtt = t1 - t0
        if best is None or rtt < best[1]:
            best = (float(p) / 1000.0 - (t0 + t1) / 2.0, rtt)
    assert best is not None
    return ClockSync(page_minus_monotonic_s=best[0], rtt_ms=best[1] * 1000.0, samples=n,
                     wall_minus_monotonic_s=time.time() - time.monotonic())


_STATE = "window.autortc && window.autortc.turnState()"


async def _wait(page: Any, expr: str, timeout_s: float) -> bool:
    """True when ``expr`` (over ``s = turnState()``) or a page failure became true in time."""
    js = f"() => {{ const s = {_STATE}; return !!s && (!!s.failure || ({expr})); }}"
    try:
        await page.wait_for_function(js, timeout=timeout_s * 1000.0, polling=50)
        return True
    except Exception as e:  # playwright TimeoutError; the page may also have navigated away
        if type(e).__name__ != "TimeoutError":
            raise
        return False


async def _holds(page: Any, expr: str) -> bool:
    return bool(await page.evaluate(f"() => {{ const s = {_STATE}; return !!s && ({expr}); }}"))


async def _state(page: Any) -> dict[str, Any]:
    return await page.evaluate(f"() => {_STATE}")


def _page_failure(state: dict[str, Any], out_dir: Path) -> BrowserTurnError | None:
    f = state.get("failure")
    if not f:
        return None
    try:
        cause = BrowserFailure(f.get("cause"))
    except ValueError:
        cause = BrowserFailure.PAGE_ERROR
    return BrowserTurnError(cause, f"the page reported: {f.get('message')}", out_dir)


async def arun_browser_turn(
    case_wav: Path,
    room: str,
    token_url: str,
    out_dir: Path,
    *,
    timeout_s: float = 90.0,
    options: BrowserTurnOptions | None = None,
    page_url: str | None = None,
    trace_id: str | None = None,
    speech_end_ms: float | None = None,
) -> BrowserTurnResult:
    """Run one user turn of ``case_wav`` in ``room`` through the page; see the module doc.

    ``page_url`` defaults to ``token_url`` (the token server serves web/dist under ``/``).
    ``timeout_s`` bounds the whole turn on top of the per-stage timeouts. With ``trace_id``
    the page sends the AutoRTC ``turn_start`` so the agent tags the turn, and the turn ends at
    the agent's ``reply_end``; without it (or an agent not speaking the protocol) at
    ``reply_tail_no_protocol_ms`` of playout silence. ``speech_end_ms`` (the case's annotated
    end of speech in ``case_wav``) makes USER_KPI's EoT that sample, aligned to the page by the
    detected onset; without it the detected EoT is used.
    """
    return await _bounded(
        _run(case_wav, room, token_url, out_dir, options or BrowserTurnOptions(), page_url, trace_id, timeout_s,
             speech_end_ms=speech_end_ms),
        timeout_s, out_dir,
    )


async def _bounded(coro: Any, timeout_s: float, out_dir: Path) -> BrowserTurnResult:
    """The whole turn within ``timeout_s``; a timeout is a BrowserTurnError saying so."""
    try:
        return await asyncio.wait_for(coro, timeout=timeout_s)
    except asyncio.TimeoutError as e:
        raise BrowserTurnError(BrowserFailure.PAGE_ERROR, f"the browser turn did not finish within {timeout_s:g} s "
                               "(every stage had time left: the page or Playwright hung)", out_dir) from e


async def arun_browser_case(
    segments: list[ScriptSegment],
    room: str,
    token_url: str,
    out_dir: Path,
    *,
    timeout_s: float = 120.0,
    options: BrowserTurnOptions | None = None,
    page_url: str | None = None,
    trace_id: str | None = None,
) -> BrowserTurnResult:
    """A case of one or more segments. One segment anchored at ``start`` goes through
    Chromium's fake capture (``arun_browser_turn``); otherwise the page's scripted microphone
    plays each segment sample-exactly at its anchor (``?mic=script``), because a looping
    capture file cannot follow the agent. USER_KPI is the first segment's (EoT → first playout).
    """
    if not segments:
        raise ValueError("arun_browser_case: no segments")
    opts = options or BrowserTurnOptions()
    if len(segments) == 1 and segments[0].after == "start":
        if segments[0].offset_ms:
            opts = replace(opts, lead_s=opts.lead_s + segments[0].offset_ms / 1000.0)
        return await arun_browser_turn(segments[0].wav, room, token_url, out_dir, timeout_s=timeout_s,
                                       options=opts, page_url=page_url, trace_id=trace_id,
                                       speech_end_ms=segments[0].speech_end_ms)
    return await _bounded(
        _run(segments[0].wav, room, token_url, out_dir, opts, page_url, trace_id, timeout_s, tuple(segments)),
        timeout_s, out_dir,
    )


def run_browser_turn(
    case_wav: Path,
    room: str,
    token_url: str,
    out_dir: Path,
    *,
    timeout_s: float = 90.0,
    options: BrowserTurnOptions | None = None,
    page_url: str | None = None,
    trace_id: str | None = None,
    speech_end_ms: float | None = None,
) -> BrowserTurnResult:
    """Blocking ``arun_browser_turn``; not for use inside a running event loop."""
    return asyncio.run(
        arun_browser_turn(
            case_wav, room, token_url, out_dir, timeout_s=timeout_s, options=options, page_url=page_url,
            trace_id=trace_id, speech_end_ms=speech_end_ms,
        )
    )


async def _run(
    case_wav: Path,
    room: str,
    token_url: str,
    out_dir: Path,
    opts: BrowserTurnOptions,
    page_url: str | None,
    trace_id: str | None,
    timeout_s: float,
    script: tuple[ScriptSegment, ...] | None = None,
    speech_end_ms: float | None = None,
) -> BrowserTurnResult:
    from playwright.async_api import async_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    script_wavs: tuple[PreparedWav, ...] | None = None
    if script is None:
        capture = prepare_chromium_wav(
            case_wav, out_dir / CAPTURE_FILE, lead_s=opts.lead_s, pad_s=opts.pad_s, detector=opts.mic,
            speech_end_ms=speech_end_ms,
        )
    else:
        script_wavs = tuple(
            prepare_chromium_wav(seg.wav, out_dir / f"browser_user_seg{i}.wav", lead_s=0.0, pad_s=0.0, detector=opts.mic,
                                 speech_end_ms=seg.speech_end_ms)
            for i, seg in enumerate(script)
        )
        capture = script_wavs[0]
    token, ws_url = await fetch_token(token_url, room, opts.identity)
    if opts.livekit_url:
        ws_url = opts.livekit_url  # the page reaches the SFU another way (e.g. through the impairment path)
    query = page_query(opts, capture, room=room, token=token, ws_url=ws_url, trace_id=trace_id)
    if script is not None:
        query.update({"mic": "script", "script_lead_ms": f"{opts.lead_s * 1000:.0f}"})
    url = f"{(page_url or token_url).rstrip('/')}/?{urllib.parse.urlencode(query)}"
    log_extra = f"room={room} case_wav={case_wav.name} trace_id={trace_id}"
    console: list[str] = []
    exe = find_chromium(opts.chromium)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(exe), headless=opts.headless, args=chromium_args(capture.path)
        )
        try:
            page = await browser.new_page()
            page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
            page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
            return await _drive(
                page, url, capture, opts, out_dir, console, log_extra, browser.version, deadline, script, script_wavs
            )
        finally:
            (out_dir / CONSOLE_FILE).write_text(redact("\n".join(console) + ("\n" if console else "")))
            await browser.close()


async def _stage(page: Any, expr: str, timeout_s: float, cause: BrowserFailure, msg: str, out_dir: Path) -> dict:
    ok = await _wait(page, expr, timeout_s)
    st = await _state(page)
    if (err := _page_failure(st, out_dir)) is not None:
        raise err
    if not ok:
        raise BrowserTurnError(cause, msg, out_dir)
    return st


def _reply_complete(st: dict[str, Any], opts: BrowserTurnOptions, *, scripted: bool) -> bool:
    """The JS condition of ``_end_expr`` on a ``turnState()`` snapshot."""
    idle_ms = st["playout_idle_ms"]
    quiet = not st["playout_open"] and idle_ms is not None

    def idle(ms: float) -> bool:
        return quiet and idle_ms >= ms

    all_ended = st["reply_starts"] == st["reply_ends"]
    if scripted:
        with_protocol = (all_ended and st["reply_ends_after_last_mic_end"] > 0 and idle(opts.reply_tail_ms)
                         and (st["reply_starts_after_last_mic_end"] > 0 or idle(opts.reply_settle_ms)))
    else:
        with_protocol = all_ended and st["reply_ends"] > 0 and idle(opts.reply_tail_ms)
    return bool(with_protocol or (st["reply_starts"] == 0 and idle(opts.reply_tail_no_protocol_ms)))


def _end_expr(opts: BrowserTurnOptions, *, scripted: bool) -> str:
    """The reply is over: every reply the agent started has ended (AutoRTC protocol) and the
    playout has been quiet ``reply_tail_ms``; for a scripted turn the reply to the last segment
    (or ``reply_settle_ms`` of quiet when none came). Without the protocol: long quiet."""
    def idle(ms: float) -> str:
        return f"(!s.playout_open && s.playout_idle_ms !== null && s.playout_idle_ms >= {ms})"

    all_ended = "s.reply_starts === s.reply_ends"
    if scripted:
        with_protocol = (f"({all_ended} && s.reply_ends_after_last_mic_end > 0 && {idle(opts.reply_tail_ms)} && "
                         f"(s.reply_starts_after_last_mic_end > 0 || {idle(opts.reply_settle_ms)}))")
    else:
        with_protocol = f"({all_ended} && s.reply_ends > 0 && {idle(opts.reply_tail_ms)})"
    return f"{with_protocol} || (s.reply_starts === 0 && {idle(opts.reply_tail_no_protocol_ms)})"


async def _drive(
    page: Any,
    url: str,
    capture: PreparedWav,
    opts: BrowserTurnOptions,
    out_dir: Path,
    console: list[str],
    log_extra: str,
    browser_version: str,
    deadline: float,
    script: tuple[ScriptSegment, ...] | None,
    script_wavs: tuple[PreparedWav, ...] | None,
) -> BrowserTurnResult:
    try:
        resp = await page.goto(url, timeout=opts.page_load_s * 1000.0, wait_until="load")
    except Exception as e:
        raise BrowserTurnError(BrowserFailure.PAGE_NOT_LOADED, f"{url.split('?')[0]}: {e}", out_dir) from e
    if resp is not None and not resp.ok:
        raise BrowserTurnError(BrowserFailure.PAGE_NOT_LOADED, f"{url.split('?')[0]} answered HTTP {resp.status}", out_dir)
    if not await _wait(page, "true", opts.page_load_s):
        raise BrowserTurnError(BrowserFailure.PAGE_NOT_LOADED, "window.autortc never appeared (script failed?)", out_dir)
    sync = await _clock_sync(page)
    sr = capture.sr
    failure: BrowserTurnError | None = None
    reply_complete = False
    # What is left of the turn's budget, keeping 20 s to collect the page's results.
    remaining = lambda: max(1.0, deadline - time.monotonic() - 20.0)  # noqa: E731
    try:
        if script is not None and script_wavs is not None:
            await _stage(page, "s.audio_ready", opts.page_load_s, BrowserFailure.PAGE_ERROR, "audio never started", out_dir)
            payload = [
                {"pcm_b64": base64.b64encode(_int16_bytes(w.path)).decode(), "after": seg.after, "offset_ms": seg.offset_ms}
                for seg, w in zip(script, script_wavs)
            ]
            await page.evaluate("(segs) => window.autortc.setMicScript(segs)", payload)
        await _stage(page, "s.joined", opts.join_s + 5.0, BrowserFailure.CONNECT_FAILED,
                     f"not joined within {opts.join_s:g} s", out_dir)
        # The page itself gives up on the agent first, with its own cause.
        await _stage(page, "s.mic_live", opts.agent_join_s + 5.0, BrowserFailure.NO_AGENT,
                     f"mic not live within {opts.agent_join_s:g} s (agent never joined?)", out_dir)
        await _stage(page, "s.agent_track", opts.audio_track_s, BrowserFailure.NO_AUDIO_TRACK,
                     f"no agent audio track within {opts.audio_track_s:g} s", out_dir)
        logger.info("browser turn: joined, mic live, agent track subscribed %s", log_extra)
        # The user's (first) speech ends at speech_end_sample of its file, counted from the mic's
        # first input frame (+ the script lead); allow for the silence window and start-up slack.
        lead = int(opts.lead_s * sr) if script is not None else 0
        eot_frames = lead + capture.speech_end_sample + opts.mic.silence_samples(sr)
        eot_by = eot_frames / sr + 7.0
        eot_expr = (
            "s.mic_segments > 0 && !s.mic_open && s.mic_first_input_frame !== null && "
            f"s.ctx_frame - s.mic_first_input_frame >= {eot_frames}"
        )
        st = await _wait(page, eot_expr, eot_by) and await _state(page)
        if not st or st["mic_segments"] == 0:
            st = await _state(page)
            if (err := _page_failure(st, out_dir)) is not None:
                raise err
            raise BrowserTurnError(
                BrowserFailure.NO_USER_EOT,
                f"no end of speech on the mic within {eot_by:.1f} s (the speech ends at "
                f"{capture.speech_end_sample / sr:.2f} s of its file; threshold {opts.mic.threshold_rms} RMS)",
                out_dir,
            )
        logger.info("browser turn: user EoT seen %s", log_extra)
        # Capture mode: a reply must start before the looped file's speech comes round again
        # (after that, audio may answer the replay, and the replay talks over the reply).
        loop_frames = capture.n_samples + capture.speech_onset_sample - int(0.1 * sr)
        bound = "" if script is not None else f" && f - s.mic_first_input_frame < {loop_frames}"
        play_expr = f"s.mic_first_onset_frame !== null && s.playout_onset_frames.some(f => f >= s.mic_first_onset_frame{bound})"
        looped = "false" if script is not None else f"(s.ctx_frame - s.mic_first_input_frame >= {loop_frames})"
        await _wait(page, f"({play_expr}) || {looped}", opts.playout_s)
        if not await _holds(page, play_expr):
            st = await _state(page)
            if (err := _page_failure(st, out_dir)) is not None:
                raise err
            raise BrowserTurnError(
                BrowserFailure.NO_PLAYOUT,
                f"agent track subscribed but nothing above {opts.playout.threshold_rms} RMS played within "
                f"{opts.playout_s:g} s after the user's EoT" + ("" if script is not None else " (or before the capture file looped)")
                + ("; the agent left the room" if st.get("agent_left") else ""),
                out_dir,
            )
        logger.info("browser turn: first playout %s", log_extra)
        if script is None:
            end_expr = f"{_end_expr(opts, scripted=False)} || (s.ctx_frame - s.mic_first_input_frame >= {loop_frames})"
            await _wait(page, end_expr, min(capture.loop_s + 5.0, remaining()))
            st = await _state(page)
            reply_complete = _reply_complete(st, opts, scripted=False)
            if not reply_complete:
                logger.warning("browser turn: reply still playing when the capture loop came round %s", log_extra)
        else:
            # All segments played, the user quiet, and the agent's reply to the last one over.
            end_expr = f"s.script_done && !s.mic_open && ({_end_expr(opts, scripted=True)})"
            await _wait(page, end_expr, remaining())
            st = await _state(page)
            reply_complete = bool(st["script_done"]) and _reply_complete(st, opts, scripted=True)
            if not st["script_done"]:
                logger.warning("browser turn: %d/%d scripted segments played (anchor never came?) %s",
                               st["script_scheduled"], st["script_total"], log_extra)
        if st["reply_ends"] > 0:
            await _wait(page, "s.agent_traces > 0", 3.0)  # the agent's stage times follow reply_end
    except BrowserTurnError as e:
        failure = e
    return await _collect(page, capture, opts, out_dir, sync, reply_complete, browser_version, log_extra, failure,
                          script, script_wavs)


def _annotated_eot_frame(
    trace: BrowserTrace, capture: PreparedWav, script_wavs: tuple[PreparedWav, ...] | None,
    zero_runs: MicZeroRuns | None = None,
) -> int | None:
    """The annotated end of speech on the page's frames, or None without an annotation.

    Scripted mic: the first segment's scheduled start frame + its annotated EoT (exact).
    Capture: the file is aligned to the page by the first onset, which the page and
    ``detect_segments`` find with the same detector (offline check: ≤ 1 sample), plus the
    10 ms chunks the browser zero-filled on the page's mic between that onset and the EoT
    (``zero_runs``; after each the file reaches the page 10 ms later: fb-browser-1903 b003). So the
    EoT is where the page played that sample, as mic times are defined (render time on the page).
    """
    if capture.eot_sample is None:
        return None
    if script_wavs is not None:
        starts = trace.script_start_frames()
        return starts[0] + capture.eot_sample if starts else None
    if not trace.mic:
        return None
    first_onset = min(s.onset_frame for s in trace.mic)
    slipped = zero_runs.inserted_frames_before(capture.eot_sample) if zero_runs is not None else 0
    return first_onset - capture.speech_onset_sample + capture.eot_sample + slipped


def _mic_zero_runs(trace: BrowserTrace, capture: PreparedWav, scripted: bool) -> MicZeroRuns | None:
    """Capture mode: the page's mic zero runs split into the file's own digital silence and the
    chunks the browser inserted (``underruns``); None for a scripted mic (its stimulus is made in
    the page's own graph, no capture FIFO) or when the page heard no speech."""
    if scripted or not trace.mic or trace.sample_rate != capture.sr:
        return None
    import soundfile as sf

    try:
        pcm, _ = sf.read(str(capture.path), dtype="int16")
    except (OSError, RuntimeError) as e:  # a diagnostic: never fails the turn
        logger.warning("mic zero runs not classified: %s: %s", capture.path, e)
        return None
    runs = (trace.raw.get("mic") or {}).get("zero_runs") or []
    return classify_zero_runs(runs, onset_frame=min(s.onset_frame for s in trace.mic), file_pcm=pcm,
                              file_onset_sample=capture.speech_onset_sample, sr=capture.sr)


def mic_underruns(zero_runs: MicZeroRuns | None, capture: PreparedWav) -> tuple[dict[str, Any], ...] | None:
    """The underruns as plain dicts: ``at_ms`` (ms into the case WAV), ``ms`` (zero-filled on the page),
    ``in_speech`` (between the file's first speech onset and its end of speech)."""
    if zero_runs is None:
        return None
    lo, hi = capture.speech_onset_sample, capture.user_eot_sample
    return tuple({**u.to_dict(capture.sr, capture.lead_samples), "in_speech": lo <= u.file_sample <= hi}
                 for u in zero_runs.underruns)


def _script_onsets_ms(trace: BrowserTrace, script_wavs: tuple[PreparedWav, ...] | None) -> list[float | None]:
    """Page time of each scripted segment's first speech sample (its scheduled start frame + the
    prepared WAV's first speech segment, as ``_annotated_eot_frame`` places the EoT); empty for capture."""
    if not script_wavs:
        return []
    firsts = [w.segments[0].onset if w.segments else None for w in script_wavs]
    return trace.script_speech_onsets_ms(firsts, script_wavs[0].sr)


def _int16_bytes(path: Path) -> bytes:
    import soundfile as sf

    x, _ = sf.read(str(path), dtype="int16")
    return x.astype("<i2").tobytes()


async def _collect(
    page: Any,
    capture: PreparedWav,
    opts: BrowserTurnOptions,
    out_dir: Path,
    sync: ClockSync,
    reply_complete: bool,
    browser_version: str,
    log_extra: str,
    failure: BrowserTurnError | None,
    script: tuple[ScriptSegment, ...] | None,
    script_wavs: tuple[PreparedWav, ...] | None,
) -> BrowserTurnResult:
    # Always collect what the page measured, also for a failed turn.
    try:
        raw = await asyncio.wait_for(page.evaluate("window.autortc.finish()"), 30.0)
        webm_b64 = await asyncio.wait_for(page.evaluate("window.autortc.recordingBase64()"), 30.0)
    except Exception as e:
        if failure is not None:
            raise failure from e
        raise BrowserTurnError(BrowserFailure.PAGE_ERROR, f"could not collect the page's trace: {e}", out_dir) from e
    webm_path: Path | None = None
    if webm_b64:
        webm_path = out_dir / WEBM_FILE
        webm_path.write_bytes(base64.b64decode(webm_b64))
    trace = BrowserTrace.from_dict(raw)
    kpi_detected = trace.user_kpi()
    zero_runs = _mic_zero_runs(trace, capture, scripted=script is not None)
    underruns = mic_underruns(zero_runs, capture)
    if underruns:
        logger.warning("browser turn: the page's mic tap ran dry %d x (a fake-capture chunk came late; at %s ms of "
                       "the case WAV; 10 ms zero-filled on the page each) %s", len(underruns),
                       ", ".join(f"{u['at_ms']:.0f}" for u in underruns), log_extra)
    eot_frame = _annotated_eot_frame(trace, capture, script_wavs, zero_runs)
    kpi = kpi_detected if eot_frame is None else trace.user_kpi(user_eot_frame=eot_frame)
    stats = turn_stats(raw.get("stats", {}).get("snapshots", []))
    page_kpi = raw.get("kpi") or {}
    if kpi_detected.raw_ms is not None and page_kpi.get("user_kpi_raw_ms") is not None:
        if abs(kpi_detected.raw_ms - float(page_kpi["user_kpi_raw_ms"])) > 0.01:
            logger.warning("page and harness USER_KPI (detected EoT) differ: %s vs %s %s",
                           page_kpi["user_kpi_raw_ms"], kpi_detected.raw_ms, log_extra)
    def wav_info(w: PreparedWav) -> dict[str, Any]:
        return {"wav": w.path.name, "sr": w.sr, "n_samples": w.n_samples, "lead_samples": w.lead_samples,
                "pad_samples": w.pad_samples, "segments": [[s.onset, s.end] for s in w.segments], "loop_s": w.loop_s}

    raw["harness"] = {
        "mic_mode": "capture" if script is None else "script",
        "capture": wav_info(capture) if script is None else None,
        "script": None if script is None or script_wavs is None else [
            {"after": seg.after, "offset_ms": seg.offset_ms, **wav_info(w)} for seg, w in zip(script, script_wavs)
        ],
        "kpi": asdict(kpi),  # the authority: EoT from the annotation when the case has one
        "kpi_detected_eot": asdict(kpi_detected),  # EoT where the page's detector saw the energy drop
        "user_eot_frame": eot_frame,
        # capture mode: mic zero runs that are the file's own digital silence vs the 10 ms chunks
        # the browser zero-filled (late capture), autobrowser/underruns.py
        "mic_zero_runs": None if zero_runs is None else {
            "source_runs": zero_runs.source_runs, "inserted_frames": zero_runs.inserted_frames,
            "underruns": list(underruns or ()),
        },
        "clock_sync": asdict(sync),
        "t_user_eot_mono": sync.to_monotonic(kpi.t_user_eot_ms),
        "t_first_playout_mono": sync.to_monotonic(kpi.t_first_playout_ms),
        "reply_complete": reply_complete,
        "agent_trace": next(
            (r["msg"] for r in reversed(raw.get("protocol", {}).get("received", [])) if r["msg"].get("type") == "trace"),
            None,
        ),
        "browser_version": browser_version,
        "failure": None if failure is None else {"cause": failure.cause.value, "message": str(failure)},
    }
    trace_path = out_dir / TRACE_FILE
    trace_path.write_text(json.dumps(raw, indent=1))
    stats_path = out_dir / STATS_FILE
    stats_path.write_text(json.dumps({"turn": stats.to_dict(), "snapshots": raw.get("stats", {}).get("snapshots", [])}, indent=1))
    if failure is not None:
        raise failure
    return BrowserTurnResult(
        out_dir=out_dir,
        trace_path=trace_path,
        webm_path=webm_path,
        stats_path=stats_path,
        kpi=kpi,
        stats=stats,
        capture=capture,
        clock_sync=sync,
        reply_complete=reply_complete,
        t_user_eot_mono=sync.to_monotonic(kpi.t_user_eot_ms),
        t_first_playout_mono=sync.to_monotonic(kpi.t_first_playout_ms),
        t_script_onsets_mono=tuple(sync.to_monotonic(ms) for ms in _script_onsets_ms(trace, script_wavs)),
        mic_underruns=underruns,
    )
