"""pytest plugin (``pytest11`` entry point ``autortc``): write voice-agent tests like browser tests.

::

    def test_weather(autortc):
        turn = autortc.say("cases/wavs/content_weather.wav")
        assert turn.eot_to_first_audio_ms < 1500
        assert "sunny" in turn.heard_text

Fixtures:

* ``autortc_target`` (session): the agent under test.  ``--autortc-target bundled`` (default) reuses a
  running ``autortc stack up`` stack or starts one for the session and stops it at the end;
  ``--autortc-target env`` targets ``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` /
  ``AUTORTC_AGENT_NAME`` (:meth:`autortc.bots.target.Target.from_env`) and starts nothing.
  ``AUTORTC_PYTEST_TARGET`` sets the default.
* ``autortc_run_dir`` (session): ``output/pytest/<run_id>/`` (``--autortc-out``); one folder per test
  (``<run>/<test name>/<trace_id>/``: user.wav, pre_rtc.wav, post_rtc_*.wav, trace.json, result.json).
* ``autortc`` (function): a :class:`VoiceSession` in a room of its own (created on the first
  ``say``, deleted at teardown).  ``say(wav)`` plays the WAV as the user through the LiveKit SDK (the
  same user side as ``autortc run --via bots``), waits for the reply, runs the metrics and the gates
  and returns a :class:`Turn`.

Gates are assertions: a turn with a FAIL verdict raises :class:`GateFailure` (an ``AssertionError``)
naming each gate, its measured value and its threshold, and the turn folder (``say(..., gates=False)``
to check them yourself with ``turn.assert_gates()``).  A WAV that belongs to a bundled case
(``cases/all_cases.json``) brings that case's keywords and gate overrides; any other WAV becomes a
one-segment case with its speech span measured (:func:`autortc.cases.measure_speech_span`).
Failed tests get an ``autortc`` report section (each turn: verdict, EoT→first audio, heard text,
folder); JUnit XML gets the turn folders as ``autortc_turn`` properties.  ``-k``, ``-x``, ``--junitxml``
work as usual: rooms are per test, nothing is shared but the stack and the analysis worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from autortc.results import GateVerdict, TurnResult

__all__ = ["GateFailure", "Turn", "VoiceSession"]

DEFAULT_CASES = Path(__file__).resolve().parents[1] / "cases" / "all_cases.json"


class GateFailure(AssertionError):
    """A turn's gate verdict was FAIL; the message names gate, measured, threshold and the turn folder."""


@dataclass
class Turn:
    """What one ``say`` produced.  Times in ms; texts as heard (STT of the received audio) or as sent."""

    result: TurnResult
    dir: Path
    agent_text: str = ""  # what the agent says it said (its trace's reply_text)

    @property
    def trace_id(self) -> str:
        return self.result.trace_id

    @property
    def eot_to_first_audio_ms(self) -> float:
        """User end of speech -> first audible reply sample at the listener (ms).  ``inf`` when no audio came
        (so ``assert turn.eot_to_first_audio_ms < X`` fails with a number, not a TypeError)."""
        v = self.result.latency.eot_to_first_audio_ms
        return float("inf") if v is None else float(v)

    @property
    def heard_text(self) -> str:
        """Transcript of what the user heard (lower case; empty when the content check did not run)."""
        return (self.result.content.transcript or "").lower()

    @property
    def verdict(self) -> str:
        return self.result.verdict

    @property
    def verdicts(self) -> list[GateVerdict]:
        return list(self.result.verdicts)

    @property
    def failed_gates(self) -> list[GateVerdict]:
        return [g for g in self.result.verdicts if g.status == "FAIL"]

    def gate(self, name: str) -> GateVerdict:
        """The verdict of gate ``name``; ``KeyError`` listing the gates this turn has."""
        for g in self.result.verdicts:
            if g.gate == name:
                return g
        raise KeyError(f"gate {name!r}: this turn has {', '.join(g.gate for g in self.result.verdicts)}")

    def describe(self) -> str:
        """One line: trace id, verdict, EoT→first audio, heard text, folder."""
        from autortc.console import format_value

        eot = format_value("latency.eot_to_first_audio_ms", self.result.latency.eot_to_first_audio_ms)
        return f"{self.trace_id}: {self.verdict}, EoT→first audio {eot}, heard {self.heard_text!r} ({self.dir})"

    def assert_gates(self, *, warn: bool = False) -> None:
        """Raise :class:`GateFailure` when a gate failed (or warned, with ``warn=True``)."""
        from autortc.console import format_gate

        bad = [g for g in self.result.verdicts if g.status == "FAIL" or (warn and g.status == "WARN")]
        errors = list(self.result.errors)
        if bad or errors or self.result.verdict == "FAIL":
            lines = [f"turn {self.trace_id} failed its gates:"]
            lines += [f"  {g.status} {format_gate(g)}" + (f" — {g.message}" if g.message else "") for g in bad]
            lines += [f"  error: {e.splitlines()[0]}" for e in errors]
            lines.append(f"  artifacts: {self.dir}")
            raise GateFailure("\n".join(lines))

    def __repr__(self) -> str:  # what pytest prints under a failed `assert turn.x ...`
        return f"Turn({self.describe()})"


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return (s or "test")[:60]


