"""``autortc run``: cases → bots in rooms → artifacts → metrics → gates → report.

``per_case`` suites run one room per case (created and deleted through ``livekit-api``),
``--jobs`` cases at a time; ``conversation`` suites (nightly) keep one room for all turns.
A case attempt that hits a harness problem (a barrier timeout, an anchor that never came,
no reply events) is retried in a fresh room up to ``max_attempts``, each reason kept.
Each case's ``result.json`` is written atomically when it ends, ``summary.json`` after
every case; Ctrl-C keeps what finished and names what was cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from autortc.bots.barrier import BarrierTimeout
from autortc.bots.probe_bot import ProbeBot
from autortc.bots.target import CaseRoom, Target
from autortc.bots.user_bot import UserBot
from autortc.cases import Case, load_case_file
from autortc.gates import RunGates, judge_case, judge_run
from autortc.results import CaseResult, TurnResult, write_json
from autortc.runner import analysis
from autortc.runner.conversation import TurnError, TurnTimeouts, run_turn
from autortc.runner.paths import check_id, child, new_run_id, new_trace_id

log = logging.getLogger("autortc.runner")

EXIT_PASS, EXIT_GATE_FAIL, EXIT_HARNESS = 0, 1, 2


class RetryableCaseError(RuntimeError):
    """A capture problem that a fresh room may not have (no reply events at all)."""


def _require_replies(trace: dict[str, Any], case: Case) -> None:
    """A turn that expected an answer and saw no ``reply_start`` is a capture failure, retried."""
    if not trace["probe"]["replies"] and any(s.expect != "ignore" for s in case.segments):
        raise RetryableCaseError(f"REPLY_EVENTS_MISSING: no reply_start for trace_id={trace['trace_id']}")


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    target: Target
    cases_path: Path
    suite: str = "fast"
    out_root: Path = Path("output/runs")
    run_id: str | None = None
    jobs: int = 1
    max_attempts: int = 3
    turns: int | None = None  # conversation suites: override the suite's turn count
    gates_path: Path | None = None
    only: tuple[str, ...] = ()  # case ids to keep (debugging)
    perceptual: bool = False
    via: Literal["bots", "browser"] = "bots"
    timeouts: TurnTimeouts = field(default_factory=TurnTimeouts)
    token_url: str | None = None  # the token server that serves the web page (--via browser)
    progress: bool = True


@dataclass
class RunOutcome:
    run_dir: Path
    exit_code: int
    summary: Any
    harness_errors: list[str]
    cut: list[str]


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
        self.harness_errors: list[str] = []
        self.started_at = _now()
        self._pool = None
        self._summary_lock = asyncio.Lock()

    # -- entry ------------------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._pool = analysis.new_pool()
        cut: list[str] = []
        try:
            if self.suite.mode == "per_case":
                cases = [self.case_file.case(cid) for cid in self.suite.case_ids if not self.opts.only or cid in self.opts.only]
                cut = await self._run_per_case(cases)
            else:
                cut = await self._run_conversation()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
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
        return RunOutcome(self.run_dir, code, summary, self.harness_errors, cut)

    # -- per-case suites ------------------------------------------------------------------

    async def _run_per_case(self, cases: list[Case]) -> list[str]:
        sem = asyncio.Semaphore(max(1, self.opts.jobs))
        progress = _Progress(len(cases), enabled=self.opts.progress, label=f"{self.opts.suite} ({self.opts.jobs} job(s))")

        async def one(case: Case) -> None:
            async with sem:
                await self._run_case(case)
                progress.advance(case.id, self.results[case.id].verdict)

        tasks = {asyncio.create_task(one(c), name=f"case.{c.id}"): c.id for c in cases}
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return [cid for cid in tasks.values() if cid not in self.results]
        finally:
            progress.close()
        return []

    async def _run_case(self, case: Case) -> None:
        t0 = time.monotonic()
        case_dir = child(self.run_dir, case.id)
        reasons: list[str] = []
        turn_dirs: list[Path] = []
        error: str | None = None
        for attempt in range(1, self.opts.max_attempts + 1):
            room = check_id("room", f"{self.run_id}-{case.id}-a{attempt}")
            try:
                attempt_fn = self._case_attempt_browser if self.opts.via == "browser" else self._case_attempt
                turn_dirs = await attempt_fn(case, case_dir, room)
                break
            except Exception as exc:  # barrier timeouts, anchors that never came, no reply, SDK errors
                reason = f"attempt {attempt} (room {room}): {type(exc).__name__}: {exc}"
                log.warning("case=%s %s", case.id, reason)
                reasons.append(reason)
                turn_dirs = []
        else:
            error = f"harness: all {self.opts.max_attempts} attempts failed; last: {reasons[-1]}"
            self.harness_errors.append(f"{case.id}: {reasons[-1]}")
        self.retry_reasons[case.id] = reasons
        turns = [await self._analyze(case, d, case.id) for d in turn_dirs]
        result = CaseResult(case_id=case.id, p_level=case.p_level, turns=turns, attempts=len(reasons) + (0 if error else 1),
                            error=error, duration_s=round(time.monotonic() - t0, 2), tags=list(case.tags))
        result.verdict = judge_case(result)  # type: ignore[assignment]
        write_json(case_dir / "result.json", result)
        self.results[case.id] = result
        await self._write_summary()
        log.info("case=%s verdict=%s attempts=%d (%.1f s)", case.id, result.verdict, result.attempts, result.duration_s)

    @contextlib.asynccontextmanager
    async def _bots(self, room: str):
        """User bot (joins first: agents link to the first standard participant), then the probe;
        yields once both have seen ``agent_ready`` (the double ACK)."""
        user = UserBot(self.opts.target, room=room)
        probe = ProbeBot(self.opts.target, room=room)
        try:
            await user.connect()
            await probe.connect()
            await probe.ready()
            await user.wait_agent_ready()
            yield user, probe
        finally:
            await asyncio.gather(user.aclose(), probe.aclose(), return_exceptions=True)

    async def _case_attempt(self, case: Case, case_dir: Path, room: str) -> list[Path]:
        async with CaseRoom(self.opts.target, room, metadata={"case_id": case.id}), self._bots(room) as (user, probe):
            trace_id = new_trace_id(case.id, 0)
            turn_dir = child(case_dir, trace_id)
            trace = await run_turn(user=user, probe=probe, case=case, trace_id=trace_id, turn_index=0,
                                   run_id=self.run_id, out_dir=turn_dir, timeouts=self.opts.timeouts)
            _require_replies(trace, case)
            return [turn_dir]

    async def _case_attempt_browser(self, case: Case, case_dir: Path, room: str) -> list[Path]:
        """The user is headless Chromium on the product page; the probe records beside it."""
        from autobrowser.harness import BrowserTurnError, BrowserTurnOptions, arun_browser_case, script_from_case
        from autortc.runner.conversation import case_block, probe_artifacts, settle, write_trace

        if not self.opts.token_url:
            raise ValueError("--via browser needs the token server URL (the bundled stack serves it)")
        async with CaseRoom(self.opts.target, room, metadata={"case_id": case.id}):
            probe = ProbeBot(self.opts.target, room=room)
            browser = None
            try:
                trace_id = new_trace_id(case.id, 0)
                turn_dir = child(case_dir, trace_id)
                # The agent publishes its track once its user (the page) has joined, so the page
                # joins first and waits (?wait_ready=1) for the agent_ready that answers the
                # probe's probe_ready: the same double ACK as with the user bot.
                opts = BrowserTurnOptions(extra_query={"wait_ready": "1"})
                browser = asyncio.create_task(
                    arun_browser_case(script_from_case(case), room, self.opts.token_url, turn_dir,
                                      trace_id=trace_id, options=opts), name=f"browser.{case.id}")
                await probe.connect()
                tr = probe.begin_trace(trace_id)
                await probe.ready()
                full_start = 0  # the probe records from its first frame, before the page's mic opens
                try:
                    res = await browser
                except BrowserTurnError as exc:
                    raise RetryableCaseError(f"browser: {exc}") from exc
                await settle(probe, tr, case, self.opts.timeouts)
                probe_block, agent_block = probe_artifacts(probe, tr, turn_dir, full_start=full_start,
                                                           timeouts=self.opts.timeouts)
                kpi = res.kpi
                seg0 = case.segments[0]
                t_onset = res.clock_sync.to_monotonic(kpi.t_user_onset_ms)
                write_trace(turn_dir, {
                    "v": 1, "run_id": self.run_id, "case_id": case.id, "trace_id": trace_id, "turn_index": 0,
                    "wall_offset_s": time.time() - time.monotonic(),
                    "user": {
                        "source": "browser", "wav": None, "t_user_eot": res.t_user_eot_mono,
                        "segments": [{"index": 0, "expect": seg0.expect, "t_onset": t_onset, "t_end": res.t_user_eot_mono}],
                    },
                    "browser": {
                        "trace": res.trace_path.name, "webm": res.webm_path.name if res.webm_path else None,
                        "user_kpi_raw_ms": kpi.raw_ms, "user_kpi_ms": kpi.clamped_ms, "is_talk_over": kpi.is_talk_over,
                        "eot_source": kpi.eot_source, "t_first_playout": res.t_first_playout_mono,
                        "clock_sync_rtt_ms": res.clock_sync.rtt_ms, "reply_complete": res.reply_complete,
                    },
                    "probe": probe_block, "agent": agent_block, "case": case_block(case),
                })
                _require_replies({"trace_id": trace_id, "probe": probe_block}, case)
                return [turn_dir]
            finally:
                if browser is not None and not browser.done():
                    browser.cancel()
                    await asyncio.gather(browser, return_exceptions=True)
                await probe.aclose()

    # -- conversation suites (nightly) ----------------------------------------------------

    async def _run_conversation(self) -> list[str]:
        ids = self.suite.turn_case_ids(self.opts.turns)
        room = check_id("room", f"{self.run_id}-conversation")
        progress = _Progress(len(ids), enabled=self.opts.progress, label=f"{self.opts.suite} conversation")
        done = 0
        try:
            async with CaseRoom(self.opts.target, room, metadata={"suite": self.opts.suite}), self._bots(room) as (user, probe):
                for i, cid in enumerate(ids):
                    case = self.case_file.case(cid)
                    entry_id = check_id("case", f"turn{i:02d}-{cid}")
                    t0 = time.monotonic()
                    reasons: list[str] = []
                    turn_dir = None
                    for attempt in range(1, self.opts.max_attempts + 1):
                        trace_id = new_trace_id(cid, i)
                        d = child(self.run_dir, entry_id, trace_id)
                        try:
                            tr = await run_turn(user=user, probe=probe, case=case, trace_id=trace_id, turn_index=i,
                                                run_id=self.run_id, out_dir=d, timeouts=self.opts.timeouts)
                            _require_replies(tr, case)
                            turn_dir = d
                            break
                        except (TurnError, RetryableCaseError) as exc:
                            reasons.append(f"attempt {attempt}: {exc}")
                    self.retry_reasons[entry_id] = reasons
                    turns = [await self._analyze(case, turn_dir, entry_id)] if turn_dir else []
                    res = CaseResult(case_id=entry_id, p_level=case.p_level, turns=turns, attempts=len(reasons) + (1 if turn_dir else 0),
                                     error=None if turn_dir else f"harness: {reasons[-1]}", duration_s=round(time.monotonic() - t0, 2),
                                     tags=list(case.tags))
                    res.verdict = judge_case(res)  # type: ignore[assignment]
                    write_json(child(self.run_dir, entry_id) / "result.json", res)
                    self.results[entry_id] = res
                    if not turn_dir:
                        self.harness_errors.append(f"{entry_id}: {reasons[-1]}")
                    done += 1
                    progress.advance(entry_id, res.verdict)
                    await self._write_summary()
        except asyncio.CancelledError:
            return [f"turn{i:02d}-{cid}" for i, cid in enumerate(ids)][done:]
        except BarrierTimeout as exc:
            self.harness_errors.append(f"conversation room {room}: {exc}")
        finally:
            progress.close()
        return []

    # -- metrics and summary ----------------------------------------------------------------

    async def _analyze(self, case: Case, turn_dir: Path, entry_id: str) -> TurnResult:
        loop = asyncio.get_running_loop()
        gates = self.gates.for_case(entry_id, case.gates, source=f"{self.opts.cases_path}:{case.id}.gates")
        args = analysis.analyze_args(turn_dir, gates, self.opts.perceptual)
        res: TurnResult = await loop.run_in_executor(self._pool, analysis.analyze, *args)
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
                "retry_reasons": {k: v for k, v in self.retry_reasons.items() if v},
                "retries": sum(len(v) for v in self.retry_reasons.values()),
                "retry_rate": round(sum(len(v) for v in self.retry_reasons.values()) / max(1, attempts), 4),
                "harness_errors": list(self.harness_errors),
                "cut": list(cut or []),
                "target": repr(self.opts.target),
            })
            if final:
                summary.extra["complete"] = not cut
            write_json(self.run_dir / "summary.json", summary)
            return summary


class _Progress:
    """A rich progress bar (or nothing, for CI logs)."""

    def __init__(self, total: int, *, enabled: bool, label: str) -> None:
        self._p = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                               TextColumn("{task.fields[last]}"))
            self._p.start()
            self._task = self._p.add_task(label, total=total, last="")

    def advance(self, case_id: str, verdict: str) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1, last=f"{case_id}: {verdict}")
        else:
            log.info("done %s: %s", case_id, verdict)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


async def run_suite(opts: RunOptions) -> RunOutcome:
    return await SuiteRunner(opts).run()
