"""``autortc run``: cases → user side in rooms → turn contract → metrics → gates → report.

``per_case`` suites run one room per case (created and deleted through ``livekit-api``, the
case in the room's metadata), ``--jobs`` cases at a time; ``conversation`` suites (nightly) keep
one room for all turns when the user side can (bots), else open one per turn (the browser page
plays one turn per load).  Both run through the :class:`~autortc.runner.users.UserSide` seam
(``--via bots|browser``).  Only the errors in :data:`RETRYABLE` (the harness could not set the
turn up: a barrier, an anchor or the reply never came, the room could not be joined) are retried
in a fresh room, up to ``max_attempts``, each reason kept; any other exception fails the case
with its traceback in ``result.json`` (exit 2) and the run goes on.  Each case's
``result.json`` is written atomically when it ends, ``summary.json`` after every case;
Ctrl-C keeps what finished and names what was cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from livekit import api, rtc

from autortc.artifacts import TRACE_FILE
from autortc.bots.barrier import HarnessSetupError
from autortc.bots.target import CaseRoom, Target
from autortc.cases import Case, load_case_file
from autortc.gates import RunGates, judge_case, judge_run
from autortc.metrics.instrument import timing_summary
from autortc.metrics.receivers import agreement, pairs_from_turns
from autortc.results import CaseResult, TurnResult, write_json
from autortc.runner import analysis
from autortc.runner.conversation import TurnTimeouts
from autortc.runner.live_slots import LiveSlots, between_turns
from autortc.runner.paths import check_id, child, new_run_id, new_trace_id
from autortc.runner.users import AgentFailure, BotUser, BrowserPath, BrowserUser, UserSide

log = logging.getLogger("autortc.runner")

EXIT_PASS, EXIT_GATE_FAIL, EXIT_HARNESS = 0, 1, 2


def is_flaky(result: CaseResult, retry_reasons: list[str]) -> bool:
    """A case that passed (PASS/WARN) only on a later attempt: earlier attempts failed."""
    return bool(retry_reasons) and result.verdict in ("PASS", "WARN") and not result.error


RETRYABLE: tuple[type[BaseException], ...] = (HarnessSetupError, rtc.ConnectError, api.TwirpError, aiohttp.ClientError)
""""The harness could not set the turn up": barrier timeouts, anchors that never came, no reply
events (``HarnessSetupError`` and its subclasses), and the SDK's / API's connection errors."""


@dataclass(frozen=True)
class RunItem:
    """One room of a planned run (``autortc faultbench``): ``case_id`` of the cases file, played under
    its own ``entry_id`` (its result folder and summary entry) with ``metadata`` merged into the
    room's / dispatch's metadata (e.g. ``{"fault": {...}}``); ``max_attempts`` overrides the run's."""

    entry_id: str
    case_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    max_attempts: int | None = None


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    target: Target
    cases_path: Path
    suite: str = "fast"
    out_root: Path = Path("output/runs")
    run_id: str | None = None
    jobs: int = 1
    # at most this many of the ``jobs`` rooms have a turn live at once (autortc.runner.live_slots);
    # None: as many as ``jobs`` (every room talks at once: a load test)
    concurrent_turns: int | None = 1
    max_attempts: int = 3
    turns: int | None = None  # conversation suites: override the suite's turn count
    gates_path: Path | None = None
    only: tuple[str, ...] = ()  # case ids to keep (debugging)
    perceptual: bool = False
    via: Literal["bots", "browser"] = "bots"
    timeouts: TurnTimeouts = field(default_factory=TurnTimeouts)
    token_url: str | None = None  # the token server that serves the web page (--via browser)
    progress: bool = True
    transcriber: str | None = None  # "module:factory" of the content check's STT (None: no content check)
    browser_path: BrowserPath | None = None  # --via browser --profile: how the page reaches the stack
    # awaited once after the last case, before the final summary.json and the report (--profile:
    # the path's configured vs measured figures); its dict goes into summary.extra
    finalize: Any = None
    # a planned run instead of the suite's cases: one room per item, same runner/metrics/gates/report
    items: tuple[RunItem, ...] = ()
    # the terminal (autortc.console.ConsoleReporter or anything with case_started/case_finished/close);
    # None: the runner makes one (bar when ``progress`` and a terminal, one line per case)
    reporter: Any = None
    label: str | None = None  # left of the progress bar (default: the suite name)
    verbosity: int = 0  # -1 quiet, 0 default, 1+ verbose (the reporter's)
    # called with the final RunSummary before summary.json and the report are written; its dict goes
    # into summary.extra (``--repeat``: flake rates, ``--baseline``: the delta table)
    summarize: Any = None


