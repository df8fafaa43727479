"""Author a case in one step: a WAV from text (bundled TTS) or from the user's file, its speech span,
and a validated entry appended to a case file.

Speech: ``--text`` is spoken by the bundled TTS (``system.tts`` piper engine through its
:class:`~system.tts.base.StreamingTTS` interface, deterministic with its default seed); when
piper cannot load, by ``espeak-ng`` (as ``scripts/make_case_wavs.py`` does).  The result says
which engine spoke.  A user's WAV is mixed to mono and resampled with soxr to
:data:`CASE_SAMPLE_RATE` (the rate of the bundled cases), its level and timing untouched.

WAV layout of a spoken case (like the bundled ones): :data:`LEAD_MS` of digital silence,
the TTS speech trimmed to its span, peak at :data:`PEAK_DBFS`, no tail (the bots keep sending
silence after the WAV).  The span written to the case is measured on the final file with
:func:`autortc.cases.measure_speech_span`; the entry is validated with
:func:`autortc.cases.load_case_file` before the case file is replaced (atomically), so a
case that does not load is never written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from autortc.cases import CASE_FILE_VERSION, CaseFileError, CaseProblem, load_case_file, measure_speech_span, valid_id

__all__ = [
    "CASE_SAMPLE_RATE",
    "AuthoredCase",
    "AuthoringError",
    "add_case",
    "load_user_wav",
    "speak",
    "slug_id",
]

CASE_SAMPLE_RATE = 16000  # every bundled case WAV (scripts/make_case_wavs.py SR)
LEAD_MS = 300  # scripts/make_case_wavs.py DEFAULT_LEAD_MS: the bot's first 300 ms are silence
PEAK_DBFS = -3.0  # scripts/make_case_wavs.py NOMINAL_PEAK_DBFS
DEFAULT_SUITE = "user"

Engine = Literal["auto", "piper", "espeak"]


class AuthoringError(ValueError):
    """A case that cannot be made; the message names the file/option and what was expected."""


@dataclass(frozen=True)
class AuthoredCase:
    case_id: str
    cases_path: Path
    wav_path: Path
    suite: str
    engine: str  # "piper", "espeak-ng" or "user-wav"
    speech_start_ms: int
    speech_end_ms: int
    duration_ms: int
    created_file: bool

    def run_command(self) -> str:
        return f"autortc run --cases {self.cases_path} --suite {self.suite} --only {self.case_id}"


def slug_id(text: str, *, prefix: str = "user_") -> str:
    """A case id from text: ``"What's the weather?"`` -> ``"user_whats_the_weather"`` (<= 64 chars)."""
    words = re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))
    slug = prefix + "_".join(words)
    slug = slug[:64].rstrip("_") or prefix.rstrip("_")
    return slug


# --------------------------------------------------------------------------- audio


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def _trim_and_place(y: np.ndarray, sr: int, *, what: str) -> np.ndarray:
    """float32 speech at ``sr`` -> int16 at CASE_SAMPLE_RATE: trimmed to its span, LEAD_MS before, peak PEAK_DBFS."""
    import soxr

    if sr != CASE_SAMPLE_RATE:
        y = soxr.resample(y, sr, CASE_SAMPLE_RATE, quality="HQ").astype(np.float32)
    span = measure_speech_span(y, CASE_SAMPLE_RATE)
    if span is None:
        raise AuthoringError(f"{what} produced no speech (no 30 ms run above the speech threshold)")
    a, b = (int(round(t * CASE_SAMPLE_RATE / 1000)) for t in span)
    body = y[a:b]
    body = body * (10 ** (PEAK_DBFS / 20) / max(float(np.max(np.abs(body))), 1e-9))
    lead = np.zeros(int(round(LEAD_MS * CASE_SAMPLE_RATE / 1000)), np.float32)
    return _to_int16(np.concatenate([lead, body.astype(np.float32)]))


def _speak_piper(text: str) -> np.ndarray:
    from system.tts.piper_engine import PiperOptions, PiperTTS

    with PiperTTS(PiperOptions()) as tts:
        pcm = tts.synthesize(text)
        sr = tts.sample_rate
    return _trim_and_place(pcm.astype(np.float32) / 32768.0, sr, what="piper")


def _speak_espeak(text: str) -> np.ndarray:
    import io

    import soundfile as sf

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AuthoringError("espeak-ng not found on PATH (Debian: apt-get install -y espeak-ng)")
    out = subprocess.run([exe, "-v", "en-us", "-s", "160", "--stdout", text], capture_output=True, check=True).stdout
    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    return _trim_and_place(x, sr, what="espeak-ng")


def speak(text: str, *, engine: Engine = "auto") -> tuple[np.ndarray, str]:
    """Speak ``text``: int16 mono ``(n,)`` at :data:`CASE_SAMPLE_RATE` and the engine that spoke.

    ``auto``: the bundled piper voice, or espeak-ng when piper cannot load (the reason is logged
    by the caller through the returned engine name).
    """
    if not text.strip():
        raise AuthoringError("--text: empty text")
    if engine in ("auto", "piper"):
        try:
            return _speak_piper(text), "piper"
        except Exception as exc:  # TTSError, ImportError, onnxruntime errors: fall back when allowed
            if engine == "piper":
                raise AuthoringError(f"--engine piper: the bundled TTS failed: {exc}") from exc
            fallback_reason = f"{type(exc).__name__}: {exc}"
            pcm = _speak_espeak(text)
            return pcm, f"espeak-ng (piper failed: {fallback_reason})"
    return _speak_espeak(text), "espeak-ng"


def load_user_wav(path: Path) -> np.ndarray:
    """A user's audio file as int16 mono at :data:`CASE_SAMPLE_RATE` (soxr), level and timing kept."""
    from autortc.audio.load import AudioFileError, load_mono

    try:
        return _to_int16(load_mono(path, CASE_SAMPLE_RATE))
    except AudioFileError as exc:
        raise AuthoringError(f"--wav {exc}") from None