@dataclass
class _Session:
    """Session state: target, run folder, gates, case index, analysis worker."""

    target: Any
    run_id: str
    run_dir: Path
    transcriber: str | None
    cases_path: Path
    _pool: Any = None
    _gates: Any = None
    _by_wav: dict[Path, Any] | None = None
    turns: dict[str, list[Turn]] = field(default_factory=dict)

    def pool(self):
        from autortc.runner import analysis

        if self._pool is None:
            self._pool = analysis.new_pool(self.transcriber)
        return self._pool

    def gates(self):
        from autortc.gates import RunGates

        if self._gates is None:
            self._gates = RunGates.load(None)
        return self._gates

    def bundled_case(self, wav: Path):
        """The bundled case whose single segment is ``wav`` (resolved paths), else ``None``."""
        from autortc.cases import load_case_file

        if self._by_wav is None:
            self._by_wav = {}
            if self.cases_path.is_file():
                cf = load_case_file(self.cases_path)
                for c in cf.cases:
                    if len(c.segments) == 1:
                        self._by_wav.setdefault(c.segments[0].wav_path.resolve(), c)
        return self._by_wav.get(wav.resolve())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class VoiceSession:
    """The ``autortc`` fixture: one room for one test; ``say`` is a turn."""

    def __init__(self, session: _Session, test_name: str, node: Any = None) -> None:
        self._s = session
        self.name = _slug(test_name)
        self.dir = session.run_dir / self.name
        self._node = node
        self._loop = asyncio.new_event_loop()
        self._room = None
        self._user = None
        self._turn_index = 0
        self.turns: list[Turn] = []

    # -- public --------------------------------------------------------------------------

    def say(self, wav: str | os.PathLike[str], *, expect_keywords: list[str] | None = None,
            gates: bool = True) -> Turn:
        """Play ``wav`` as the user, wait for the agent's reply, return the measured :class:`Turn`.

        Args:
            wav: a WAV file (any rate/channels the case loader accepts: 16/24/48 kHz int16 mono).
            expect_keywords: words the heard reply must contain (the ``keywords`` content check);
                default: the bundled case's when ``wav`` is one of its WAVs.
            gates: raise :class:`GateFailure` when a gate fails (default).

        Raises:
            FileNotFoundError: ``wav`` does not exist.
            autortc.cases.CaseFileError: the WAV is not usable as a case (names the field).
            autortc.bots.barrier.HarnessSetupError: the room, the agent or its reply never came (names what).
        """
        path = Path(wav)
        if not path.is_file():
            raise FileNotFoundError(f"say({str(wav)!r}): no such WAV (relative paths are from {Path.cwd()})")
        case = self._case_for(path, expect_keywords)
        turn = self._loop.run_until_complete(self._say(case))
        self.turns.append(turn)
        self._s.turns.setdefault(self.name, []).append(turn)
        if self._node is not None:
            self._node.user_properties.append(("autortc_turn", str(turn.dir)))
        if gates:
            turn.assert_gates()
        return turn

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._release())
        finally:
            self._loop.close()

    # -- internals -----------------------------------------------------------------------

    def _case_for(self, wav: Path, keywords: list[str] | None):
        from autortc.cases import load_case_file

        bundled = self._s.bundled_case(wav)
        if bundled is not None and keywords is None:
            return bundled
        # A one-case file next to the test's artifacts, validated by the same loader as every case file.
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.dir.glob("case*.json")))
        cid = re.sub(r"[^a-z0-9_]+", "_", wav.stem.lower()).strip("_")[:40] or "wav"
        data = {
            "v": 1,
            "suites": {"pytest": {"mode": "per_case", "cases": [cid]}},
            "cases": [{
                "id": cid, "p_level": "P1", "description": f"pytest {self.name}: {wav}",
                "segments": [{"wav": str(wav.resolve()), "after": "start", "offset_ms": 0, "expect": "respond"}],
                "expect_keywords": [k.lower() for k in (keywords if keywords is not None else
                                                        (bundled.expect_keywords if bundled else []))],
                "expected_silence_ms": [], "gates": dict(bundled.gates) if bundled else {}, "tags": ["pytest"],
            }],
        }
        import shutil

        local = self.dir / f"case{n}_{cid}.wav"  # the loader wants WAVs inside the case file's folder
        shutil.copyfile(wav, local)
        data["cases"][0]["segments"][0]["wav"] = local.name
        p = self.dir / f"case{n}.json"
        p.write_text(json.dumps(data, indent=2))
        return load_case_file(p).case(cid)

    async def _open(self) -> None:
        from autortc.bots.target import CaseRoom
        from autortc.runner.paths import check_id
        from autortc.runner.users import BotUser

        room = check_id("room", f"{self._s.run_id}-{self.name}"[:120])
        meta = {"run_id": self._s.run_id, "suite": "pytest", "case_id": self.name, "attempt": 1}
        self._room = CaseRoom(self._s.target, room, metadata=meta)
        await self._room.__aenter__()
        user = BotUser(self._s.target, room=room, run_id=self._s.run_id)
        try:
            await user.join()
        except BaseException:
            await self._release(user)
            raise
        self._user = user

    async def _release(self, user=None) -> None:
        user = user or self._user
        self._user = None
        try:
            if user is not None:
                await user.aclose()
        finally:
            if self._room is not None:
                room, self._room = self._room, None
                await room.__aexit__(None, None, None)

    async def _say(self, case) -> Turn:
        from autortc.artifacts import load_turn
        from autortc.runner import analysis
        from autortc.runner.paths import child, new_trace_id
        from autortc.results import write_json

        if self._user is None:
            await self._open()
        i = self._turn_index
        self._turn_index += 1
        trace_id = new_trace_id(case.id, i)
        turn_dir = child(self.dir, trace_id)
        try:
            await self._user.play_turn(case, trace_id=trace_id, turn_index=i, out_dir=turn_dir)
        except BaseException:
            await self._release()  # a failed turn leaves the room in an unknown state; the next say opens one
            raise
        gates = self._s.gates().for_case(case.id, case.gates, source=f"{case.source or 'pytest'}:{case.id}.gates")
        args = analysis.analyze_args(turn_dir, gates, False)
        res: TurnResult = await asyncio.get_running_loop().run_in_executor(self._s.pool(), analysis.analyze, *args)
        write_json(turn_dir / "result.json", res)
        art = load_turn(turn_dir).artifacts
        agent_text = art.agent.reply_text if art is not None and art.agent is not None else ""
        return Turn(result=res, dir=turn_dir, agent_text=agent_text)