@dataclass
class RunOutcome:
    run_dir: Path
    exit_code: int
    summary: Any
    harness_errors: list[str]
    cut: list[str]
    reporter: Any = None  # the reporter the run printed through (its run_finished is the caller's)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class SuiteRunner:
    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.case_file = load_case_file(opts.cases_path)
        suite = self.case_file.suites.get(opts.suite)
        if suite is None:
            raise ValueError(f"{opts.cases_path}: suite {opts.suite!r} not defined (have: {', '.join(self.case_file.suites)})")
        self.suite = suite
        self.run_id = check_id("run_id", opts.run_id or new_run_id())
        self.run_dir = child(opts.out_root, self.run_id)
        # every verdict of the run comes from these gates (a bad --gates file fails before any room)
        self.gates = RunGates.load(opts.gates_path, suite_table=suite.gates,
                                   suite_source=f"{opts.cases_path}:suites.{opts.suite}.gates")
        self.results: dict[str, CaseResult] = {}
        self.retry_reasons: dict[str, list[str]] = {}
        self._last_reasons: list[str] = []
        self.harness_errors: list[str] = []
        self.extra: dict[str, Any] = {}
        self.started_at = _now()
        self._pool = None
        self._rep = None
        self._summary_lock = asyncio.Lock()
        live = opts.jobs if opts.concurrent_turns is None else opts.concurrent_turns
        if live < 1:
            raise ValueError(f"concurrent_turns: expected >= 1 or None, got {opts.concurrent_turns!r}")
        # more slots than rooms would change nothing: the limit is min(jobs, concurrent_turns)
        self.slots = LiveSlots(min(live, max(1, opts.jobs)), rooms=max(1, opts.jobs))

    # -- entry ------------------------------------------------------------------------------

    def _reporter(self, total: int, label: str):
        if self.opts.reporter is not None:
            self._rep = self.opts.reporter
            return self._rep
        from autortc.console import ConsoleReporter, get_console

        self._rep = ConsoleReporter(console=get_console(), total=total, verbosity=self.opts.verbosity,
                               progress=self.opts.progress, label=label)
        return self._rep

    async def run(self) -> RunOutcome:
        from autortc.console import attach_run_log, detach_run_log

        self.run_dir.mkdir(parents=True, exist_ok=True)
        handler = attach_run_log(self.run_dir)
        try:
            return await self._run()
        finally:
            detach_run_log(handler)

    async def _run(self) -> RunOutcome:
        log.info("run=%s suite=%s via=%s jobs=%d concurrent_turns=%d target=%r", self.run_id, self.opts.suite,
                 self.opts.via, self.opts.jobs, self.slots.n, self.opts.target)
        self._pool = analysis.new_pool(self.opts.transcriber)
        cut: list[str] = []
        try:
            await self._warm_pool()
            if self.opts.items or self.suite.mode == "per_case":
                items = ([RunItem(check_id("case", it.entry_id), it.case_id, it.metadata, it.max_attempts) for it in self.opts.items]
                         or [RunItem(cid, cid) for cid in self.suite.case_ids if not self.opts.only or cid in self.opts.only])
                for it in items:  # an unknown case id fails before any room
                    self.case_file.case(it.case_id)
                cut = await self._run_per_case(items)
            else:
                cut = await self._run_conversation()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self.opts.finalize is not None:
            try:
                self.extra.update(await self.opts.finalize())
            except Exception as exc:
                log.exception("finalize failed")
                self.harness_errors.append(f"finalize: {type(exc).__name__}: {exc}")
        summary = await self._write_summary(final=True, cut=cut)
        from autortc.report import render

        try:
            render(summary, [self.results[e.case_id] for e in summary.cases], self.run_dir)
        except Exception as exc:  # the report must not hide the results
            log.exception("report failed")
            self.harness_errors.append(f"report: {exc}")
        if self.harness_errors or cut:
            code = EXIT_HARNESS
        elif summary.verdict == "FAIL":
            code = EXIT_GATE_FAIL
        else:
            code = EXIT_PASS
        return RunOutcome(self.run_dir, code, summary, self.harness_errors, cut, self._rep)

    # -- per-case suites ------------------------------------------------------------------

    async def _run_per_case(self, items: list[RunItem]) -> list[str]:
        sem = asyncio.Semaphore(max(1, self.opts.jobs))
        progress = self._reporter(len(items), f"{self.opts.label or self.opts.suite} ({self.opts.jobs} job(s)"
                                  + (f", {self.slots.n} live" if self.slots.n < self.opts.jobs else "") + ")")

        async def one(item: RunItem) -> None:
            case = self.case_file.case(item.case_id)
            try:
                await self._run_case(case, item, rooms=sem, started=lambda: progress.case_started(item.entry_id),
                                     finished=progress.case_finished)
            except Exception as exc:  # a bug in the runner itself: this case fails, the others go on
                tb = traceback.format_exc()
                log.error("case=%s: runner error: %s", item.entry_id, tb)
                self.harness_errors.append(f"{item.entry_id}: runner: {type(exc).__name__}: {exc}")
                res = CaseResult(case_id=item.entry_id, p_level=case.p_level, verdict="FAIL",
                                 error=f"error: {type(exc).__name__}: {exc}\n{tb}", tags=list(case.tags))
                self.results[item.entry_id] = res
                write_json(child(self.run_dir, item.entry_id) / "result.json", res)
                progress.case_finished(res)

        tasks = {asyncio.create_task(one(it), name=f"case.{it.entry_id}"): it.entry_id for it in items}
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # gather() raises as soon as its first child ends cancelled (a case still waiting for a
            # job slot), while the others are still closing their rooms after the cancel gather
            # already sent them: a second cancel would cut that cleanup (a half-joined room left in
            # the native runtime aborts the process at exit). Only a task no one cancelled is cancelled.
            for t in tasks:
                if not t.done() and not t.cancelling():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return [cid for cid in tasks.values() if cid not in self.results]
        finally:
            progress.close()
        return []

    def _user_side(self, room: str) -> UserSide:
        o = self.opts
        if o.via == "browser":
            return BrowserUser(o.target, room=room, run_id=self.run_id, token_url=o.token_url or "",
                               timeouts=o.timeouts, path=o.browser_path, slots=self.slots)
        return BotUser(o.target, room=room, run_id=self.run_id, timeouts=o.timeouts, slots=self.slots)

    async def _attempt_turns(self, label: str, play, max_attempts: int | None = None) -> tuple[Any, list[str], str | None]:
        """Run ``play(attempt)`` until it returns, retrying only :data:`RETRYABLE`.

        Returns ``(value, retry_reasons, error)``; ``error`` is ``None`` on success, else the
        last reason (all attempts hit a harness problem) or ``error: <traceback>`` of an
        unexpected exception (not retried: a bug or a real failure must not look like flakiness).
        """
        reasons: list[str] = []
        self._last_reasons = reasons  # what was retried before an AgentFailure ended the loop
        max_attempts = max_attempts or self.opts.max_attempts
        for attempt in range(1, max_attempts + 1):
            try:
                return await play(attempt), reasons, None
            except AgentFailure:
                raise  # the agent's failure: never retried (a retry would launder it)
            except RETRYABLE as exc:
                reason = f"attempt {attempt}: {type(exc).__name__}: {exc}"
                # INFO: the case line shows the attempts, the report and autortc.log the reasons
                log.info("%s %s", label, reason)
                reasons.append(reason)
            except Exception as exc:
                tb = traceback.format_exc()
                log.error("%s failed (not retried): %s", label, tb)
                self.harness_errors.append(f"{label}: {type(exc).__name__}: {exc}")
                return None, reasons, f"error: {type(exc).__name__}: {exc}\n{tb}"
        err = f"harness: all {max_attempts} attempts failed; last: {reasons[-1]}"
        self.harness_errors.append(f"{label}: {reasons[-1]}")
        return None, reasons, err

    async def _run_case(self, case: Case, item: RunItem | None = None, *, rooms: asyncio.Semaphore | None = None,
                        started: Callable[[], None] | None = None,
                        finished: Callable[[CaseResult], None] | None = None) -> None:
        """Play ``case`` in a room of its own (retried per :meth:`_attempt_turns`), then analyse it.

        ``rooms``: the run's room limit (``--jobs``), held while the case has a room and released
        before the analysis, so the next case joins while this one is analysed; ``started`` is called
        once the case has its room slot (the reporter's "started"), ``finished`` with its result
        (between live turns, as the result's files).
        """
        item = item or RunItem(case.id, case.id)
        entry_id = item.entry_id
        case_dir = child(self.run_dir, entry_id)

        async def play(attempt: int) -> list[Path]:
            room = check_id("room", f"{self.run_id}-{entry_id}-a{attempt}")
            meta = {**item.metadata, "run_id": self.run_id, "case_id": case.id, "suite": self.opts.suite, "attempt": attempt}
            # the room's setup and its teardown never run beside a live turn (LiveSlots.between_turns)
            async with between_turns(self.slots, f"room={room} joining"), contextlib.AsyncExitStack() as joining:
                await joining.enter_async_context(CaseRoom(self.opts.target, room, metadata=meta))
                user = await joining.enter_async_context(self._user_side(room))
                in_room = joining.pop_all()  # leaves and deletes the room
            trace_id = new_trace_id(case.id, 0)
            turn_dir = child(case_dir, trace_id)
            try:
                await user.play_turn(case, trace_id=trace_id, turn_index=0, out_dir=turn_dir)
            except BaseException:
                async with between_turns(self.slots, f"room={room} leaving"):
                    await in_room.__aexit__(*sys.exc_info())
                raise
            async with between_turns(self.slots, f"room={room} leaving"):
                await in_room.aclose()
            return [turn_dir]

        cause = None
        failure: AgentFailure | None = None
        async with (rooms if rooms is not None else contextlib.nullcontext()):
            t0 = time.monotonic()
            if started is not None:
                started()
            try:
                turn_dirs, reasons, error = await self._attempt_turns(f"case={entry_id}", play, item.max_attempts)
            except AgentFailure as exc:
                failure = exc
        if failure is not None:
            reasons = list(self._last_reasons)
            turn_dirs, error, cause = [], f"{failure}", failure.cause
            log.warning("case=%s agent failure %s (not retried)", entry_id, failure)
            turns = [await self._agent_failed_turn(case, entry_id, failure, new_trace_id(entry_id, 0), case_dir)]
        self.retry_reasons[entry_id] = reasons
        if cause is None:
            turns = [await self._analyze(case, d, entry_id) for d in (turn_dirs or [])]
        result = CaseResult(case_id=entry_id, p_level=case.p_level, turns=turns,
                            attempts=len(reasons) + (0 if error and error.startswith("harness") else 1),
                            error=error, duration_s=round(time.monotonic() - t0, 2), tags=list(case.tags),
                            cause=cause)
        result.verdict = judge_case(result)  # type: ignore[assignment]
        result.flaky = is_flaky(result, reasons)
        # the analysis ran beside the next case: its files, the summary and the terminal line are
        # written on the loop that paces that case's mic, so not while its turn is live
        async with between_turns(self.slots, f"case={entry_id} results"):
            write_json(case_dir / "result.json", result)
            self.results[entry_id] = result
            await self._write_summary()
            log.info("case=%s verdict=%s attempts=%d (%.1f s)", entry_id, result.verdict, result.attempts, result.duration_s)
            if finished is not None:
                finished(result)

    # -- conversation suites (nightly) ----------------------------------------------------

    async def _run_conversation(self) -> list[str]:
        """All turns in one room while the user side can hold it; a retried turn or a user side
        that plays one turn per room (the browser page) opens a fresh room for the next turn."""
        ids = self.suite.turn_case_ids(self.opts.turns)
        progress = self._reporter(len(ids), f"{self.opts.label or self.opts.suite} conversation")
        done = 0
        room_no = 0
        held: tuple[CaseRoom, UserSide] | None = None

        async def release() -> None:
            nonlocal held
            if held is not None:
                room, user = held
                held = None
                try:
                    await user.aclose()
                finally:
                    await room.__aexit__(None, None, None)

        async def open_room() -> UserSide:
            nonlocal held, room_no
            name = check_id("room", f"{self.run_id}-conversation" + (f"-r{room_no}" if room_no else ""))
            room_no += 1
            meta = {"run_id": self.run_id, "suite": self.opts.suite, "case_ids": ids}
            room = CaseRoom(self.opts.target, name, metadata=meta)
            await room.__aenter__()
            user = self._user_side(name)
            try:
                await user.join()
            except BaseException:
                try:
                    await user.aclose()
                except Exception:
                    log.exception("closing the user side of %s", name)
                await room.__aexit__(None, None, None)
                raise
            held = (room, user)
            return user

        try:
            for i, cid in enumerate(ids):
                case = self.case_file.case(cid)
                entry_id = check_id("case", f"turn{i:02d}-{cid}")
                t0 = time.monotonic()
                progress.case_started(entry_id)

                async def play(attempt: int, i=i, cid=cid, case=case, entry_id=entry_id) -> Path:
                    user = held[1] if held is not None else await open_room()
                    trace_id = new_trace_id(cid, i)
                    d = child(self.run_dir, entry_id, trace_id)
                    try:
                        await user.play_turn(case, trace_id=trace_id, turn_index=i, out_dir=d)
                    except BaseException:
                        await release()  # a failed turn leaves the room in an unknown state
                        raise
                    if user.via == "browser":
                        await release()  # the page plays one turn per load
                    return d

                cause = None
                try:
                    turn_dir, reasons, error = await self._attempt_turns(f"conversation turn {entry_id}", play)
                except AgentFailure as exc:
                    reasons = list(self._last_reasons)
                    turn_dir, error, cause = None, f"{exc}", exc.cause
                    log.warning("conversation turn %s agent failure %s (not retried)", entry_id, exc)
                    turns = [await self._agent_failed_turn(case, entry_id, exc, new_trace_id(cid, i),
                                                           child(self.run_dir, entry_id))]
                self.retry_reasons[entry_id] = reasons
                if cause is None:
                    turns = [await self._analyze(case, turn_dir, entry_id)] if turn_dir else []
                res = CaseResult(case_id=entry_id, p_level=case.p_level, turns=turns,
                                 attempts=len(reasons) + (0 if error and error.startswith("harness") else 1),
                                 error=error, duration_s=round(time.monotonic() - t0, 2), tags=list(case.tags),
                                 cause=cause)
                res.verdict = judge_case(res)  # type: ignore[assignment]
                res.flaky = is_flaky(res, reasons)
                write_json(child(self.run_dir, entry_id) / "result.json", res)
                self.results[entry_id] = res
                done += 1
                progress.case_finished(res)
                await self._write_summary()
        except asyncio.CancelledError:
            return [f"turn{i:02d}-{cid}" for i, cid in enumerate(ids)][done:]
        finally:
            progress.close()
            try:
                await release()
            except Exception as exc:
                self.harness_errors.append(f"conversation: closing the room: {type(exc).__name__}: {exc}")
        return []

    # -- metrics and summary ----------------------------------------------------------------

    async def _agent_failed_turn(self, case: Case, entry_id: str, exc: "AgentFailure", trace_id: str,
                                 case_dir: Path) -> TurnResult:
        """The turn of an agent failure: its folder analysed when written (what the user heard is
        still judged), marked ``no_reply`` and judged again so the ``no_reply`` gate FAILs."""
        from autortc.gates import judge_turn

        gates = self.gates.for_case(entry_id, case.gates, source=f"{self.opts.cases_path}:{case.id}.gates")
        d = exc.turn_dir
        if d is not None and (d / TRACE_FILE).exists():
            res = await self._analyze(case, d, entry_id)
        else:
            d = child(case_dir, trace_id)
            d.mkdir(parents=True, exist_ok=True)
            res = TurnResult(case_id=entry_id, trace_id=trace_id, p_level=case.p_level)
        res.no_reply = True
        res.errors.append(f"{exc.cause}: {exc}")
        judge_turn(res, gates)
        async with between_turns(self.slots, f"trace_id={trace_id} results"):  # as _analyze's
            write_json(d / "result.json", res)
        return res

    async def _warm_pool(self) -> None:
        """Start the analysis worker (process spawn, imports, the content check's STT model: ~3-4 s of
        CPU) before the first room: started by the first analysis, it ran beside the second case's live
        turn (runs n1/n2 of docs/agent-latency.md, session 24: that turn's uplink 116-146 ms against
        ~55). A worker that cannot start is a harness error here, and each turn's analysis says why."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, analysis.ready)
        except Exception as exc:
            log.error("the analysis worker did not start: %s", traceback.format_exc())
            self.harness_errors.append(f"analysis worker: {type(exc).__name__}: {exc}")

    async def _analyze(self, case: Case, turn_dir: Path, entry_id: str) -> TurnResult:
        """The turn's metrics and verdicts (worker process, the case's own gates), written to its
        ``result.json``.  A crash of the analysis fails the turn with its traceback; the run goes on."""
        loop = asyncio.get_running_loop()
        gates = self.gates.for_case(entry_id, case.gates, source=f"{self.opts.cases_path}:{case.id}.gates")
        args = analysis.analyze_args(turn_dir, gates, self.opts.perceptual)
        try:
            res: TurnResult = await loop.run_in_executor(self._pool, analysis.analyze, *args)
        except Exception as exc:
            tb = traceback.format_exc()
            log.error("case=%s turn %s: analysis failed: %s", case.id, turn_dir.name, tb)
            self.harness_errors.append(f"{case.id}/{turn_dir.name}: analysis: {type(exc).__name__}: {exc}")
            res = TurnResult(case_id=case.id, trace_id=turn_dir.name, p_level=case.p_level, verdict="FAIL",
                             errors=[f"analysis error: {type(exc).__name__}: {exc}\n{tb}"])
        async with between_turns(self.slots, f"trace_id={turn_dir.name} results"):
            write_json(turn_dir / "result.json", res)
        return res

    async def _write_summary(self, *, final: bool = False, cut: list[str] | None = None):
        async with self._summary_lock:
            cases = list(self.results.values())
            summary = judge_run(self.run_id, cases, self.gates, suite=self.opts.suite, started_at=self.started_at,
                                ended_at=_now() if final else None)
            attempts = sum(c.attempts for c in cases)
            summary.extra.update({
                "via": self.opts.via,
                "jobs": self.opts.jobs,
                "concurrent_turns": self.slots.n,
                # seconds the turns waited for a live slot (the price of measuring each turn alone)
                "live_slot_wait_s": round(sum(self.slots.waits_s), 1),
                # seconds the work between turns waited for a live turn to end (LiveSlots.between_turns)
                "between_turns_wait_s": round(sum(self.slots.between_waits_s), 1),
                "retry_reasons": {k: v for k, v in self.retry_reasons.items() if v},
                "retries": sum(len(v) for v in self.retry_reasons.values()),
                "retry_rate": round(sum(len(v) for v in self.retry_reasons.values()) / max(1, attempts), 4),
                "harness_errors": list(self.harness_errors),
                "flaky": sorted(c.case_id for c in cases if c.flaky),
                "agent_failures": {c.case_id: c.cause for c in cases if c.cause},
                # the error bar next to every latency: the instrument's own and the path's spread
                "timing": timing_summary((t.latency.eot_to_first_audio_ms, t.latency.uplink_ms, t.latency.agent_ms,
                                          t.latency.downlink_ms, t.latency.split_note) for c in cases for t in c.turns
                                         if t.latency.eot_to_first_audio_ms is not None),
                "cut": list(cut or []),
                "target": repr(self.opts.target),
                **self.extra,
            })
            if self.opts.via == "browser":
                # two receivers on the same turns: the page's USER_KPI vs the probe (issue 17 §3)
                summary.extra["receivers"] = agreement(pairs_from_turns(
                    (f"{c.case_id}/{t.trace_id}", t) for c in cases for t in c.turns)).to_dict()
            if final:
                summary.extra["complete"] = not cut
                if self.opts.summarize is not None:
                    try:
                        summary.extra.update(self.opts.summarize(summary))
                    except Exception as exc:  # a baseline/flake problem must not lose the run's results
                        log.exception("summarize failed")
                        self.harness_errors.append(f"summarize: {type(exc).__name__}: {exc}")
                        summary.extra["harness_errors"] = list(self.harness_errors)
            write_json(self.run_dir / "summary.json", summary)
            return summary


async def run_suite(opts: RunOptions) -> RunOutcome:
    return await SuiteRunner(opts).run()
