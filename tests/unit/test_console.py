"""The pytest-like console: line budget of a 16-case run, every failure's cause shown, units,
and logging that drops SDK noise at its logger while keeping warnings and the run log."""

from __future__ import annotations

import io
import logging
import re

import pytest
from rich.console import Console

from autortc.console import (
    ConsoleReporter,
    attach_run_log,
    detach_run_log,
    format_gate,
    format_value,
    reset_logging,
    setup_logging,
)
from autortc.results import CaseEntry, CaseResult, GateVerdict, RunSummary, TurnResult

pytestmark = pytest.mark.unit

# The fast suite's case ids and the EoT -> first audio of each turn of a recorded fast-suite run
# (/work/wt16a/output/runs/before16, 2026-12-02).
CASES = ["boom_trigger", "content_weather", "distortion_sibilant", "endpoint_long_question", "endpoint_numbers",
         "endpoint_pause_in_turn", "endpoint_short_hello", "endpoint_trailing_silence", "level_quiet_speaker",
         "noise_background", "rate_fast_speaker", "rate_slow_speaker", "speed_drift", "stutter_long_pause",
         "turn_backchannel_ignore", "turn_barge_in_stop"]
EOT = [1100.3692429999319, 1440.3273829999534, 1008.6962496666274, 1438.4552093332559, 1337.9076626665665,
       1108.3376196667132, 1801.2832160000016, 1353.038617999914, 1383.2999656666516, 1892.6735023333094,
       1082.3981426666478, 1056.6501173333336, 1115.2415533332487, 1457.862298000009, 1330.0595926666574,
       1159.8205906667545]

# That run's run-level gate verdicts, raw floats as the gates stage writes them.
RUN_GATES = [
    GateVerdict("eot_to_first_audio", "FAIL", 1824.1307875833286, 650.0, "<=", "run", "latency.eot_to_first_audio_ms", n=16),
    GateVerdict("tts_first_to_publish", "FAIL", 262.5596107535557, 120.0, "<=", "run", "latency.tts_first_to_publish_ms", n=16),
    GateVerdict("audible_dropout", "FAIL", 1.0, 0.0, "==", "run", "continuity.audible_dropouts", n=11),
    GateVerdict("max_gap", "PASS", 37.416666666666515, 200.0, "<", "run", "continuity.max_gap_ms", n=11),
    GateVerdict("clipping", "PASS", 2.9996340446465533e-05, 0.001, "<", "run", "level.clipping_ratio", n=15),
    GateVerdict("llm_ttft", "PASS", 0.5715422499861234, 80.0, "<=", "run", "latency.llm_ttft_ms", n=16),
    GateVerdict("audio_valid", "PASS", 1.0, 1.0, ">=", "run", "audio_valid", n=12),
    GateVerdict("inter_arrival", "PASS", 12.462434424992347, 30.0, "<=", "run", "latency.inter_arrival_p95_ms", n=16),
    GateVerdict("user_kpi", "SKIP", None, 1500.0, "<=", "run", "latency.user_kpi_ms", n=0),
    GateVerdict("peak_spike", "WARN", 3.0, 0.0, "==", "run", "fingerprints.peak_spike_count", n=15),
    GateVerdict("repeats", "WARN", 2.0, 0.0, "==", "run", "fingerprints.repeat_count", n=15),
]

LONG_ERROR = ("harness: all 3 attempts failed; last: attempt 3 (room r1-noise_background-a3): TimeoutError: "
              "no agent_ready from the agent within 20.0 s (room r1-noise_background-a3, trace t-noise-0); "
              "the agent worker may be saturated")


def _case(i: int) -> CaseResult:
    cid = CASES[i]
    t = TurnResult(case_id=cid, trace_id=f"{cid}-t0", audio_valid=True, verdict="PASS")
    t.latency.eot_to_first_audio_ms = EOT[i]
    res = CaseResult(case_id=cid, verdict="PASS", turns=[t], duration_s=6.0 + i / 7)
    if cid == "endpoint_short_hello":  # a failing turn gate
        t.verdicts = [GateVerdict("max_gap", "FAIL", 243.81234, 200.0, "<", "turn", "continuity.max_gap_ms"),
                      GateVerdict("audible_dropout", "FAIL", 2.0, 0.0, "==", "turn", "continuity.audible_dropouts")]
        t.verdict = res.verdict = "FAIL"
    elif cid == "distortion_sibilant":  # a warning
        t.verdicts = [GateVerdict("peak_spike", "WARN", 3.0, None, "==", "turn", "fingerprints.peak_spike_count",
                                  warn_threshold=0.0)]
        t.verdict = res.verdict = "WARN"
    elif cid == "level_quiet_speaker":  # clipping fails, passed on a retry
        t.verdicts = [GateVerdict("clipping", "FAIL", 0.0123456, 0.001, "<", "turn", "level.clipping_ratio")]
        t.verdict = res.verdict = "FAIL"
        res.attempts = 2
    elif cid == "content_weather":  # the EoT gate: said once, next to the value
        t.verdicts = [GateVerdict("eot_to_first_audio", "WARN", EOT[i], 650.0, "<=", "turn", "latency.eot_to_first_audio_ms")]
        t.verdict = res.verdict = "WARN"
    elif cid == "noise_background":  # harness error: no turns analysed
        res.turns, res.verdict, res.error, res.attempts = [], "FAIL", LONG_ERROR, 3
    return res


