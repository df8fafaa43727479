"""Planted faults for the bundled agent: one fault per room, exactly where it is said to be.

The fault bench (``docs/faultbench.md``, issue 17) asks the agent to damage one reply in a
known way and to say precisely what it did, so every verdict AutoRTC prints can be scored
against ground truth that does not come from the measuring side.

Input: the room/dispatch metadata JSON, e.g.::

    {"case_id": "greeting", "fault": {"kind": "gap", "at_ms": 800, "ms": 60, "seed": 7}}

``FaultPlan.from_metadata(raw)`` parses it (``FaultSpecError`` names the field that is wrong);
no ``fault`` key (or no metadata at all) gives an empty plan that changes nothing.

Where each fault arises (the wiring, next step, see "Hook API" below):

* **agent faults** -- ``clipping``, ``click``, ``repeat``, ``wrong_words`` and the turn fault
  ``delay`` -- are applied BEFORE the AutoRTC pre-RTC copy (``_ReplyRecorder.capture_frame``
  in ``autortc/protocol/livekit_agents.py``), so the agent's own copy has them too;
* **path faults** -- ``lost_frame``, ``gap``, ``noise_dropout``, ``stall``, ``rate_22k_as_24k``,
  ``lowpass``, ``head_cut``, ``tail_cut`` -- are applied AFTER the copy, between the recorder
  and the room's audio output, so the agent's copy is clean and the fault is "on the way";
* **turn-taking faults** -- ``premature``, ``no_reply``, ``no_yield``, ``false_yield`` -- are
  decisions of the worker, read from the plan (``skip_reply``, ``allow_interruptions``, ...).

Audio appliers are small stateful streams over the reply's int16 mono PCM as the session
hands it on (LiveKit Agents resamples the TTS output to the room output's rate, 24 kHz, and
chunks it as it likes): ``process(chunk) -> chunk`` and, when the reply ends, ``finish() ->
rest``. Positions are counted in samples from the first sample of the reply that entered
the applier, so a fault planted at ``at_ms`` lands on the same sample whatever the chunking.
A returned chunk may be empty (the applier is holding audio while it looks ahead) or
longer than the input (released audio, inserted samples). With no fault the applier
returns the very array it was given (byte-identical).

Positions found from the reply audio itself (energy on a grid of 10 ms blocks counted from
the reply's first sample; RMS in dBFS with full scale = 32768):

* "inside words" (``lost_frame``, ``gap``, ``noise_dropout``, ``repeat``): the first candidate
  ``p >= max(at, MARGIN)`` on a grid (20 ms frames for ``lost_frame``, 10 ms otherwise) such
  that every block overlapping ``[p - MARGIN, p + size + MARGIN)`` has RMS >= ``VOICE_DBFS``
  (-40 dBFS; MARGIN = 20 ms). The fault is thus surrounded by speech on both sides. The
  applier holds audio from ``p - MARGIN`` until the window is known (at most the silence
  before the next long-enough voiced stretch plus ``size + 2 * MARGIN``), then releases it.
* "at a sentence pause" (``stall``): the first run of >= ``PAUSE_MS`` (120 ms) consecutive
  blocks below ``SILENCE_DBFS`` (-50 dBFS) that starts at or after ``at`` and has sound
  (>= -50 dBFS) both before it (after ``at``) and after it, so a trailing silence never
  counts; the stall is inserted at the block boundary in the middle of that run.
* speech onset (``head_cut``): the first block with RMS >= ``VOICE_DBFS``.

A fault whose position cannot be found before the reply ends is not planted; its truth says
``planted=False`` and why, and the bench counts it apart (never as caught or missed).

Hook API for ``system/agent/worker.py`` (to be wired after the fast-agent merge)::

    plan = FaultPlan.from_metadata(ctx.job.metadata or ctx.room.metadata)
    session options:  plan.session_overrides()        # merge into turn_handling: no_yield, false_yield
    reply speech:     plan.allow_interruptions        # False for no_yield
    before replying:  if plan.skip_reply: do not answer (no_reply)
                      plan.premature_start_ms         # reply this many ms after the user's speech onset
    reply text:       text = plan.transform_text(text)   # wrong_words; identity otherwise
    per reply audio:  faults = plan.for_reply(reply_index, sample_rate)
                      faults.agent.process(pcm) before the pre-RTC copy,
                      faults.path.process(pcm) after it; .finish() on both at the reply's end
                      (capture what finish() returns before flushing the output)
    into the trace:   plan.trace_fields()  -> {"fault": spec|None, "fault_truth": [FaultTruth...]}
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FULL_SCALE = 32768.0
BLOCK_MS = 10  # energy grid
MARGIN_MS = 20  # speech required on each side of an "inside words" fault
VOICE_DBFS = -40.0  # a 10 ms block of piper speech is -30..-15 dBFS; pauses are below -60
SILENCE_DBFS = -50.0
PAUSE_MS = 120  # piper (rules.json replies): sentence and comma pauses 140-320 ms, closures inside phrases <= 70 ms
FRAME_MS = 20  # the codec / publish frame a "lost frame" removes

# ``premature``: the reply must be HEARD ``ms`` before the user's end of speech, so the agent says it
# earlier by the lags between the user's mic and its own ear, and between its say() and the user's ear.
PREMATURE_UPLINK_MS = 73.0
"""User's mic hands a frame to the SDK -> the agent's AudioStream yields it (SFU + Opus + jitter
buffer on one host): the anchor (first sound received) is this late.  Measured on the live take
fb-prem-3101 (scripts/premature_leads.py: the truth's ``t_sound_received`` against the user's mic
timeline): 56, 71, 73, 75, 99 ms, median 73 (a sixth turn, 442 ms, was a busy event loop, which
the anchor's lower envelope now re-times)."""
PREMATURE_SAY_TO_HEARD_MS = 148.0
"""``session.say()`` with the pre-synthesised audio -> the first audible sample at the probe,
fb-prem-3101: 128, 133, 143, 153, 173, 244 ms (median 148)."""

PathKind = Literal["lost_frame", "gap", "noise_dropout", "stall", "rate_22k_as_24k", "lowpass", "head_cut", "tail_cut"]
AgentKind = Literal["clipping", "click", "repeat", "wrong_words"]
TurnKind = Literal["delay", "premature", "no_reply", "no_yield", "false_yield"]
FaultKind = Literal[PathKind, AgentKind, TurnKind]
PATH_KINDS: tuple[str, ...] = get_args(PathKind)
AGENT_KINDS: tuple[str, ...] = get_args(AgentKind)
TURN_KINDS: tuple[str, ...] = get_args(TurnKind)

# Size (ms) of each kind when the spec gives none; None: the kind has no size or needs one.
DEFAULT_MS: dict[str, float | None] = {
    "lost_frame": FRAME_MS,
    "gap": None,
    "noise_dropout": 60.0,
    "stall": 500.0,
    "head_cut": 250.0,
    "repeat": 40.0,
    "premature": 500.0,
    "delay": None,
}


class FaultSpecError(ValueError):
    """The fault in the room/dispatch metadata is malformed; the message names the field."""


class FaultSpec(BaseModel):
    """One planted fault, as the bench writes it into the room metadata (``"fault": {...}``).

    Fields: ``kind``; ``at_ms`` (>= 0) where in the reply the search for the position starts;
    ``ms`` the size (gap length, stall, delay, head cut, repeated chunk, premature lead);
    ``seed`` for the noise of ``noise_dropout``; ``level_dbfs`` that noise's RMS (-45);
    ``gain`` of ``clipping`` (6); ``cutoff_hz`` of ``lowpass`` (3400); ``fraction`` kept by
    ``tail_cut`` (0.6); ``from_hz``/``to_hz`` of ``rate_22k_as_24k`` (22050 played as 24000);
    ``keywords`` the case's expected words that ``wrong_words`` removes; ``user_speech_ms``
    the user's speech length in the case WAV (``premature`` starts ``ms`` before its end);
    ``user_sound_to_eot_ms`` from the case WAV's first sound (``autortc.protocol.sound.SoundOnset``)
    to the user's end of speech: ``premature``'s anchor in the audio the agent receives;
    ``reply_index`` which reply of the room is damaged (0: the first).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    at_ms: float = Field(default=0.0, ge=0.0)
    ms: float | None = Field(default=None, gt=0.0)
    seed: int = 0
    level_dbfs: float = Field(default=-45.0, lt=0.0)
    gain: float = Field(default=6.0, gt=0.0)
    cutoff_hz: float = Field(default=3400.0, gt=0.0)
    fraction: float = Field(default=0.6, gt=0.0, lt=1.0)
    from_hz: int = Field(default=22050, gt=0)
    to_hz: int = Field(default=24000, gt=0)
    keywords: tuple[str, ...] = ()
    user_speech_ms: float | None = Field(default=None, gt=0.0)
    user_sound_to_eot_ms: float | None = Field(default=None, gt=0.0)
    reply_index: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _size_for_kind(self) -> FaultSpec:
        if self.kind in ("gap", "delay") and self.ms is None:
            raise ValueError(f"kind {self.kind!r} needs 'ms' (its length in ms)")
        if self.kind == "lost_frame" and self.ms not in (None, float(FRAME_MS)):
            raise ValueError(f"kind 'lost_frame' is one {FRAME_MS} ms frame; use kind 'gap' for ms={self.ms}")
        if self.kind == "premature" and self.user_speech_ms is None:
            raise ValueError("kind 'premature' needs 'user_speech_ms' (the user's speech length in the case WAV)")
        return self

    @property
    def size_ms(self) -> float | None:
        return self.ms if self.ms is not None else DEFAULT_MS.get(self.kind)

    @property
    def in_agent_copy(self) -> bool:
        return self.kind in AGENT_KINDS or self.kind == "delay"


@dataclass
class FaultTruth:
    """What was planted, for the trace. Samples count from the reply's first sample.

    ``start_sample``/``size_samples`` are in the applier's input (for path faults: the
    pre-RTC copy; for agent faults: the TTS output before the copy); ``out_start_sample``
    is where the damage begins in what the applier passed on (differs after a head cut's
    removal, inside a repeat: the second copy). ``size_samples`` for a whole-reply fault is
    the reply length. ``in_agent_copy`` says whether the agent's pre-RTC copy has it.
    """

    kind: str
    planted: bool
    in_agent_copy: bool
    sample_rate: int | None = None
    start_sample: int | None = None
    size_samples: int | None = None
    out_start_sample: int | None = None
    reply_index: int | None = None
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def start_ms(self) -> float | None:
        if self.start_sample is None or not self.sample_rate:
            return None
        return 1000.0 * self.start_sample / self.sample_rate

    @property
    def size_ms(self) -> float | None:
        if self.size_samples is None or not self.sample_rate:
            return None
        return 1000.0 * self.size_samples / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start_ms"] = self.start_ms
        d["size_ms"] = self.size_ms
        return d


def parse_metadata(raw: str | bytes | dict[str, Any] | None, *, source: str = "room metadata") -> tuple[str | None, FaultSpec | None]:
    """``(case_id, fault spec or None)`` from room/dispatch metadata.

    Empty or missing metadata, or metadata without ``fault``, is not an error (a clean
    turn). Raises ``FaultSpecError`` naming ``source`` and the field (``fault.ms``...).
    """
    if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()):
        return None, None
    if isinstance(raw, (str, bytes)):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FaultSpecError(f"{source}: not JSON ({exc})") from exc
    else:
        data = raw
    if not isinstance(data, dict):
        raise FaultSpecError(f"{source}: expected a JSON object, got {type(data).__name__}")
    case_id = data.get("case_id")
    if case_id is not None and not isinstance(case_id, str):
        raise FaultSpecError(f"{source}: case_id: expected a string, got {case_id!r}")
    fault = data.get("fault")
    if fault is None:
        return case_id, None
    if not isinstance(fault, dict):
        raise FaultSpecError(f"{source}: fault: expected an object like {{\"kind\": \"gap\", ...}}, got {fault!r}")
    try:
        return case_id, FaultSpec.model_validate(fault)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            where = f"fault.{loc}" if loc else "fault"
            got = f" (got {err['input']!r})" if "input" in err and loc else ""
            parts.append(f"{where}: {err['msg']}{got}")
        raise FaultSpecError(f"{source}: " + "; ".join(parts)) from exc


# -- audio appliers ----------------------------------------------------------------------


def _check_pcm(pcm: np.ndarray) -> np.ndarray:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(
            "fault applier: expected mono int16 PCM as a 1-D numpy array, got "
            f"{getattr(pcm, 'dtype', type(pcm).__name__)} with shape {getattr(pcm, 'shape', '?')}"
        )
    return pcm


def _ms_to_samples(ms: float, sr: int) -> int:
    return int(round(ms * sr / 1000.0))


def _dbfs(x: np.ndarray) -> float:
    if x.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(np.square(x.astype(np.float64)))))
    return 20.0 * math.log10(rms / FULL_SCALE) if rms > 0 else -math.inf


_EMPTY = np.zeros(0, dtype=np.int16)


class StreamApplier(ABC):
    """One reply's audio through one fault: ``process`` each chunk, ``finish`` once.

    Errors: ``ValueError`` for anything but mono int16; ``RuntimeError`` after ``finish``.
    """

    def __init__(self) -> None:
        self._finished = False

    @property
    @abstractmethod
    def truth(self) -> FaultTruth | None:
        """Ground truth once known (after planting or ``finish``); None for no fault."""

    def process(self, pcm: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("fault applier: process() after finish()")
        return self._process(_check_pcm(pcm))

    def finish(self) -> np.ndarray:
        if self._finished:
            return _EMPTY
        self._finished = True
        return self._finish()

    @abstractmethod
    def _process(self, pcm: np.ndarray) -> np.ndarray: ...

    def _finish(self) -> np.ndarray:
        return _EMPTY

    @classmethod
    def prepare(cls) -> None:
        """Load what the applier needs before a reply exists (called at the job's start, not on the
        reply's first frame, where a slow import would stall the agent's audio). No-op by default."""


class Passthrough(StreamApplier):
    """No fault: returns the very arrays it is given."""

    @property
    def truth(self) -> None:
        return None

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        return pcm


class _Held(StreamApplier):
    """Base for appliers that keep a window of the reply: ``_h`` starts at input sample ``_h0``."""

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__()
        self.spec = spec
        self.sr = sr
        self.reply_index = reply_index
        self._h = _EMPTY
        self._h0 = 0
        self._done = False
        self._truth: FaultTruth | None = None
        self._block = max(1, sr * BLOCK_MS // 1000)

    @property
    def truth(self) -> FaultTruth | None:
        return self._truth

    @property
    def n_in(self) -> int:
        return self._h0 + self._h.size

    def _make_truth(self, *, planted: bool, start: int | None = None, size: int | None = None,
                    out_start: int | None = None, reason: str = "", **extra: Any) -> FaultTruth:
        self._truth = FaultTruth(
            kind=self.spec.kind,
            planted=planted,
            in_agent_copy=self.spec.in_agent_copy,
            sample_rate=self.sr,
            start_sample=start,
            size_samples=size,
            out_start_sample=out_start if out_start is not None else start,
            reply_index=self.reply_index,
            reason=reason,
            extra=dict(extra),
        )
        return self._truth

    def _emit_until(self, abs_pos: int) -> np.ndarray:
        """Release held samples before input sample ``abs_pos``."""
        k = min(max(0, abs_pos - self._h0), self._h.size)
        if k == 0:
            return _EMPTY
        out, self._h = self._h[:k], self._h[k:]
        self._h0 += k
        return out

    def _release_all(self) -> np.ndarray:
        out, self._h = self._h, _EMPTY
        self._h0 += out.size
        return out

    def _block_dbfs(self, b: int, *, allow_partial: bool) -> float | None:
        """dBFS of energy block ``b`` (input samples ``[b*B, (b+1)*B)``); None if not all held yet."""
        s, e = b * self._block, (b + 1) * self._block
        if e > self.n_in and not allow_partial:
            return None
        lo, hi = s - self._h0, min(e, self.n_in) - self._h0
        if lo < 0:
            raise AssertionError("energy block before the held window")  # a bug, not an input error
        return _dbfs(self._h[lo:hi])

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        if self._done:
            return pcm
        self._h = np.concatenate([self._h, pcm]) if self._h.size else pcm.copy()
        return self._step(final=False)

    def _finish(self) -> np.ndarray:
        if self._done:
            return _EMPTY
        out = self._step(final=True)
        rest = self._release_all()
        if self._truth is None:
            self._not_planted()
        return np.concatenate([out, rest]) if out.size and rest.size else (out if out.size else rest)

    def _not_planted(self) -> None:
        self._make_truth(planted=False, reason="reply ended before a place for the fault was found")

    @abstractmethod
    def _step(self, *, final: bool) -> np.ndarray: ...


class _InsideSpeech(_Held):
    """``lost_frame``, ``gap``, ``noise_dropout``, ``repeat``: a window of speech around the fault."""

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__(spec, sr, reply_index=reply_index)
        if spec.kind == "lost_frame":
            self._n = _ms_to_samples(FRAME_MS, sr)
            self._step_len = self._n
        else:
            self._n = _ms_to_samples(spec.size_ms or 0.0, sr)
            self._step_len = self._block
        if self._n <= 0:
            raise FaultSpecError(f"fault.ms: {spec.size_ms} ms is less than one sample at {sr} Hz")
        self._margin = 2 * self._block  # 20 ms, on the block grid
        first = max(_ms_to_samples(spec.at_ms, sr), self._margin)
        self._next_p = -(-first // self._step_len) * self._step_len  # ceil to the grid
        self._blocks_checked: dict[int, bool] = {}

    def _voiced(self, b: int, *, final: bool) -> bool | None:
        if b in self._blocks_checked:
            return self._blocks_checked[b]
        d = self._block_dbfs(b, allow_partial=final)
        if d is None:
            return None
        v = d >= VOICE_DBFS
        self._blocks_checked[b] = v
        return v

    def _step(self, *, final: bool) -> np.ndarray:
        outs = []
        while True:
            p = self._next_p
            lo, hi = p - self._margin, p + self._n + self._margin
            if hi > self.n_in:
                break  # window not all here yet (or past the end)
            ok = True
            for b in range(lo // self._block, (hi - 1) // self._block + 1):
                v = self._voiced(b, final=final)
                if v is None:
                    ok = None
                    break
                if not v:
                    ok = False
                    break
            if ok is None:
                break
            if ok:
                outs.append(self._plant(p))
                return np.concatenate(outs) if len(outs) > 1 else outs[0]
            self._next_p += self._step_len
            self._blocks_checked = {k: v for k, v in self._blocks_checked.items() if k * self._block >= self._next_p - self._margin}
        # keep from the energy block holding the next candidate's window start
        outs.append(self._emit_until((self._next_p - self._margin) // self._block * self._block))
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    def _plant(self, p: int) -> np.ndarray:
        h = self._h.copy()
        q = p - self._h0
        n = self._n
        kind = self.spec.kind
        extra: dict[str, Any] = {}
        out_start = p
        if kind in ("lost_frame", "gap"):
            h[q : q + n] = 0
            extra["fill"] = "zeros"
            if kind == "lost_frame":
                extra["frame_index"] = p // n
        elif kind == "noise_dropout":
            h[q : q + n] = noise_fill(n, self.spec.level_dbfs, self.spec.seed)
            extra.update(level_dbfs=self.spec.level_dbfs, seed=self.spec.seed, fill="gaussian noise")
        elif kind == "repeat":
            h = np.concatenate([h[: q + n], h[q : q + n], h[q + n :]])
            out_start = p + n  # the second copy
            extra["repeated_from_sample"] = p
        else:  # pragma: no cover - guarded by make_applier
            raise AssertionError(kind)
        self._make_truth(planted=True, start=p, size=n, out_start=out_start, **extra)
        self._h = _EMPTY
        self._done = True
        return h


def noise_fill(n: int, level_dbfs: float, seed: int) -> np.ndarray:
    """``n`` samples of seeded Gaussian noise scaled to exactly ``level_dbfs`` RMS (before rounding)."""
    x = np.random.default_rng(seed).standard_normal(n)
    x *= (FULL_SCALE * 10 ** (level_dbfs / 20.0)) / math.sqrt(float(np.mean(x * x)))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


class _Stall(_Held):
    """``stall``: ``ms`` of digital silence inserted in the middle of the first sentence pause."""

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__(spec, sr, reply_index=reply_index)
        self._n = _ms_to_samples(spec.size_ms or 0.0, sr)
        self._next_b = -(-_ms_to_samples(spec.at_ms, sr) // self._block)
        self._seen_sound = False
        self._run_start: int | None = None
        self._min_run = -(-PAUSE_MS // BLOCK_MS)

    def _step(self, *, final: bool) -> np.ndarray:
        while True:
            d = self._block_dbfs(self._next_b, allow_partial=False)
            if d is None:
                break
            silent = d < SILENCE_DBFS
            b = self._next_b
            self._next_b += 1
            if silent:
                if self._seen_sound and self._run_start is None:
                    self._run_start = b
                continue
            if self._run_start is not None and b - self._run_start >= self._min_run:
                run = b - self._run_start
                p = (self._run_start + run // 2) * self._block
                out = self._plant(p, pause_start=self._run_start * self._block, pause_samples=run * self._block)
                return out
            self._run_start = None
            self._seen_sound = True
        keep_from = (self._run_start if self._run_start is not None else self._next_b) * self._block
        return self._emit_until(keep_from)

    def _plant(self, p: int, **extra: Any) -> np.ndarray:
        q = p - self._h0
        h = np.concatenate([self._h[:q], np.zeros(self._n, np.int16), self._h[q:]])
        self._make_truth(planted=True, start=p, size=self._n, fill="zeros (inserted)", **extra)
        self._h = _EMPTY
        self._done = True
        return h


class _HeadCut(_Held):
    """``head_cut``: the first ``ms`` of speech from its onset are removed (the rest follows at once)."""

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__(spec, sr, reply_index=reply_index)
        self._n = _ms_to_samples(spec.size_ms or 0.0, sr)
        self._next_b = 0
        self._onset: int | None = None
        self._dropped = 0

    def _step(self, *, final: bool) -> np.ndarray:
        if self._onset is None:
            while True:
                d = self._block_dbfs(self._next_b, allow_partial=final)
                if d is None or (final and self._next_b * self._block >= self.n_in):
                    return self._emit_until(self._next_b * self._block)
                if d >= VOICE_DBFS:
                    self._onset = self._next_b * self._block
                    break
                self._next_b += 1
        out = self._emit_until(self._onset)
        k = min(self._n - self._dropped, self._h.size)
        self._h = self._h[k:]
        self._h0 += k
        self._dropped += k
        if self._dropped == self._n or final:
            self._make_truth(planted=True, start=self._onset, size=self._dropped, out_start=self._onset,
                             removed=True, onset_sample=self._onset)
            self._done = True
            rest = self._release_all()
            return np.concatenate([out, rest])
        return out

    def _not_planted(self) -> None:
        self._make_truth(planted=False, reason="no speech onset (no 10 ms block >= -40 dBFS) in the reply")


class _TailCut(_Held):
    """``tail_cut``: only the first ``fraction`` of the reply's samples are played.

    The reply's length is known only at its end, so this applier holds the whole reply
    and releases the kept part at ``finish()``: the faulted turn's first audio comes as
    late as the TTS takes to synthesise the whole reply (piper: a fraction of real time).
    """

    def _step(self, *, final: bool) -> np.ndarray:
        if not final:
            return _EMPTY
        total = self.n_in
        keep = int(math.floor(self.spec.fraction * total))
        out = self._h[:keep]
        self._h = _EMPTY
        self._h0 = total
        self._make_truth(planted=total > 0, start=keep, size=total - keep, out_start=keep,
                         fraction=self.spec.fraction, reply_samples=total,
                         reason="" if total else "empty reply")
        self._done = True
        return out


class _Lowpass(StreamApplier):
    """``lowpass``: 8th-order Butterworth at ``cutoff_hz`` over the whole reply (state kept across chunks)."""

    ORDER = 8

    @classmethod
    def prepare(cls) -> None:
        # scipy.signal's first import took ~0.9 s on the event loop at the reply's first frame
        # (fault bench fb-bots-s18, the first lowpass turn: first chunk -> published 916 ms)
        import scipy.signal  # noqa: F401

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__()
        from scipy import signal  # the agent process has scipy; only this fault needs it (prepare())

        if not 0 < spec.cutoff_hz < sr / 2:
            raise FaultSpecError(f"fault.cutoff_hz: {spec.cutoff_hz} Hz must be below Nyquist ({sr / 2} Hz)")
        self._sosfilt = signal.sosfilt
        self._sos = signal.butter(self.ORDER, spec.cutoff_hz, btype="low", fs=sr, output="sos")
        self._zi = np.zeros((self._sos.shape[0], 2))
        self._n = 0
        self._truth = FaultTruth(kind=spec.kind, planted=True, in_agent_copy=False, sample_rate=sr,
                                 start_sample=0, size_samples=0, out_start_sample=0, reply_index=reply_index,
                                 extra={"cutoff_hz": spec.cutoff_hz, "order": self.ORDER, "filter": "butterworth"})

    @property
    def truth(self) -> FaultTruth:
        return self._truth

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        y, self._zi = self._sosfilt(self._sos, pcm.astype(np.float64), zi=self._zi)
        self._n += pcm.size
        self._truth.size_samples = self._n
        return np.clip(np.round(y), -32768, 32767).astype(np.int16)


class _RateError(StreamApplier):
    """``rate_22k_as_24k``: audio at ``from_hz`` played as ``to_hz`` (faster and higher by to/from).

    The reply (at the output rate ``sr``) is resampled to ``sr * from/to`` by linear
    interpolation and handed on as if it were at ``sr``: output sample ``k`` is the input
    at position ``k * to / from``. Exact rational positions, so chunking never matters.
    """

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__()
        g = math.gcd(spec.from_hz, spec.to_hz)
        self._up, self._down = spec.from_hz // g, spec.to_hz // g  # out k <-> in k*down/up
        self._x = _EMPTY  # held input from sample self._x0
        self._x0 = 0
        self._k = 0  # next output index
        self._n_in = 0
        self._truth = FaultTruth(kind=spec.kind, planted=True, in_agent_copy=False, sample_rate=sr,
                                 start_sample=0, size_samples=0, out_start_sample=0, reply_index=reply_index,
                                 extra={"speed_ratio": spec.to_hz / spec.from_hz, "from_hz": spec.from_hz,
                                        "to_hz": spec.to_hz, "interpolation": "linear", "out_samples": 0})

    @property
    def truth(self) -> FaultTruth:
        return self._truth

    def _emit(self, *, final: bool) -> np.ndarray:
        last = self._n_in - 1  # last input index we have
        if last < 0:
            return _EMPTY
        up, down = self._up, self._down
        # output k reads input at k*down/up: x[i] and x[i+1]; while streaming only k with
        # k*down/up < last (x[i+1] is here), at the end also k*down/up == last
        kmax = (last * up) // down if final else (last * up - 1) // down
        if kmax < self._k:
            return _EMPTY
        k = np.arange(self._k, kmax + 1, dtype=np.int64)
        pos = k * down
        li = pos // up - self._x0
        frac = (pos % up).astype(np.float64) / up
        x = self._x.astype(np.float64)
        nxt = np.minimum(li + 1, x.size - 1)  # at the very end frac == 0: x[nxt] has weight 0
        y = x[li] * (1.0 - frac) + x[nxt] * frac
        self._k = kmax + 1
        drop = max(0, min((self._k * down) // up - self._x0, self._x.size))
        self._x = self._x[drop:]
        self._x0 += drop
        self._truth.extra["out_samples"] = self._k
        return np.clip(np.round(y), -32768, 32767).astype(np.int16)

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        self._x = np.concatenate([self._x, pcm]) if self._x.size else pcm.copy()
        self._n_in += pcm.size
        self._truth.size_samples = self._n_in
        return self._emit(final=False)

    def _finish(self) -> np.ndarray:
        return self._emit(final=True)


class _Clipping(StreamApplier):
    """``clipping``: every sample times ``gain``, clamped to int16 (the whole reply)."""

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__()
        self._gain = spec.gain
        self._n = 0
        self._clipped = 0
        self._truth = FaultTruth(kind=spec.kind, planted=True, in_agent_copy=True, sample_rate=sr,
                                 start_sample=0, size_samples=0, out_start_sample=0, reply_index=reply_index,
                                 extra={"gain": spec.gain, "clipped_samples": 0, "clipped_ratio": 0.0})

    @property
    def truth(self) -> FaultTruth:
        return self._truth

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        y = np.round(pcm.astype(np.float64) * self._gain)
        self._clipped += int(np.count_nonzero((y > 32767) | (y < -32768)))
        self._n += pcm.size
        self._truth.size_samples = self._n
        self._truth.extra["clipped_samples"] = self._clipped
        self._truth.extra["clipped_ratio"] = self._clipped / self._n if self._n else 0.0
        return np.clip(y, -32768, 32767).astype(np.int16)


class _Click(StreamApplier):
    """``click``: the reply's first sample set to full scale (+32767)."""

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__()
        self._truth: FaultTruth | None = None
        self._sr, self._reply_index = sr, reply_index

    @property
    def truth(self) -> FaultTruth | None:
        return self._truth

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        if self._truth is not None or pcm.size == 0:
            return pcm
        y = pcm.copy()
        self._truth = FaultTruth(kind="click", planted=True, in_agent_copy=True, sample_rate=self._sr,
                                 start_sample=0, size_samples=1, out_start_sample=0, reply_index=self._reply_index,
                                 extra={"value": 32767, "original": int(y[0])})
        y[0] = 32767
        return y

    def _finish(self) -> np.ndarray:
        if self._truth is None:
            self._truth = FaultTruth(kind="click", planted=False, in_agent_copy=True, reason="empty reply")
        return _EMPTY


