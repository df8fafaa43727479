"""The page's ``window.autortcTrace`` (saved as browser_trace.json), read into typed values.

Times in the trace are epoch ms on the page's one clock
(``performance.timeOrigin + performance.now()``); frames are samples of the page's
AudioContext. Mic segment times are render times (the sample passed the mic worklet); playout
segment times are output times (the sample left the output device, per
``AudioContext.getOutputTimestamp``); see web/src/clock.js.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .kpi import TimedSegment, UserKpi, compute_user_kpi


class TraceError(ValueError):
    """The page's trace lacks a field or holds the wrong type; the message names the field."""


def _get(d: dict[str, Any], path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise TraceError(f"browser_trace.json: missing field '{path}'")
        cur = cur[part]
    return cur


def _segments(d: dict[str, Any], label: str) -> list[TimedSegment]:
    raw = _get(d, f"{label}.segments")
    if not isinstance(raw, list):
        raise TraceError(f"browser_trace.json: '{label}.segments' must be a list, got {type(raw).__name__}")
    out = []
    for i, s in enumerate(raw):
        try:
            out.append(
                TimedSegment(
                    onset_frame=int(s["onset_frame"]),
                    end_frame=int(s["end_frame"]),
                    t_onset_ms=float(s["t_onset"]),
                    t_end_ms=float(s["t_end"]),
                )
            )
        except (KeyError, TypeError, ValueError) as e:
            raise TraceError(
                f"browser_trace.json: '{label}.segments[{i}]' needs numeric onset_frame, end_frame, "
                f"t_onset, t_end ({e!r})"
            ) from e
    return out


@dataclass(frozen=True)
class FrameClock:
    """web/src/clock.js in Python: AudioContext frames → epoch ms.

    ``samples``: shape (n, 2), [contextTime s, performanceTime epoch ms] from
    getOutputTimestamp; the offset for a frame is the median over samples within ±5 s.
    """

    samples: np.ndarray
    sample_rate: int
    render_to_output_ms: float
    window_s: float = 5.0

    def _offset(self, c: float) -> float:
        if self.samples.size == 0:
            raise TraceError("browser_trace.json: 'audio.clock_samples' is empty; frames cannot be mapped to time")
        near = self.samples[np.abs(self.samples[:, 0] - c) <= self.window_s]
        if near.size == 0:
            near = self.samples
        return float(np.median(near[:, 1] - near[:, 0] * 1000.0))

    def output_time(self, frame: int) -> float:
        c = frame / self.sample_rate
        return c * 1000.0 + self._offset(c)

    def render_time(self, frame: int) -> float:
        return self.output_time(frame) - self.render_to_output_ms


@dataclass(frozen=True)
class BrowserTrace:
    raw: dict[str, Any]
    status: str
    failure: dict[str, Any] | None
    sample_rate: int | None
    mic: list[TimedSegment]
    playout: list[TimedSegment]
    mic_first_input_frame: int | None
    render_to_output_ms: float | None
    mapping: dict[str, Any] | None
    speech_ms: float | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BrowserTrace":
        if not isinstance(d, dict) or d.get("kind") != "browser_trace":
            raise TraceError("browser_trace.json: not a browser trace (field 'kind' != 'browser_trace')")
        audio = d.get("audio") or {}
        cfg = _get(d, "config")
        mic_first = _get(d, "mic.first_input_frame")
        return cls(
            raw=d,
            status=str(_get(d, "status")),
            failure=d.get("failure"),
            sample_rate=int(audio["sample_rate"]) if audio.get("sample_rate") else None,
            mic=_segments(d, "mic"),
            playout=_segments(d, "playout"),
            mic_first_input_frame=None if mic_first is None else int(mic_first),
            render_to_output_ms=audio.get("render_to_output_ms"),
            mapping=audio.get("mapping"),
            speech_ms=cfg.get("speech_ms"),
        )

    def clock(self) -> FrameClock:
        audio = self.raw.get("audio") or {}
        samples = np.asarray(audio.get("clock_samples") or [], dtype=np.float64).reshape(-1, 2)
        return FrameClock(samples, int(self.sample_rate or 48000), float(self.render_to_output_ms or 0.0))

    def script_start_frames(self) -> list[int]:
        """Start frames of the scripted-mic segments (empty for the capture mode)."""
        script = (self.raw.get("mic") or {}).get("script") or {}
        return [int(e["start_frame"]) for e in script.get("segments", [])]

    def script_speech_onsets_ms(self, speech_starts: list[int | None], sr: int) -> list[float | None]:
        """Page time (epoch ms, the render clock of the mic segments' ``t_onset``) of each scripted-mic
        segment's first speech sample: its start frame plus ``speech_starts[i]`` (the first speech
        sample of its prepared WAV, at ``sr`` Hz). One entry per speech start; None where the page
        never started that segment or its WAV has no speech. Raises TraceError when ``sr`` is not the
        page's rate (the samples cannot be placed on its frames)."""
        starts = self.script_start_frames()
        if self.sample_rate is None:
            return [None] * len(speech_starts)
        if sr != self.sample_rate:
            raise TraceError(f"browser_trace.json: scripted WAVs at {sr} Hz != audio.sample_rate {self.sample_rate}; "
                             "their speech cannot be placed on the page's frames")
        clock = self.clock()
        return [None if i >= len(starts) or first is None else clock.render_time(starts[i] + int(first))
                for i, first in enumerate(speech_starts)]

    def user_kpi(self, *, user_eot_frame: int | None = None) -> UserKpi:
        """USER_KPI; ``user_eot_frame`` (the annotated end of speech on the page's frames)
        replaces the detected EoT."""
        if self.sample_rate is None:
            return UserKpi(None, None, None, 0, None, None, None, "the page never started audio")
        eot = None
        if user_eot_frame is not None:
            eot = (user_eot_frame, self.clock().render_time(user_eot_frame))
        return compute_user_kpi(self.mic, self.playout, sr=self.sample_rate, speech_ms=self.speech_ms, user_eot=eot)
