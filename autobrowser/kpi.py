"""USER_KPI: what a user of the page waits, from their end of speech to hearing the agent.

``USER_KPI = t_first_playout - t_user_eot`` (ms, one clock: the page's epoch ms), kept

- ``raw``: may be negative: the agent's audio began before the user finished (talk-over);
- ``clamped``: ``max(0, raw)``, what turn-taking gates use (seed D13);
- ``is_talk_over``: ``raw < 0``.

Which segments count (mirrored by ``computeKpi`` in web/src/main.js):

- the user's turn starts at the first mic segment; with ``speech_ms`` known (the file's first
  onset to last end) the turn is every mic segment whose onset is within ``speech_ms + 50`` ms of
  that first onset (Chromium's fake capture loops the file: later segments are the replay);
  without it, every mic segment that starts before the first playout;
- ``t_user_eot`` is the last end among them (the render time of the last speech sample), or,
  when the case annotates its end of speech, that sample aligned to the page (``user_eot``:
  frame and time, computed by the caller), which noisy cases need;
- ``t_first_playout`` is the onset of the first playout segment starting at or after the user's
  first onset (earlier audio, e.g. a greeting, is not the reply), as the time it left the
  output device.
"""

from __future__ import annotations

from dataclasses import dataclass

SPEECH_MS_SLACK = 50.0


@dataclass(frozen=True)
class TimedSegment:
    """A detector segment: frames on the page's AudioContext and their times (epoch ms)."""

    onset_frame: int
    end_frame: int
    t_onset_ms: float
    t_end_ms: float


@dataclass(frozen=True)
class UserKpi:
    t_user_onset_ms: float | None
    t_user_eot_ms: float | None
    t_first_playout_ms: float | None
    user_segments: int
    raw_ms: float | None
    clamped_ms: float | None
    is_talk_over: bool | None
    reason: str | None = None  # why a value is missing
    eot_source: str = "detector"  # or "annotation"

    @property
    def ok(self) -> bool:
        return self.raw_ms is not None


def compute_user_kpi(
    mic: list[TimedSegment],
    playout: list[TimedSegment],
    *,
    sr: int,
    speech_ms: float | None,
    user_eot: tuple[int, float] | None = None,
) -> UserKpi:
    """USER_KPI from the page's segments (see the module doc for the rules).

    ``sr`` is the AudioContext rate (frames per second); ``user_eot`` (frame, epoch ms)
    replaces the detected end of speech. Never raises on missing data: a missing value comes
    with ``reason``.
    """
    mic = sorted(mic, key=lambda s: s.onset_frame)
    play = sorted(playout, key=lambda s: s.onset_frame)
    if not mic:
        return UserKpi(None, None, None, 0, None, None, None, "no user speech detected on the mic")
    first = mic[0]
    first_play = next((p for p in play if p.onset_frame >= first.onset_frame), None)
    if speech_ms is not None:
        horizon = first.onset_frame + (speech_ms + SPEECH_MS_SLACK) / 1000.0 * sr
        turn = [s for s in mic if s.onset_frame <= horizon]
    else:
        turn = [s for s in mic if first_play is None or s.onset_frame < first_play.onset_frame] or [first]
    t_eot = max(turn, key=lambda s: s.end_frame).t_end_ms if user_eot is None else user_eot[1]
    source = "detector" if user_eot is None else "annotation"
    if first_play is None:
        return UserKpi(
            first.t_onset_ms, t_eot, None, len(turn), None, None, None,
            "no agent playout after the user began speaking", source,
        )
    raw = first_play.t_onset_ms - t_eot
    return UserKpi(
        t_user_onset_ms=first.t_onset_ms,
        t_user_eot_ms=t_eot,
        t_first_playout_ms=first_play.t_onset_ms,
        user_segments=len(turn),
        raw_ms=raw,
        clamped_ms=max(0.0, raw),
        is_talk_over=raw < 0,
        eot_source=source,
    )