class _Delay(StreamApplier):
    """``delay``: exactly ``ms`` of digital silence before the reply's first sample.

    Sample-exact (an ``asyncio.sleep`` would add the event loop's lag to the planted
    value). It is the agent's lateness, so it sits before the copy: the copy starts with
    the same silence, and the agent's part of the latency is read from the copy's onset.
    """

    def __init__(self, spec: FaultSpec, sr: int, *, reply_index: int) -> None:
        super().__init__()
        self._n = _ms_to_samples(spec.size_ms or 0.0, sr)
        self._truth = FaultTruth(kind="delay", planted=True, in_agent_copy=True, sample_rate=sr, start_sample=0,
                                 size_samples=self._n, out_start_sample=0, reply_index=reply_index,
                                 extra={"delay_ms": 1000.0 * self._n / sr, "fill": "zeros (prepended)"})
        self._sent = False

    @property
    def truth(self) -> FaultTruth:
        return self._truth

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        if self._sent:
            return pcm
        self._sent = True
        return np.concatenate([np.zeros(self._n, np.int16), pcm])

    def _finish(self) -> np.ndarray:
        if not self._sent:
            self._sent = True
            return np.zeros(self._n, np.int16)
        return _EMPTY


_APPLIERS: dict[str, type[StreamApplier]] = {
    "lost_frame": _InsideSpeech,
    "gap": _InsideSpeech,
    "noise_dropout": _InsideSpeech,
    "repeat": _InsideSpeech,
    "stall": _Stall,
    "head_cut": _HeadCut,
    "tail_cut": _TailCut,
    "lowpass": _Lowpass,
    "rate_22k_as_24k": _RateError,
    "clipping": _Clipping,
    "click": _Click,
    "delay": _Delay,
}