# --------------------------------------------------------------------------- pytest hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("autortc", "AutoRTC voice-agent tests")
    g.addoption("--autortc-target", choices=("bundled", "env"), default=os.environ.get("AUTORTC_PYTEST_TARGET", "bundled"),
                help="bundled: reuse or start `autortc stack`; env: LIVEKIT_URL/_API_KEY/_API_SECRET, AUTORTC_AGENT_NAME")
    g.addoption("--autortc-out", default="output/pytest", help="folder for the run's per-test artifacts")
    g.addoption("--autortc-run-id", default=None, help="run id (default: UTC time + random)")
    g.addoption("--autortc-transcriber", default=None,
                help="STT for heard_text: 'module:factory' ('' = none; default: the bundled faster-whisper)")
    g.addoption("--autortc-cases", default=str(DEFAULT_CASES), help="case file whose WAVs bring their keywords/gates")


@pytest.fixture(scope="session")
def autortc_target(request: pytest.FixtureRequest):
    """The agent under test (:class:`autortc.bots.target.Target`); see the module doc."""
    if request.config.getoption("--autortc-target") == "env":
        from autortc.bots.target import Target

        yield Target.from_env()
        return
    from autortc.commands.run import bundled_target
    from system.stack import Stack, StackOptions

    stack = Stack(StackOptions())
    started = False
    if not stack.is_up():
        stack.up()
        started = True
    try:
        yield bundled_target()
    finally:
        if started:
            stack.down()


@pytest.fixture(scope="session")
def _autortc_session(request: pytest.FixtureRequest, autortc_target):
    from autortc.commands.run import BUNDLED_TRANSCRIBER
    from autortc.runner.paths import check_id, new_run_id

    cfg = request.config
    run_id = check_id("run_id", cfg.getoption("--autortc-run-id") or new_run_id())
    run_dir = Path(cfg.getoption("--autortc-out")) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = cfg.getoption("--autortc-transcriber")
    s = _Session(target=autortc_target, run_id=run_id, run_dir=run_dir,
                 transcriber=BUNDLED_TRANSCRIBER if spec is None else (spec or None),
                 cases_path=Path(cfg.getoption("--autortc-cases")))
    cfg.stash[_RUN_DIR] = run_dir
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def autortc_run_dir(_autortc_session) -> Path:
    """``output/pytest/<run_id>/``: every test's turn folders are under ``<run_dir>/<test name>/``."""
    return _autortc_session.run_dir


@pytest.fixture
def autortc(request: pytest.FixtureRequest, _autortc_session) -> Any:
    """A :class:`VoiceSession` in a room of its own; ``autortc.say(wav) -> Turn``."""
    vs = VoiceSession(_autortc_session, request.node.name, request.node)
    request.node.stash[_SESSION] = vs
    try:
        yield vs
    finally:
        vs.close()


_SESSION = pytest.StashKey[VoiceSession]()
_RUN_DIR = pytest.StashKey[Path]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    vs = item.stash.get(_SESSION, None)
    if vs is not None and rep.when == "call" and rep.failed:
        lines = [t.describe() for t in vs.turns] or [f"no turn finished (artifacts under {vs.dir})"]
        rep.sections.append(("autortc turns", "\n".join(lines)))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    run_dir = config.stash.get(_RUN_DIR, None)
    if run_dir is not None:
        terminalreporter.write_line(f"autortc artifacts: {run_dir}")