def _all_gates() -> list[GateVerdict]:
    """RUN_GATES plus a PASS row for every other gate of defaults.toml (user_kpi and mos_lqo have no
    data on the bots path: SKIP), so the line budget is checked against today's full gate list."""
    from autortc.gates.spec import load_gates

    have = {g.gate for g in RUN_GATES}
    rows = list(RUN_GATES)
    for spec in load_gates():
        if spec.name in have:
            continue
        status, limit = ("SKIP", None) if spec.name == "mos_lqo" else ("PASS", 0.0)
        rows.append(GateVerdict(spec.name, status, limit, spec.fail if spec.fail is not None else spec.warn,
                                spec.op, spec.scope, spec.metric, n=16))
    return rows


def _summary(results: list[CaseResult]) -> RunSummary:
    return RunSummary(run_id="r1", suite="fast", verdict="FAIL", gates=_all_gates(),
                      cases=[CaseEntry(r.case_id, r.verdict, error=r.error) for r in results])


def _run(verbosity: int) -> str:
    buf = io.StringIO()
    con = Console(file=buf, width=120, color_system=None)
    rep = ConsoleReporter(console=con, total=16, verbosity=verbosity, label="fast")
    results = [_case(i) for i in range(16)]
    for r in results:
        rep.case_started(r.case_id)
        rep.case_finished(r)
    rep.run_finished(_summary(results), "output/runs/r1/report.html", 1)
    return buf.getvalue()


# Lines ./run_suite.sh adds around `autortc run` on an installed clone: `autortc stack up -q` prints one
# line; `scripts/install.sh` (already installed) and `autortc stack down -q` print none.
WRAPPER_LINES = 1


def test_sixteen_case_run_fits_in_40_lines_and_shows_every_failure_cause():
    out = _run(0)
    lines = out.rstrip("\n").split("\n")
    print(out)
    assert len(lines) + WRAPPER_LINES <= 40, f"{len(lines)} lines + {WRAPPER_LINES} of run_suite.sh"
    # one line per case, in order
    table_at = next(i for i, ln in enumerate(lines) if re.match(r"^\s+gate\s+measured\s+threshold\s+n$", ln))
    case_lines = [ln for ln in lines[:table_at] if re.match(r"^(PASS|WARN|FAIL|ERROR)\s+\S", ln)]
    assert [ln.split()[1] for ln in case_lines] == CASES
    # every failing case says why, with measured vs threshold in units
    text = " ".join(out.split())  # the harness error wraps; causes are never cropped
    assert "max_gap 244 ms (< 200 ms)" in text
    assert "audible_dropout 2 (== 0)" in text
    assert "clipping 1.2 % (< 0.10 %)" in text
    assert "peak_spike 3 (== 0)" in text
    assert re.search(r"content_weather\s+EoT→audio\s+1440 ms \(needs <= 650 ms\)\s+6.1 s$", out, re.M)
    assert " ".join(LONG_ERROR.split())[:200] in text
    assert re.search(r"level_quiet_speaker.*attempts 2", out)
    # final table: run gates with units, no raw floats; report path and exit code
    assert not re.search(r"\d+\.\d{4,}", out), "raw float printed"
    assert re.search(r"FAIL\s+eot_to_first_audio\s+1824 ms\s+<= 650 ms\s+16", out)
    assert re.search(r"clipping\s+0.00 %\s+< 0.10 %", out)
    assert re.search(r"audio_valid\s+100.0 %\s+>= 100.0 %", out)
    assert "no data (SKIP): user_kpi" in out
    assert "report: output/runs/r1/report.html" in out
    assert lines[-1].startswith("==== 2 failed, 1 errors, 2 warned, 11 passed") and lines[-1].endswith("exit 1 ====")


def test_quiet_prints_only_what_did_not_pass():
    out = _run(-1)
    assert "endpoint_short_hello" in out and "noise_background" in out and "distortion_sibilant" in out
    assert "content_weather" in out  # warned
    assert "endpoint_numbers" not in out  # passed
    assert "llm_ttft" not in out  # passing gate row hidden
    assert len(out.rstrip("\n").split("\n")) < len(_run(0).rstrip("\n").split("\n"))