def make_applier(spec: FaultSpec | None, sample_rate: int, *, reply_index: int = 0) -> StreamApplier:
    """The applier for one reply; ``Passthrough`` for no spec or a non-audio kind."""
    if sample_rate <= 0:
        raise ValueError(f"fault applier: sample_rate must be > 0, got {sample_rate}")
    if spec is None or spec.kind not in _APPLIERS:
        return Passthrough()
    return _APPLIERS[spec.kind](spec, sample_rate, reply_index=reply_index)  # type: ignore[call-arg]


# -- the plan: what the worker asks ------------------------------------------------------


@dataclass
class ReplyFaults:
    """The two appliers of one reply: ``agent`` before the pre-RTC copy, ``path`` after it."""

    agent: StreamApplier
    path: StreamApplier


# Words that take the place of the case's keywords (wrong_words): neutral, never a keyword of the rules.
_NEUTRAL = ("something", "somewhere", "sometime", "someone")
WRONG_REPLY = "I am sorry, I cannot help with that right now."


class FaultPlan:
    """The fault of one room and the hooks the worker calls (see the module docstring)."""

    def __init__(self, spec: FaultSpec | None = None, *, case_id: str | None = None) -> None:
        self.spec = spec
        self.case_id = case_id
        self.truths: list[FaultTruth] = []
        self._appliers: list[StreamApplier] = []
        self.premature_timing: dict[str, Any] = {}  # the wiring's own times (t_sound_received, t_say, ...)

    @classmethod
    def from_metadata(cls, raw: str | bytes | dict[str, Any] | None, *, source: str = "room metadata") -> FaultPlan:
        case_id, spec = parse_metadata(raw, source=source)
        return cls(spec, case_id=case_id)

    @property
    def kind(self) -> str | None:
        return self.spec.kind if self.spec else None

    def prepare(self) -> None:
        """Load what this plan's applier needs now (:meth:`StreamApplier.prepare`); call before the turn."""
        if self.kind in _APPLIERS:
            _APPLIERS[self.kind].prepare()

    # turn-taking hooks
    @property
    def skip_reply(self) -> bool:
        """``no_reply``: the worker does not answer this room's user at all."""
        return self.kind == "no_reply"

    @property
    def allow_interruptions(self) -> bool:
        """``no_yield``: False -- the reply keeps playing through a barge-in."""
        return self.kind != "no_yield"

    def session_overrides(self) -> dict[str, Any]:
        """Keys to merge into the worker's ``turn_handling["interruption"]`` dict (LiveKit Agents 1.8.9
        names): ``no_yield`` disables interruption; ``false_yield`` yields on any speech, even an
        "mm-hmm" (50 ms of VAD speech, no words needed, no resume). ``{}`` for every other kind."""
        if self.kind == "no_yield":
            return {"interruption": {"enabled": False}}
        if self.kind == "false_yield":
            return {"interruption": {"min_duration": 0.05, "min_words": 0, "resume_false_interruption": False}}
        return {}

    @property
    def premature_start_ms(self) -> float | None:
        """``premature``: start the reply this many ms after the user's speech onset (``ms`` before its end)."""
        if self.kind != "premature" or self.spec is None:
            return None
        assert self.spec.user_speech_ms is not None and self.spec.size_ms is not None
        return max(0.0, self.spec.user_speech_ms - self.spec.size_ms)

    @property
    def premature_after_sound_ms(self) -> float | None:
        """``premature`` with ``user_sound_to_eot_ms``: say the reply this many ms after the first sound
        received from the user, so it is heard ``ms`` before the user's end of speech (the lags above
        taken off).  None otherwise (then ``premature_start_ms`` after the VAD onset)."""
        if self.kind != "premature" or self.spec is None or self.spec.user_sound_to_eot_ms is None:
            return None
        assert self.spec.size_ms is not None
        return max(0.0, self.spec.user_sound_to_eot_ms - self.spec.size_ms
                   - PREMATURE_UPLINK_MS - PREMATURE_SAY_TO_HEARD_MS)

    @property
    def delay_ms(self) -> float:
        """``delay``: planted extra latency (applied as prepended silence by the agent applier)."""
        return float(self.spec.size_ms or 0.0) if self.kind == "delay" and self.spec else 0.0

    def transform_text(self, text: str) -> str:
        """``wrong_words``: the reply without the case's keywords (each replaced by a neutral word);
        with no keywords given, a fixed unrelated sentence. Identity for every other kind."""
        if self.kind != "wrong_words" or self.spec is None:
            return text
        new = text
        removed = []
        for i, kw in enumerate(self.spec.keywords):
            pat = re.compile(rf"(?<![\w']){re.escape(kw)}(?![\w'])", re.IGNORECASE)
            new, n = pat.subn(_NEUTRAL[i % len(_NEUTRAL)], new)
            if n:
                removed.append(kw)
        if not self.spec.keywords:
            new = WRONG_REPLY
        self.truths.append(FaultTruth(kind="wrong_words", planted=new != text, in_agent_copy=True,
                                      reason="" if new != text else "no keyword in the reply text",
                                      extra={"original_text": text, "text": new, "removed_keywords": removed}))
        return new

    def for_reply(self, reply_index: int, sample_rate: int) -> ReplyFaults:
        """Appliers for one reply; only reply ``spec.reply_index`` is damaged."""
        spec = self.spec if self.spec is not None and reply_index == self.spec.reply_index else None
        agent_spec = spec if spec is not None and spec.in_agent_copy else None
        path_spec = spec if spec is not None and not spec.in_agent_copy else None
        rf = ReplyFaults(agent=make_applier(agent_spec, sample_rate, reply_index=reply_index),
                         path=make_applier(path_spec, sample_rate, reply_index=reply_index))
        self._appliers += [rf.agent, rf.path]
        return rf

    def turn_truth(self) -> FaultTruth | None:
        """Truth of a worker-decided turn fault (premature, no_reply, no_yield, false_yield)."""
        if self.kind not in ("premature", "no_reply", "no_yield", "false_yield") or self.spec is None:
            return None
        extra: dict[str, Any] = {}
        if self.kind == "premature":
            if self.premature_after_sound_ms is not None:
                extra = {"lead_ms": self.spec.size_ms, "say_after_user_sound_ms": self.premature_after_sound_ms,
                         "uplink_ms": PREMATURE_UPLINK_MS, "say_to_heard_ms": PREMATURE_SAY_TO_HEARD_MS}
            else:
                extra = {"lead_ms": self.spec.size_ms, "start_after_user_onset_ms": self.premature_start_ms}
            extra.update(self.premature_timing)
        if self.kind == "false_yield":
            extra = self.session_overrides()
        return FaultTruth(kind=self.kind, planted=True, in_agent_copy=False, extra=extra)

    def trace_fields(self) -> dict[str, Any]:
        """``{"fault": spec or None, "fault_truth": [...]}`` for the turn's trace message."""
        truths = [a.truth for a in self._appliers if a.truth is not None] + list(self.truths)
        tt = self.turn_truth()
        if tt is not None:
            truths.append(tt)
        return {
            "fault": self.spec.model_dump(mode="json") if self.spec else None,
            "fault_truth": [t.to_dict() for t in truths],
        }
