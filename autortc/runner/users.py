"""The user side of a room, behind one small seam: bots (LiveKit SDK) or the browser page.

A :class:`UserSide` is one user plus the probe beside it, in one room::

    async with BotUser(target, room=room, run_id=run_id) as user:   # join() .. aclose()
        art = await user.play_turn(case, trace_id=tid, turn_index=0, out_dir=d)

``join`` connects and passes the double ACK (``probe_ready`` → ``agent_ready``);
``play_turn`` speaks one case's segments, waits until the agent is done and writes the turn's
artifacts (WAVs + ``trace.json`` through :mod:`autortc.artifacts`), returning the contract;
``aclose`` leaves the room and raises the error of any owned task that crashed.
The runner drives per-case and conversation suites through this seam only.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autortc.artifacts import BrowserBlock, BrowserMicUnderrun, TurnArtifacts, UserBlock, UserSegment, write_trace
from autortc.bots.barrier import BarrierTimeout, HarnessSetupError
from autortc.bots.probe_bot import ProbeBot
from autortc.bots.target import Target
from autortc.bots.user_bot import UserBot
from autortc.cases import Case
from autortc.runner.conversation import TurnTimeouts, case_block, probe_artifacts, run_turn, settle
from autortc.runner.live_slots import LiveSlots, hold

log = logging.getLogger("autortc.runner")


class AgentFailure(Exception):
    """The agent under test failed the turn once the harness had set it up: never retried (a
    retry would launder the agent), the case FAILs with ``cause``.

    ``cause``: ``NO_REPLY`` (no reply within the turn's reply timeout, or an anchor of the
    agent's speech never came), ``AGENT_GONE`` (the agent left the room), ``NO_AGENT`` (no agent
    joined the room: not dispatched, its worker down or refusing the job).  ``turn_dir``: the
    turn folder when it was written (its audio is still analysed)."""

    def __init__(self, cause: str, message: str, *, turn_dir: Path | None = None) -> None:
        super().__init__(f"{cause}: {message}")
        self.cause = cause
        self.turn_dir = turn_dir


class NoReplyError(AgentFailure):
    """NO_REPLY: the turn expected an answer and no ``reply_start`` came within ``reply_s``."""

    def __init__(self, message: str, *, turn_dir: Path | None = None) -> None:
        super().__init__("NO_REPLY", message, turn_dir=turn_dir)


def require_replies(art: TurnArtifacts, case: Case, *, turn_dir: Path | None = None,
                    agent_present: bool = True) -> None:
    """A turn that expected an answer and saw no ``reply_start`` is the agent's failure:
    :class:`AgentFailure` ``AGENT_GONE`` when the agent is no longer in the room, else
    :class:`NoReplyError`."""
    if (art.probe is None or not art.probe.replies) and any(s.expect != "ignore" for s in case.segments):
        if not agent_present:
            raise AgentFailure("AGENT_GONE", f"the agent left the room before replying (trace_id={art.trace_id})",
                               turn_dir=turn_dir)
        raise NoReplyError(f"no reply_start for trace_id={art.trace_id}", turn_dir=turn_dir)


def agent_present(probe: ProbeBot) -> bool:
    """Is an agent participant (the probe's target) still in the probe's room?"""
    room = getattr(probe, "room", None)
    if room is None:
        return True
    try:
        parts = list(room.remote_participants.values())
    except Exception:
        return True
    ident = getattr(probe, "agent_identity", None)
    if ident:
        return any(p.identity == ident for p in parts)
    from livekit import rtc

    return any(p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT for p in parts)


async def probe_ready(probe: ProbeBot, timeout_s: float) -> None:
    """``probe.ready`` (agent track, first frame, double ACK); when no agent participant joined
    the room within ``timeout_s``, :class:`AgentFailure` ``NO_AGENT``: a user calling would hear
    no one, and a retry in a fresh room would hide a worker that does not take jobs. An agent
    that joined but does not answer ``probe_ready`` stays a harness problem
    (:class:`~autortc.bots.barrier.BarrierTimeout`): the protocol hook is missing, not the agent."""
    try:
        await probe.ready(timeout_s=timeout_s)
    except BarrierTimeout as exc:
        if exc.barrier == "agent_audio_track" and not agent_present(probe):
            raise AgentFailure("NO_AGENT", f"no agent joined room {probe.room_name} within {timeout_s:.0f} s "
                                           "(was it dispatched? is its worker up and taking jobs?)") from exc
        raise


async def leave_after_agent(probe: ProbeBot, timeout_s: float) -> None:
    """Once the user has left: wait up to ``timeout_s`` s for the agent to unpublish its audio or leave."""
    t0 = time.monotonic()
    if await probe.wait_agent_left(timeout_s=timeout_s):
        log.debug("room=%s agent released its audio %.0f ms after the user left", probe.room_name, (time.monotonic() - t0) * 1000)
    else:
        log.info("room=%s the agent was still in the room %.1f s after its user left; the room is deleted "
                 "under it", probe.room_name, timeout_s)


class UserSide(abc.ABC):
    """One user and its probe in one room; ``async with`` = ``join()`` … ``aclose()``."""

    via: str = ""

    @abc.abstractmethod
    async def join(self) -> None:
        """Connect and pass the double ACK; raises :class:`HarnessSetupError` naming the barrier."""

    @abc.abstractmethod
    async def play_turn(self, case: Case, *, trace_id: str, turn_index: int, out_dir: Path) -> TurnArtifacts:
        """Speak ``case``'s segments, wait for the agent to finish, write the turn folder."""

    _closed: bool = False

    async def aclose(self) -> None:
        """Leave the room (idempotent); raises the first error of an owned task."""
        if self._closed:
            return
        self._closed = True
        await self._aclose_impl()

    @abc.abstractmethod
    async def _aclose_impl(self) -> None:
        """Close what :meth:`join` and :meth:`play_turn` opened (called once)."""

    async def __aenter__(self) -> UserSide:
        try:
            await self.join()
        except BaseException:
            await _close_quietly(self)
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            await self.aclose()
        else:
            await _close_quietly(self)  # the body's error is the one to report


async def _close_quietly(user: UserSide) -> None:
    try:
        await user.aclose()
    except Exception:
        log.exception("closing the %s user side after an error", user.via)


_settle_sleep = asyncio.sleep  # the first turn's settle wait (TurnTimeouts.settle_s); tests replace it


class BotUser(UserSide):
    """The user bot (paced mic timeline) and the probe bot, both LiveKit SDK participants."""

    via = "bots"

    def __init__(self, target: Target, *, room: str, run_id: str, timeouts: TurnTimeouts = TurnTimeouts(),
                 slots: LiveSlots | None = None) -> None:
        self.target, self.room, self.run_id, self.timeouts = target, room, run_id, timeouts
        self.slots = slots  # the run's live-turn limit (run_turn holds a slot while the turn is live)
        # the user joins first: agents link to the first standard participant
        self.user = UserBot(target, room=room)
        self.probe = ProbeBot(target, room=room)
        self._settled_at = 0.0  # monotonic time the first turn may start (TurnTimeouts.settle_s)

    async def join(self) -> None:
        await self.user.connect()
        await self.probe.connect()
        await probe_ready(self.probe, self.timeouts.join_s)
        await self.user.wait_agent_ready(timeout_s=self.timeouts.join_s)
        self._settled_at = time.monotonic() + self.timeouts.settle_s

    async def play_turn(self, case: Case, *, trace_id: str, turn_index: int, out_dir: Path) -> TurnArtifacts:
        from autortc.runner.conversation import TurnError

        wait_s, self._settled_at = self._settled_at - time.monotonic(), 0.0
        if wait_s > 0:  # the first turn: the connection carries the mic's silence a while first
            log.info("trace_id=%s waits %.1f s for the room's connection to settle", trace_id, wait_s)
            # a condition of the measurement (the agent's jitter buffer converging), not an event to wait on
            await _settle_sleep(wait_s)
        try:
            art = await run_turn(user=self.user, probe=self.probe, case=case, trace_id=trace_id, turn_index=turn_index,
                                 run_id=self.run_id, out_dir=out_dir, timeouts=self.timeouts, slots=self.slots)
        except TurnError as exc:
            if "anchor" in str(exc):  # the agent's speech the segment waits for never came
                if not agent_present(self.probe):
                    raise AgentFailure("AGENT_GONE", f"the agent left the room ({exc})") from exc
                raise AgentFailure("NO_REPLY", str(exc)) from exc
            raise
        require_replies(art, case, turn_dir=out_dir, agent_present=agent_present(self.probe))
        return art

    async def _aclose_impl(self) -> None:
        # The user leaves first, as a caller hangs up; the probe stays until the agent has released
        # its audio, so the room is not deleted under it (ProbeBot.wait_agent_left says why).
        errors: list[Exception] = []
        try:
            await self.user.aclose()
        except Exception as exc:
            errors.append(exc)
        await leave_after_agent(self.probe, self.timeouts.leave_s)
        try:
            await self.probe.aclose()
        except Exception as exc:
            errors.append(exc)
        if errors:  # both closed; the first failure is raised
            raise errors[0]


@dataclass(frozen=True, kw_only=True)
class BrowserPath:
    """How the page reaches the stack when it is not the host's loopback (``--profile``).

    ``page_url``: where Chromium loads the page (default: the token server URL);
    ``livekit_url``: the SFU URL for the page (default: the token server's answer);
    ``chromium``: the executable or a wrapper that starts it (e.g. ``ip netns exec NS chromium``).
    """

    page_url: str | None = None
    livekit_url: str | None = None
    chromium: str | None = None


def _browser_segments(case: Case, res: Any) -> list[UserSegment]:
    """Every segment of the case on the host clock: the first from the page's USER_KPI onset and the
    annotated EoT (as before), later ones (barge-in, backchannel) at their scripted first speech sample
    (``BrowserTurnResult.t_script_onsets_mono``). An onset the page did not produce stays None, and
    the turn-taking metric of that segment is then "not measured"."""
    onsets = res.t_script_onsets_mono
    out = []
    for i, s in enumerate(case.segments):
        if i == 0:
            t_onset, t_end = res.clock_sync.to_monotonic(res.kpi.t_user_onset_ms), res.t_user_eot_mono
        else:
            t_onset, t_end = (onsets[i] if i < len(onsets) else None), None
        out.append(UserSegment(index=i, expect=s.expect, after=s.after, offset_ms=s.offset_ms, t_onset=t_onset, t_end=t_end))
    return out


class BrowserUser(UserSide):
    """Headless Chromium on the product page is the user; the probe bot records beside it.

    One page per room: the page runs the case's whole script (``autobrowser.harness``), so a
    :class:`BrowserUser` plays one turn; conversation suites open one per turn (see
    :meth:`SuiteRunner`).  ``path`` says how the page reaches the stack (``--profile``: from
    inside the impairment path's network namespace).
    """

    via = "browser"

    def __init__(self, target: Target, *, room: str, run_id: str, token_url: str,
                 timeouts: TurnTimeouts = TurnTimeouts(), path: BrowserPath | None = None,
                 slots: LiveSlots | None = None) -> None:
        if not token_url:
            raise ValueError("--via browser needs the token server URL (the bundled stack serves it; "
                             "--target env: set AUTORTC_TOKEN_URL)")
        self.target, self.room, self.run_id, self.timeouts = target, room, run_id, timeouts
        self.token_url, self.path = token_url, path or BrowserPath()
        # the run's live-turn limit: the page runs the whole script (its Chromium start included)
        # in one call, so the browser's turn holds its slot for all of play_turn
        self.slots = slots
        self.probe = ProbeBot(target, room=room)
        self._browser: asyncio.Task[Any] | None = None

    async def join(self) -> None:
        # The agent publishes its track once its user (the page) has joined, so the probe only
        # connects here; the page joins in play_turn and waits (?wait_ready=1) for the
        # agent_ready that answers the probe's probe_ready: the same double ACK as the bots'.
        await self.probe.connect()

    async def play_turn(self, case: Case, *, trace_id: str, turn_index: int, out_dir: Path) -> TurnArtifacts:
        async with hold(self.slots, trace_id):
            return await self._play_turn(case, trace_id=trace_id, turn_index=turn_index, out_dir=out_dir)

    async def _play_turn(self, case: Case, *, trace_id: str, turn_index: int, out_dir: Path) -> TurnArtifacts:
        from autobrowser.harness import (BrowserFailure, BrowserTurnError, BrowserTurnOptions, arun_browser_case,
                                         script_from_case)

        if self._browser is not None:
            raise RuntimeError("BrowserUser plays one turn per page; open a new one per turn")
        opts = BrowserTurnOptions(extra_query={"wait_ready": "1"}, livekit_url=self.path.livekit_url,
                                  chromium=self.path.chromium)
        self._browser = asyncio.create_task(
            arun_browser_case(script_from_case(case), self.room, self.token_url, out_dir, trace_id=trace_id,
                              options=opts, page_url=self.path.page_url), name=f"browser.{case.id}")
        tr = self.probe.begin_trace(trace_id)
        ready = asyncio.create_task(probe_ready(self.probe, self.timeouts.join_s), name=f"probe.ready.{case.id}")
        done, _ = await asyncio.wait({self._browser, ready}, return_when=asyncio.FIRST_EXCEPTION)
        try:
            if self._browser in done:
                res = await self._browser  # the page's own error (named cause) comes first
            await ready
            res = await self._browser
        except BrowserTurnError as exc:
            if (exc.cause is BrowserFailure.NO_PLAYOUT and not tr.replies
                    and any(s.expect != "ignore" for s in case.segments)):
                # The page heard nothing and the probe beside it got no reply_start either: the
                # agent did not answer (as the bots' require_replies decides). Retrying in a
                # fresh room would launder it; a page that missed a reply the probe got stays a
                # harness problem.
                if not agent_present(self.probe):
                    raise AgentFailure("AGENT_GONE", f"the agent left the room before replying "
                                                     f"(trace_id={trace_id}; browser: {exc})") from exc
                raise NoReplyError(f"no reply_start for trace_id={trace_id} (browser: {exc})") from exc
            if exc.cause is BrowserFailure.NO_AGENT and not agent_present(self.probe):
                # the page and the probe beside it both saw no agent join (as the bots' probe_ready)
                raise AgentFailure("NO_AGENT", f"no agent joined room {self.room} (browser: {exc})") from exc
            raise HarnessSetupError(f"browser: {exc}") from exc
        finally:
            # The probe's ready is owned here: cancelled if the page failed first and always
            # awaited, so an error of its own that the page's error outranked is logged with the
            # trace_id rather than dropped as "Task exception was never retrieved" at GC.
            if not ready.done():
                ready.cancel()
            (outcome,) = await asyncio.gather(ready, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.info("trace_id=%s probe ready ended with %r", trace_id, outcome)
        full_start = 0  # the probe records from its first frame, before the page's mic opens
        await settle(self.probe, tr, case, self.timeouts)
        probe_block, agent_blk = probe_artifacts(self.probe, tr, out_dir, full_start=full_start, timeouts=self.timeouts)
        kpi = res.kpi
        art = TurnArtifacts(
            run_id=self.run_id, case_id=case.id, trace_id=trace_id, turn_index=turn_index,
            wall_offset_s=time.time() - time.monotonic(),
            user=UserBlock(source="browser", wav=None, t_user_eot=res.t_user_eot_mono,
                           segments=_browser_segments(case, res)),
            browser=BrowserBlock(trace=res.trace_path.name, webm=res.webm_path.name if res.webm_path else None,
                                 user_kpi_raw_ms=kpi.raw_ms, user_kpi_ms=kpi.clamped_ms, is_talk_over=kpi.is_talk_over,
                                 eot_source=kpi.eot_source, t_first_playout=res.t_first_playout_mono,
                                 clock_sync_rtt_ms=res.clock_sync.rtt_ms, reply_complete=res.reply_complete,
                                 mic_underruns=None if res.mic_underruns is None else [
                                     BrowserMicUnderrun(at_ms=u["at_ms"], ms=u["ms"], in_speech=u["in_speech"])
                                     for u in res.mic_underruns]),
            probe=probe_block, agent=agent_blk, case=case_block(case),
        )
        write_trace(out_dir, art)
        require_replies(art, case, turn_dir=out_dir, agent_present=agent_present(self.probe))
        return art

    async def _aclose_impl(self) -> None:
        if self._browser is not None and not self._browser.done():
            self._browser.cancel()
            await asyncio.gather(self._browser, return_exceptions=True)
        if self._browser is not None:  # the page has left: as the bots' user (BotUser._aclose_impl)
            await leave_after_agent(self.probe, self.timeouts.leave_s)
        await self.probe.aclose()