@pytest.mark.parametrize(("metric", "value", "agg", "shown"), [
    ("latency.eot_to_first_audio_ms", 3072.6644088333046, None, "3073 ms"),
    ("level.clipping_ratio", 0.0123456, None, "1.2 %"),
    ("level.clipping_ratio", 2.9996e-05, None, "0.00 %"),
    ("audio_valid", 0.75, "rate", "75.0 %"),
    ("continuity.audible_dropouts", 2.0, None, "2"),
    ("perceptual.mos_lqo", 4.123456, None, "4.12"),
    ("fingerprints.hf_ratio_drop", 0.43017588798264284, None, "0.43"),
    ("fidelity.mel_distance", 2.872894525527954, None, "2.9 dB"),
    ("latency.user_kpi_ms", None, None, "—"),
    ("latency.llm_ttft_ms", 0.5715422499861234, None, "0.6 ms"),
])
def test_values_carry_units_and_sane_precision(metric, value, agg, shown):
    assert format_value(metric, value, aggregate=agg) == shown


def test_warn_gate_shows_the_warn_threshold():
    g = GateVerdict("user_kpi", "WARN", 1012.4, 1500.0, "<=", "run", "latency.user_kpi_ms", warn_threshold=900.0)
    assert format_gate(g) == "user_kpi 1012 ms (<= 900 ms)"


@pytest.fixture
def clean_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    reset_logging()
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_noise_is_dropped_at_its_logger_and_the_run_log_keeps_detail(tmp_path, clean_logging):
    buf = io.StringIO()
    setup_logging(0, console=Console(file=buf, width=200, color_system=None), level="DEBUG")
    fh = attach_run_log(tmp_path)
    try:
        # what livekit/rtc/room.py does (module-level logging.info on the root logger)
        logging.info("ignoring text stream with topic '%s', no callback attached", "lk.transcription")
        logging.info("ignoring byte stream with topic '%s', no callback attached", "lk.agent.session")
        # the same words at WARNING are not noise
        logging.warning("ignoring text stream with topic 'lk.transcription' because the reader failed")
        # FFI signalling line (livekit/rtc/_ffi_client.py logs on "livekit")
        logging.getLogger("livekit").info("%s:%s:%s - %s", "livekit::rtc_engine", 120, "rtc_engine", "signal connected")
        logging.getLogger("livekit").error("livekit::room: ICE failed")
        logging.getLogger("autortc.runner").info("case=endpoint_short_hello verdict=PASS attempts=1")
        logging.getLogger("autortc.runner").debug("turn detail trace_id=t0")
        logging.getLogger("autortc.stack.livekit").info("building livekit-server v1 with go install (cold: ~7 min)")
    finally:
        detach_run_log(fh)
    term = buf.getvalue()
    log = (tmp_path / "autortc.log").read_text()
    assert "lk.transcription', no callback" not in term + log
    assert "lk.agent.session" not in term + log
    assert "because the reader failed" in term and "because the reader failed" in log
    assert "ICE failed" in term and "ICE failed" in log
    assert "signal connected" not in term and "signal connected" in log
    assert "verdict=PASS" not in term and "verdict=PASS" in log
    assert "turn detail trace_id=t0" in log
    assert "building livekit-server" in term  # a status a person waits on is not hidden


_RACE = ('livekit::rtc_engine::rtc_session:2526:livekit::rtc_engine::rtc_session - failed to negotiate the publisher: '
         'Rtc(RtcError { error_type: InvalidState, message: "Failed to set local offer sdp: Called in wrong state: closed" })')


@pytest.mark.parametrize("verbosity", [0, 2])
def test_the_sdks_teardown_race_stays_in_the_run_log(tmp_path, clean_logging, verbosity):
    """The line run p2j2's terminal showed (as the SDK logs it): in the run log always, on the terminal only
    at -vv; another SDK error, or the same negotiation failing on an open connection, is shown."""
    buf = io.StringIO()
    setup_logging(verbosity, console=Console(file=buf, width=400, color_system=None), level="DEBUG")
    fh = attach_run_log(tmp_path)
    try:
        logging.getLogger("livekit").error(_RACE)
        logging.getLogger("livekit").error("livekit::rtc_engine - failed to negotiate the publisher: timeout")
    finally:
        detach_run_log(fh)
    term, log = buf.getvalue(), (tmp_path / "autortc.log").read_text()
    assert "wrong state: closed" in log
    assert ("wrong state: closed" in term) == (verbosity >= 2)
    assert "publisher: timeout" in term and "publisher: timeout" in log


def test_verbose_shows_info_on_the_terminal(clean_logging):
    buf = io.StringIO()
    setup_logging(1, console=Console(file=buf, width=200, color_system=None))
    logging.getLogger("autortc.runner").info("case=x verdict=PASS")
    logging.getLogger("livekit").info("signal connected")
    assert "case=x verdict=PASS" in buf.getvalue()
    assert "signal connected" not in buf.getvalue()  # SDK plumbing only at -vv
