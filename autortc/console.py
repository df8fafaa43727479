"""The terminal side of a run, pytest-style: quiet logging, one line per case, a final gate table.

Two jobs, both about what a person sees:

* :func:`setup_logging` — the root logger feeds a rich handler on the shared
  :class:`rich.console.Console` at WARNING (default), ERROR (``-q``), INFO (``-v``) or
  DEBUG (``-vv``); full detail goes to a file: :func:`attach_run_log` adds
  ``output/runs/<run>/autortc.log`` for one run (the runner calls it when the run folder
  exists).  Known SDK noise is dropped at the logger that emits it (:data:`NOISE`), only at
  INFO or below — a WARNING or ERROR from the same place always passes.
* :class:`ConsoleReporter` — the runner's view of a run: ``case_started(case_id)``,
  ``case_finished(CaseResult)``, ``run_finished(RunSummary, report_path, exit_code)``.
  One line per finished case (verdict, EoT -> first audio, failing gates with measured vs
  threshold, attempts), a progress bar that stays at the bottom (rich.progress on the same
  console as the log handler, so log lines print above it), then a gate table whose values
  carry units (:func:`format_value`: ms as integers, ratios as %), the report path and the
  exit code.  A 16-case run prints about 30 lines (tests/unit/test_console.py counts them).

Verbosity: ``-q`` = -1 (failures only, no table rows that passed), 0 = default, ``-v`` = 1
(INFO logs on the terminal, every gate in the table), ``-vv`` = 2 (DEBUG, and the SDK lines
that are otherwise dropped as noise).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from autortc.results import CaseResult, GateVerdict, RunSummary, TurnResult

__all__ = [
    "LOG_FORMAT",
    "NOISE",
    "ConsoleReporter",
    "NoiseFilter",
    "NoiseRule",
    "attach_log_file",
    "attach_run_log",
    "detach_run_log",
    "format_gate",
    "format_value",
    "get_console",
    "get_verbosity",
    "reset_logging",
    "setup_logging",
    "terminal_level",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RUN_LOG_NAME = "autortc.log"

_console: Console | None = None


def get_console() -> Console:
    """The one console of the log handler, the progress bar and the reporter, on stderr.

    One console, because rich draws log lines above a live bar only when they go through the
    bar's own console (a second console bypasses ``Live``'s stderr redirect and writes through
    the bar).  stderr, because several commands print machine-readable JSON on stdout.
    """
    global _console
    if _console is None:
        _console = Console(stderr=True, soft_wrap=False)
    return _console


# --------------------------------------------------------------------------- noise


@dataclass(frozen=True)
class NoiseRule:
    """A known harmless log line: ``logger`` name, message prefix, why it is noise.

    Dropped only at ``max_level`` or below (INFO): the same logger's warnings and errors pass.
    """

    logger: str
    prefix: str
    why: str
    max_level: int = logging.INFO


NOISE: tuple[NoiseRule, ...] = (
    # livekit/rtc/room.py logs these with the module-level ``logging.info`` (root logger), once per
    # stream: the agent streams its transcription and session events to every participant, the bots
    # and the probe do not read them.  Dozens per turn.
    NoiseRule("", "ignoring text stream with topic 'lk.transcription'",
              "LiveKit Agents transcription stream; the bots read audio, not text"),
    NoiseRule("", "ignoring byte stream with topic 'lk.agent.session'",
              "LiveKit Agents session-event stream; nothing in the harness subscribes"),
    NoiseRule("", "ignoring text stream with topic 'lk.agent.",
              "other LiveKit Agents streams (events, state) nobody in the harness reads"),
)


class NoiseFilter(logging.Filter):
    """Drops the records matching ``rules`` (same logger, INFO or below, message prefix)."""

    def __init__(self, rules: Iterable[NoiseRule]) -> None:
        super().__init__()
        self._rules = tuple(rules)
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        for rule in self._rules:
            if record.levelno <= rule.max_level and record.getMessage().startswith(rule.prefix):
                self.dropped += 1
                return False
        return True


@dataclass(frozen=True)
class TeardownRace:
    """A known SDK error that follows our own leaving a room: kept in the run log, off the terminal
    below ``-vv``. ``logger`` and every one of ``contains`` in the message; ``why`` says what it is."""

    logger: str
    contains: tuple[str, ...]
    why: str


TEARDOWN_RACES: tuple[TeardownRace, ...] = (
    # Runs p2j2 and 5 of 10 other --jobs 2 runs (session 26), never at --jobs 1: logged by the harness's rust
    # SDK 3 ms before its "Disconnected from room ... reason: ClientInitiated" of the room it was leaving; a
    # publisher renegotiation raced the close of its own peer connection ("wrong state: closed"). Every case
    # passed; on the terminal it was 4 wrapped ERROR lines in a 40-line run.
    TeardownRace("livekit", ("failed to negotiate the publisher", "wrong state: closed"),
                  "the SDK renegotiating a publisher whose peer connection our leave already closed"),
)


# Loggers whose INFO lines are SDK plumbing (signalling, ICE, FFI targets): they go to the run log,
# the terminal sees them only at -vv.  Records from these loggers reach the terminal at WARNING+.
SDK_LOGGERS = ("livekit", "livekit.agents", "livekit.plugins", "websockets", "aiohttp", "asyncio")

_installed: dict[str, NoiseFilter] = {}
_terminal_handler: logging.Handler | None = None
_verbosity = 0


def get_verbosity() -> int:
    """The verbosity the last :func:`setup_logging` was given (-1 quiet .. 2), for reporters."""
    return _verbosity


def terminal_level(verbosity: int) -> int:
    """Log level shown on the terminal for ``-q`` (-1), default (0), ``-v`` (1), ``-vv`` (2+)."""
    if verbosity <= -1:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


# INFO lines a person waits on (a cold ~7 min SFU build): shown on the terminal at every verbosity but -q.
STATUS_LOGGERS = ("autortc.stack.livekit",)


class _TerminalFilter(logging.Filter):
    """Terminal handler only: the verbosity's level, SDK INFO lines only at ``-vv``, status lines always,
    :data:`TEARDOWN_RACES` only at ``-vv``."""

    def __init__(self, verbosity: int) -> None:
        super().__init__()
        self._verbosity = verbosity
        self._level = terminal_level(verbosity)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._verbosity < 2 and any(r.logger == record.name and all(c in record.getMessage() for c in r.contains)
                                       for r in TEARDOWN_RACES):
            return False
        if record.levelno < self._level:
            return self._verbosity >= 0 and record.levelno >= logging.INFO and record.name in STATUS_LOGGERS
        if self._verbosity >= 2 or record.levelno >= logging.WARNING:
            return True
        return not any(record.name == n or record.name.startswith(n + ".") for n in SDK_LOGGERS)


def setup_logging(verbosity: int = 0, *, console: Console | None = None, level: str | int | None = None) -> Console:
    """Configure the root logger for a command; returns the log console.

    Args:
        verbosity: -1 (``-q``), 0, 1 (``-v``), 2 (``-vv``); see :func:`terminal_level`.
        console: where the terminal handler writes (default :func:`get_console`; tests pass one
            on a StringIO).
        level: root level, i.e. what reaches the run log (default ``AUTORTC_LOG_LEVEL`` or INFO;
            DEBUG at ``-vv``).  The terminal never shows less than its verbosity allows.

    Idempotent: a second call replaces the terminal handler instead of adding one.
    """
    global _terminal_handler, _verbosity
    _verbosity = verbosity
    con = console or get_console()
    root = logging.getLogger()
    root_level = level if level is not None else os.environ.get("AUTORTC_LOG_LEVEL", "DEBUG" if verbosity >= 2 else "INFO")
    root.setLevel(root_level)
    if _terminal_handler is not None:
        root.removeHandler(_terminal_handler)
    handler = RichHandler(console=con, level=min(terminal_level(verbosity), logging.INFO), show_path=False,
                          show_time=verbosity >= 1, rich_tracebacks=False, markup=False)
    handler.addFilter(_TerminalFilter(verbosity))
    root.addHandler(handler)
    _terminal_handler = handler
    if verbosity < 2:
        install_noise_filters()
    return con


def install_noise_filters(rules: Sequence[NoiseRule] = NOISE) -> None:
    """Attach one :class:`NoiseFilter` to each logger named in ``rules`` (idempotent).

    Logger filters apply to records logged *on that logger*, which is where these SDK lines are
    emitted (``logging.info`` on the root logger), so the file and the terminal both lose them
    while the rest of those loggers' output is untouched.
    """
    by_logger: dict[str, list[NoiseRule]] = {}
    for rule in rules:
        by_logger.setdefault(rule.logger, []).append(rule)
    for name, group in by_logger.items():
        if name in _installed:
            continue
        flt = NoiseFilter(group)
        logging.getLogger(name or None).addFilter(flt)
        _installed[name] = flt


def reset_logging() -> None:
    """Undo :func:`setup_logging` (terminal handler, noise filters); for tests and embedding."""
    global _terminal_handler
    root = logging.getLogger()
    if _terminal_handler is not None:
        root.removeHandler(_terminal_handler)
        _terminal_handler = None
    for name, flt in list(_installed.items()):
        logging.getLogger(name or None).removeFilter(flt)
        del _installed[name]


def attach_run_log(run_dir: Path | str, *, level: int | str = logging.DEBUG) -> logging.FileHandler:
    """Start writing every log record (root level permitting) to ``<run_dir>/autortc.log``.

    Returns the handler; pass it to :func:`detach_run_log` when the run ends.  Appends, so a
    resumed run keeps its earlier lines.
    """
    return attach_log_file(Path(run_dir) / RUN_LOG_NAME, level=level)


def attach_log_file(path: Path | str, *, level: int | str = logging.DEBUG) -> logging.FileHandler:
    """:func:`attach_run_log` for any file (``autortc --log-file PATH``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    """Stop the run log (flush and close the file)."""
    logging.getLogger().removeHandler(handler)
    handler.close()


# --------------------------------------------------------------------------- value formatting

_PERCENT_METRICS = re.compile(r"(ratio|_rate|coverage|audio_valid)$")
_COUNT_METRICS = re.compile(r"(count|dropouts|false_yields|repeats|spikes)$")


def format_value(metric: str, value: float | bool | None, *, aggregate: str | None = None) -> str:
    """A measured value with its unit and a precision a person can read.

    ``*_ms`` -> integer ms (one decimal below 10 ms); ratios, rates and shares (``*ratio``, ``*_rate``, ``coverage``,
    ``audio_valid`` or any ``aggregate="rate"``) -> % (two decimals below 1 %, one above);
    counts -> integer; MOS -> 2 decimals; ``mel_distance`` -> dB, 1 decimal; other numbers
    -> 3 significant digits.  ``None`` -> ``"—"``.
    """
    if value is None:
        return "—"
    v = float(value)
    if v != v:
        return "—"
    leaf = metric.rsplit(".", 1)[-1]
    if leaf.endswith("hf_ratio_drop"):  # a difference of two ratios: points, not a % of something
        return f"{v:.2f}"
    if aggregate == "rate" or _PERCENT_METRICS.search(leaf):
        pct = 100.0 * v
        return f"{pct:.2f} %" if abs(pct) < 1 else f"{pct:.1f} %"
    if leaf.endswith("_ms"):  # whole ms, except sub-10 ms values (a fast LLM TTFT) keep one decimal
        return f"{v:.1f} ms" if abs(v) < 10 else f"{round(v):d} ms"
    if _COUNT_METRICS.search(leaf):
        return f"{round(v):d}"
    if "mos" in leaf:
        return f"{v:.2f}"
    if "mel_distance" in leaf:
        return f"{v:.1f} dB"
    return f"{v:.3g}"


def format_gate(g: GateVerdict, *, aggregate: str | None = None) -> str:
    """``"max_gap 240 ms (< 200 ms)"``: gate, measured, and the limit it had to meet."""
    return (f"{g.gate} {format_value(g.metric, g.measured, aggregate=aggregate)} "
            f"({g.op} {format_value(g.metric, _limit(g), aggregate=aggregate)})")


def _limit(g: GateVerdict) -> float | None:
    """The threshold the verdict broke: the warn level for a WARN, the fail level otherwise."""
    return g.threshold if g.status == "FAIL" or g.warn_threshold is None else g.warn_threshold


# --------------------------------------------------------------------------- reporter

_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim", "ERROR": "bold red"}
_EOT = "latency.eot_to_first_audio_ms"
_MAX_CAUSE = 220  # characters of a harness error on the case line; the full text is in autortc.log


class ConsoleReporter:
    """Prints a run like pytest does; the runner calls the three hooks.

    Args:
        console: the shared console (:func:`get_console`); the progress bar and the log
            handler must use the same one so log lines print above the bar.
        total: number of cases (or turns) the bar counts to.
        verbosity: -1 quiet (only non-passing cases), 0 default, 1+ every gate in the table.
        progress: show the bar (off for CI logs and when the console is not a terminal).
        label: text left of the bar (suite name).
    """

    def __init__(self, *, console: Console | None = None, total: int, verbosity: int = 0, progress: bool = True,
                 label: str = "") -> None:
        self.console = console or get_console()
        self.verbosity = verbosity
        self.total = total
        self.counts: dict[str, int] = {}
        self._running: list[str] = []
        self._progress = None
        self._task = None
        self._label = label
        if progress and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.fields[running]}"),
                                      console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(label or "cases", total=total, running="")

    # -- hooks ------------------------------------------------------------------------------

    def case_started(self, case_id: str) -> None:
        self._running.append(case_id)
        self._update_bar()

    def case_finished(self, result: CaseResult) -> None:
        if result.case_id in self._running:
            self._running.remove(result.case_id)
        status = "ERROR" if result.error else result.verdict
        self.counts[status] = self.counts.get(status, 0) + 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1)
        self._update_bar()
        if self.verbosity < 0 and status in ("PASS", "SKIP"):
            return
        self._print(self.case_line(result))

    def run_finished(self, summary: RunSummary, report_path: Path | str | None, exit_code: int) -> None:
        self.close()
        table = self.gate_table(summary)
        if table is not None:
            self._print(table)
        skipped = [g.gate for g in summary.gates if g.status == "SKIP"]
        if skipped and self.verbosity < 1:
            self._print(Text(f"no data (SKIP): {', '.join(skipped)}", style="dim"))
        for note in summary.notes:
            self._print(Text(f"note: {note}", style="dim"))
        recv = (summary.extra or {}).get("receivers")
        if recv:  # --via browser: the page's USER_KPI vs the probe on the same turns
            from autortc.metrics.receivers import summary_line

            self._print(Text(summary_line(recv)))
        if report_path is not None:
            self._print(Text(f"report: {report_path}"))
        self._print(self.closing_line(summary, exit_code))

    def close(self) -> None:
        """Stop the bar (idempotent); the runner calls it on Ctrl-C too."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- pieces (public so tests and other front ends can reuse them) ------------------------

    def case_line(self, result: CaseResult) -> Text:
        """``FAIL  case_id  EoT→audio 812 ms  max_gap 240 ms (< 200 ms)  attempts 2  3.1 s``."""
        status = "ERROR" if result.error else result.verdict
        line = Text()
        line.append(f"{status:5s} ", style=_STYLE.get(status, ""))
        line.append(f"{result.case_id:28s}")
        eots = [t.latency.eot_to_first_audio_ms for t in result.turns if t.latency.eot_to_first_audio_ms is not None]
        if eots:
            shown = format_value(_EOT, eots[0]) if len(eots) == 1 else \
                f"{format_value(_EOT, min(eots))}–{format_value(_EOT, max(eots))}"
            line.append(f" EoT→audio {shown:>8s}")
        else:
            line.append(" EoT→audio        —")
        eot_gate = next((g for t in result.turns for g in _bad_verdicts(t) if g.metric == _EOT), None)
        if eot_gate is not None:  # the value is already on the line: only say what it had to be
            line.append(f" (needs {eot_gate.op} {format_value(_EOT, _limit(eot_gate))})", style=_STYLE[eot_gate.status])
        if result.attempts != 1:
            line.append(f"  attempts {result.attempts}", style="yellow")
        if result.duration_s is not None:
            line.append(f"  {result.duration_s:.1f} s", style="dim")
        causes = self.failure_causes(result)
        if causes:
            line.append("  " + "; ".join(causes), style=_STYLE.get(status, ""))
        return line

    @staticmethod
    def failure_causes(result: CaseResult) -> list[str]:
        """Why a case did not pass: harness error, then each failing (or warning) turn gate."""
        causes: list[str] = []
        if result.error:
            err = " ".join(result.error.split())
            causes.append(err if len(err) <= _MAX_CAUSE else err[: _MAX_CAUSE - 1] + "…")
        multi = len(result.turns) > 1
        for t in result.turns:
            for g in _bad_verdicts(t):
                if g.metric == _EOT and not multi:
                    continue  # shown next to the EoT value by case_line
                where = f"turn {t.turn_index}: " if multi else ""
                causes.append(where + format_gate(g))
            for e in t.errors:
                causes.append(f"turn {t.turn_index}: {e}" if multi else e)
        return causes

    def gate_table(self, summary: RunSummary) -> Table | None:
        """Run-level gates: status, gate, measured, threshold, turns.  Quiet: only non-passing."""
        rows = [g for g in summary.gates if g.status != "SKIP" or self.verbosity >= 1]
        if self.verbosity < 0:
            rows = [g for g in rows if g.status in ("FAIL", "WARN")]
        if not rows:
            return None
        titles, aggregates = _gate_meta(summary)
        # No title and no rule under the header: the run id is on the report line, and every line
        # counts towards the fast suite's 40-line budget (issue 20).
        table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1), header_style="bold")
        table.add_column("")
        table.add_column("gate")
        table.add_column("measured", justify="right")
        table.add_column("threshold", justify="right")
        table.add_column("n", justify="right")
        for g in rows:
            agg = aggregates.get(g.gate)
            limit = format_value(g.metric, g.threshold, aggregate=agg)
            if g.warn_threshold is not None and g.warn_threshold != g.threshold:
                limit = f"{limit} (warn {format_value(g.metric, g.warn_threshold, aggregate=agg)})"
            table.add_row(Text(g.status, style=_STYLE.get(g.status, "")), titles.get(g.gate) or g.gate,
                          format_value(g.metric, g.measured, aggregate=agg), f"{g.op} {limit}",
                          "" if g.n is None else str(g.n))
        return table

    def closing_line(self, summary: RunSummary, exit_code: int) -> Text:
        """``==== 14 passed, 1 warned, 1 failed — FAIL — exit 1 ====`` (pytest's last line)."""
        words = {"PASS": "passed", "WARN": "warned", "FAIL": "failed", "ERROR": "errors", "SKIP": "skipped"}
        counts = self.counts or _counts_from_summary(summary)
        parts = [f"{counts[k]} {words[k]}" for k in ("FAIL", "ERROR", "WARN", "PASS", "SKIP") if counts.get(k)]
        style = _STYLE.get("FAIL" if exit_code else "PASS", "")
        return Text(f"==== {', '.join(parts) or 'no cases'} — {summary.verdict} — exit {exit_code} ====", style=style)

    # -- internals --------------------------------------------------------------------------

    def _update_bar(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, running=", ".join(self._running[-3:]))

    def _print(self, renderable: Any) -> None:
        # Never cropped: a failure's cause at the end of a long line must stay visible.  On a terminal
        # long lines fold at its width; in a file or CI log (no width) a case stays one line, like pytest's.
        if self.console.is_terminal or not isinstance(renderable, Text):
            self.console.print(renderable, overflow="fold")
        else:
            self.console.print(renderable, soft_wrap=True)


def _bad_verdicts(turn: TurnResult) -> list[GateVerdict]:
    fails = [g for g in turn.verdicts if g.status == "FAIL"]
    return fails or [g for g in turn.verdicts if g.status == "WARN"]


def _gate_meta(summary: RunSummary) -> tuple[dict[str, str], dict[str, str]]:
    """Gate titles and aggregates from ``summary.gate_specs`` when the summary has them
    (gates-report branch adds that field; older summaries have none)."""
    titles: dict[str, str] = {}
    aggregates: dict[str, str] = {}
    for spec in getattr(summary, "gate_specs", None) or []:
        name = getattr(spec, "name", None)
        if name:
            titles[name] = getattr(spec, "title", "") or name
            aggregates[name] = getattr(spec, "aggregate", "")
    return titles, aggregates


def _counts_from_summary(summary: RunSummary) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in summary.cases:
        k = "ERROR" if c.error else c.verdict
        counts[k] = counts.get(k, 0) + 1
    return counts