# --------------------------------------------------------------------------- case file


def _dump(data: dict) -> str:
    """The case-file layout of scripts/make_case_wavs.py (2-space JSON, [a, b] pairs on one line),
    so appending a case leaves the rest of the file byte-identical."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return re.sub(r"\[\s+(-?\d+),\s+(-?\d+)\s+\]", r"[\1, \2]", text) + "\n"


def add_case(
    cases_path: Path,
    *,
    pcm: np.ndarray,
    engine: str,
    case_id: str,
    transcript: str | None,
    p_level: str = "P0",
    description: str | None = None,
    keywords: list[str] | None = None,
    suite: str = DEFAULT_SUITE,
    force: bool = False,
) -> AuthoredCase:
    """Write ``wavs/<case_id>.wav`` next to ``cases_path`` and append a validated case to it.

    Args:
        pcm: int16 mono ``(n,)`` at :data:`CASE_SAMPLE_RATE`.
        suite: per_case suite the case joins (created when missing) so ``autortc run --suite`` runs it.
        force: replace an existing WAV and case with the same id.

    Raises:
        AuthoringError: bad id, existing id/WAV without ``force``, a case file that is not a JSON object.
        CaseFileError: the new file does not validate (lines name the real file, case and field);
            nothing is written then.
    """
    import soundfile as sf

    why = valid_id(case_id)
    if why is not None:
        raise AuthoringError(f"--id {case_id!r}: {why}")
    cases_path = Path(cases_path)
    created = not cases_path.exists()
    if created:
        data: dict = {"v": CASE_FILE_VERSION, "suites": {}, "cases": []}
    else:
        try:
            data = json.loads(cases_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise AuthoringError(f"{cases_path}: cannot read the case file ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
            raise AuthoringError(f"{cases_path}: cases: expected a JSON object with a 'cases' list")
    existing = [i for i, c in enumerate(data["cases"]) if isinstance(c, dict) and c.get("id") == case_id]
    if existing and not force:
        raise AuthoringError(f"{cases_path}: cases[{existing[0]}].id: case {case_id!r} exists (use --force to replace it)")

    base = cases_path.resolve().parent
    rel_wav = f"wavs/{case_id}.wav"
    wav_path = base / rel_wav
    if wav_path.exists() and not force:
        raise AuthoringError(f"{wav_path}: exists (use --force to replace it, or --id for another name)")
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise AuthoringError(f"pcm: expected int16 mono (n,), got {pcm.dtype}{pcm.shape}")
    span = measure_speech_span(pcm, CASE_SAMPLE_RATE)
    if span is None:
        raise AuthoringError(f"{engine}: the audio has no speech (no 30 ms run above the speech threshold)")

    segment = {"wav": rel_wav, "after": "start", "offset_ms": 0, "expect": "respond"}
    if transcript:
        segment["transcript"] = transcript
    segment.update(speech_start_ms=span[0], speech_end_ms=span[1])
    case = {
        "id": case_id,
        "p_level": p_level,
        "description": description or (f"Authored with `autortc cases new` ({engine.split(' ')[0]}): {transcript!r}"
                                        if transcript else f"Authored with `autortc cases new` from a user WAV"),
        "segments": [segment],
        "expect_keywords": [k.strip().lower() for k in keywords or []],
        "expected_silence_ms": [],
        "gates": {},
        "tags": ["authored", "user-wav" if engine == "user-wav" else "tts:" + engine.split(" ")[0]],
    }
    data["cases"] = [c for c in data["cases"] if not (isinstance(c, dict) and c.get("id") == case_id)] + [case]
    suites = data.setdefault("suites", {})
    if not isinstance(suites, dict):
        raise AuthoringError(f"{cases_path}: suites: expected a JSON object")
    s = suites.setdefault(suite, {"mode": "per_case", "description": "Cases added with `autortc cases new`.",
                                  "cases": []})
    if s.get("mode") != "per_case":
        raise AuthoringError(f"{cases_path}: suites.{suite}.mode: {s.get('mode')!r}; `cases new` adds to per_case suites only")
    if case_id not in s.get("cases", []):
        s.setdefault("cases", []).append(case_id)

    # Write the WAV and a candidate case file, validate the candidate as a whole, then swap it in.
    base.mkdir(parents=True, exist_ok=True)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    old_wav = wav_path.read_bytes() if wav_path.exists() else None
    sf.write(str(wav_path), pcm, CASE_SAMPLE_RATE, subtype="PCM_16")
    fd, tmp = tempfile.mkstemp(prefix=f".{cases_path.name}.", suffix=".new", dir=str(base))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_dump(data))
        try:
            load_case_file(Path(tmp))
        except CaseFileError as exc:
            raise CaseFileError(cases_path, [CaseProblem(p.case_id, p.field, p.message) for p in exc.problems]) from None
        os.replace(tmp, cases_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        if old_wav is None:
            wav_path.unlink(missing_ok=True)
        else:
            wav_path.write_bytes(old_wav)
        raise
    return AuthoredCase(case_id=case_id, cases_path=cases_path, wav_path=wav_path, suite=suite, engine=engine,
                        speech_start_ms=span[0], speech_end_ms=span[1],
                        duration_ms=int(round(len(pcm) * 1000 / CASE_SAMPLE_RATE)), created_file=created)
