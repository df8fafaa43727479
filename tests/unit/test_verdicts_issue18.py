"""Issue 18 rules end to end through compute() + the gates stage, ground truth planted by
construction in real piper speech (TTS gold WAVs): talk-over, agent-copy attribution with the
sentence-pause cap, keywords heard by the bundled STT, turn-taking gates, unmeasured = FAIL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.artifacts import TurnAudio, load_turn
from autortc.audio import Audio, resample
from autortc.gates import RunGates, judge_run, judge_turn, load_gates
from autortc.metrics.turn import SENTENCE_PAUSE_CAP_MS, compute
from autortc.results import CaseResult, TurnResult
from autortc.testing.faults import write_turn_folder
from tests.unit.test_metrics_defects import _pause_after

pytestmark = pytest.mark.unit

GOLD = Path(__file__).resolve().parents[2] / "cases" / "tts" / "gold"
SR = 48000


def _gold(name: str, sr: int = SR) -> np.ndarray:
    x, s = sf.read(GOLD / name, dtype="float32")
    return resample(x, s, sr)


def _verdicts(res: TurnResult) -> dict:
    return {v.gate: v for v in res.verdicts}


# ------------------------------------------------------------------------------ talk-over


@pytest.mark.parametrize("delay_ms", [-500.0, -250.0])
def test_premature_reply_is_talk_over_not_latency(tmp_path, delay_ms):
    reply = _gold("long_02.wav")
    user = _gold("short_02.wav", 16000)
    truth = write_turn_folder(tmp_path / "t", pre=reply, user=user, delay_ms=delay_ms)
    t = load_turn(tmp_path / "t")
    res = judge_turn(compute(t.artifacts, t.audio), load_gates())
    assert res.latency.premature is True and res.latency.eot_to_first_audio_ms is None
    # planted: the reply's first audible sample sounds -truth ms before the user's EoT
    assert res.turntaking.premature_ms == pytest.approx(-truth["eot_to_first_audio_ms"], abs=15.0)
    v = _verdicts(res)
    assert v["talk_over"].status == "FAIL"
    # the latency gate does not fail it as "not measured": the turn is counted apart
    assert v["eot_to_first_audio"].status == "SKIP"
    case = CaseResult(case_id="c", turns=[res])
    s = judge_run("r", [case], RunGates(load_gates()))
    eot = next(g for g in s.gates if g.gate == "eot_to_first_audio")
    assert "premature" in eot.message or eot.n == 0


def test_reply_after_eot_is_latency_not_talk_over(tmp_path):
    reply = _gold("long_02.wav")
    truth = write_turn_folder(tmp_path / "t", pre=reply, user=_gold("short_02.wav", 16000), delay_ms=300.0)
    t = load_turn(tmp_path / "t")
    res = judge_turn(compute(t.artifacts, t.audio), load_gates())
    assert res.latency.premature is False and res.turntaking.premature_ms == 0.0
    assert res.latency.eot_to_first_audio_ms == pytest.approx(truth["eot_to_first_audio_ms"], abs=5.0)
    assert _verdicts(res)["talk_over"].status == "PASS"


# ------------------------------------------------------ agent copy: attribute, do not excuse


def _with_pause(x: np.ndarray, at_s: float, ms: float) -> np.ndarray:
    """Insert ``ms`` of digital silence at the first quiet point after ``at_s`` (planted)."""
    i = int(at_s * SR)
    e = np.abs(x[i:])
    j = i + int(np.argmax(e < 1e-3))
    return np.concatenate([x[:j], np.zeros(int(ms * SR / 1000), np.float32), x[j:]]).astype(np.float32)


def test_long_silence_in_the_agents_copy_is_an_agent_gap_short_pause_is_excused():
    x = _gold("long_01.wav")
    # piper's own sentence pauses (<= 419 ms in the gold set) stay excused: the cap is above them
    res = judge_turn(compute(None, TurnAudio(pre=Audio(x, SR), reply=Audio(x, SR))), load_gates())
    assert res.continuity.agent_gaps == [] and _verdicts(res)["max_gap"].status == "PASS"
    assert SENTENCE_PAUSE_CAP_MS <= 500.0  # the named cap (source in metrics/turn.py)
    y = _with_pause(x, 2.0, 800.0)  # planted: 800 ms in the agent's copy AND heard
    res = judge_turn(compute(None, TurnAudio(pre=Audio(y, SR), reply=Audio(y, SR))), load_gates())
    assert len(res.continuity.agent_gaps) == 1
    assert res.continuity.max_gap_ms >= 750.0
    v = _verdicts(res)["max_gap"]
    assert v.status == "FAIL" and "agent's own" in v.message
    assert res.origin["max_gap"] == "agent"


def test_declared_pause_in_the_agents_copy_stays_excused(tmp_path):
    x = _gold("long_01.wav")
    y = _with_pause(x, 2.0, 800.0)
    # where the pause is (ms in the agent's copy), declared by the agent
    on = np.flatnonzero(np.abs(y[int(2.0 * SR):]) < 1e-3)[0] / SR * 1000.0 + 2000.0
    write_turn_folder(tmp_path / "t", pre=y, user=_gold("short_02.wav", 16000), delay_ms=300.0,
                      expected_silence_ms=[(on - 50.0, on + 1000.0)])
    t = load_turn(tmp_path / "t")
    res = judge_turn(compute(t.artifacts, t.audio), load_gates())
    assert res.continuity.agent_gaps == []
    assert _verdicts(res)["max_gap"].status == "PASS"


# ------------------------------------------------------------------------ turn-taking gates


@pytest.mark.parametrize("ms,status", [(306.0, "PASS"), (500.0, "PASS"), (650.0, "WARN"), (1000.0, "WARN"),
                                       (1001.0, "FAIL")])
def test_barge_in_stop_gate(ms, status):
    t = TurnResult(case_id="c", trace_id="t")
    t.turntaking.stop_time_ms = ms
    assert _verdicts(judge_turn(t, load_gates()))["barge_in_stop"].status == status


@pytest.mark.parametrize("n,status", [(0, "PASS"), (1, "FAIL")])
def test_false_yield_gate(n, status):
    t = TurnResult(case_id="c", trace_id="t")
    t.turntaking.false_yields = n
    assert _verdicts(judge_turn(t, load_gates()))["false_yield"].status == status


def test_every_new_gate_has_a_source_and_the_seed_eight_are_unchanged():
    g = {s.name: s for s in load_gates()}
    for name in ("talk_over", "barge_in_stop", "false_yield", "keywords", "wer", "hf_loss", "speed",
                 "missing_audio", "no_reply"):
        assert g[name].source, name
    seed = {"eot_to_first_audio": ("<=", 650.0, None), "tts_first_to_publish": ("<=", 120.0, None),
            "audible_dropout": ("==", 0.0, None), "max_gap": ("<", 200.0, None), "clipping": ("<", 0.001, None),
            "llm_ttft": ("<=", 80.0, None), "audio_valid": (">=", 1.0, None), "inter_arrival": ("<=", 30.0, None)}
    for name, (op, fail, warn) in seed.items():
        assert (g[name].op, g[name].fail, g[name].warn) == (op, fail, warn), name


# ------------------------------------------------------------------- unmeasured is not green


def test_unmeasured_p0_gate_fails_with_its_reason_and_the_run_counts_measured_of_expected():
    a = TurnResult(case_id="a", trace_id="ta", p_level="P0")
    a.expected = {"latency.eot_to_first_audio_ms": "no reply onset found in the capture after the user's EoT"}
    b = TurnResult(case_id="b", trace_id="tb", p_level="P0")
    b.expected = {"latency.eot_to_first_audio_ms": ""}
    b.latency.eot_to_first_audio_ms = 400.0
    p1 = TurnResult(case_id="c", trace_id="tc", p_level="P1")
    p1.expected = {"latency.eot_to_first_audio_ms": "no reply onset"}
    gs = load_gates()
    va = _verdicts(judge_turn(a, gs))["eot_to_first_audio"]
    assert va.status == "FAIL" and va.message == "not measured: no reply onset found in the capture after the user's EoT"
    assert _verdicts(judge_turn(b, gs))["eot_to_first_audio"].status == "PASS"
    assert _verdicts(judge_turn(p1, gs))["eot_to_first_audio"].status == "SKIP"
    s = judge_run("r", [CaseResult(case_id=t.case_id, p_level=t.p_level, turns=[t]) for t in (a, b, p1)],
                  RunGates(gs))
    eot = next(g for g in s.gates if g.gate == "eot_to_first_audio")
    assert eot.status == "FAIL" and eot.n == 1 and eot.expected_n == 3 and "not measured on 1 P0" in eot.message


def test_compute_names_why_the_latency_was_not_measured(tmp_path):
    # a capture with no reply audio after EoT: the onset finder returns None
    reply = np.zeros(SR, np.float32)
    write_turn_folder(tmp_path / "t", pre=_gold("short_01.wav"), post=reply, user=_gold("short_02.wav", 16000))
    t = load_turn(tmp_path / "t")
    res = judge_turn(compute(t.artifacts, t.audio), load_gates())
    v = _verdicts(res)["eot_to_first_audio"]
    assert v.status == "FAIL" and v.message.startswith("not measured: ")


# ------------------------------------------------------------------------ keywords (real STT)


@pytest.fixture(scope="module")
def whisper():
    pytest.importorskip("faster_whisper")
    from autortc.commands.run import bundled_whisper

    return bundled_whisper()


def test_reply_cut_at_60_percent_loses_its_last_keyword(tmp_path, whisper):
    """long_01: "... Let me send a refresh signal now; the lights should turn green within a minute."
    Cut at 60 % (planted), the bundled STT of the received audio no longer hears "minute"."""
    x = _gold("long_01.wav")
    kw = ["router", "minute"]
    text = ("Thanks for calling support. I can see that your router went offline about twenty minutes ago, which "
            "usually means the line was reset from our side. Let me send a refresh signal now; the lights should "
            "turn green within a minute.")
    write_turn_folder(tmp_path / "ok", pre=x, user=_gold("short_02.wav", 16000), expect_keywords=kw,
                      reference_reply=text)
    t = load_turn(tmp_path / "ok")
    ok = judge_turn(compute(t.artifacts, t.audio, transcriber=whisper), load_gates())
    assert ok.content.keyword_hit_rate == 1.0 and _verdicts(ok)["keywords"].status == "PASS"
    assert _verdicts(ok)["wer"].status == "PASS"
    cut = x[: int(0.6 * x.shape[0])]
    write_turn_folder(tmp_path / "cut", pre=x, post=cut, user=_gold("short_02.wav", 16000), expect_keywords=kw,
                      reference_reply=text)
    t = load_turn(tmp_path / "cut")
    res = judge_turn(compute(t.artifacts, t.audio, transcriber=whisper), load_gates())
    v = _verdicts(res)
    assert res.content.missing_keywords == ["minute"]
    assert v["keywords"].status == "FAIL" and "minute" in v["keywords"].message
    assert v["missing_audio"].status == "FAIL"
    assert v["wer"].status == "WARN"


def test_no_transcriber_on_a_p0_keyword_turn_is_not_green(tmp_path):
    write_turn_folder(tmp_path / "t", pre=_gold("short_01.wav"), user=_gold("short_02.wav", 16000),
                      expect_keywords=["moment"])
    t = load_turn(tmp_path / "t")
    v = _verdicts(judge_turn(compute(t.artifacts, t.audio), load_gates()))["keywords"]
    assert v.status == "FAIL" and v.message == "not measured: no transcriber configured"


# ------------------------------------------------- a reply cut just after a pause (barge-in)


def _cut_after_pause(name: str, into_ms: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    """A gold sentence's copy cut ``into_ms`` after the first sample over -40 dBFS of the word after its
    first pause (>= 150 ms, after 500 ms), and that copy through real libopus with its last 20 ms frame
    zero-filled: ``(pause start, pause end, copy, heard)``, samples at ``SR``."""
    from autortc.testing.opus import opus_roundtrip

    pytest.importorskip("av")
    x = _gold(name)
    a, b = _pause_after(x, SR, 500.0, 150.0)
    m = (a + b) // 2
    o = m + int(np.flatnonzero(np.abs(x[m:]) > 0.01)[0])  # the next word's first sample over -40 dBFS
    cut = o + int(into_ms / 1000 * SR)
    pre = x[:cut]
    k = -(-cut // 960) * 960  # the agent's last 20 ms frame, zero-filled
    sent, sr_o = opus_roundtrip(np.concatenate([pre, np.zeros(k - cut, np.float32)]), SR)
    return a, b, pre, resample(sent, sr_o, SR)


def _hole_before_pause_fails(tmp_path: Path, pre: np.ndarray, heard: np.ndarray, a: int) -> None:
    """The same reply with 230 ms of its speech before the pause lost on the path: a max_gap FAIL."""
    h = int(a - 0.300 * SR)
    holed = heard.copy()
    holed[h:h + int(0.230 * SR)] = 0.0
    write_turn_folder(tmp_path / "u", pre=pre, post=holed, user=_gold("short_02.wav", 16000), delay_ms=300.0)
    u = load_turn(tmp_path / "u")
    res = judge_turn(compute(u.artifacts, u.audio), load_gates())
    assert res.continuity.max_gap_ms >= 200.0 and _verdicts(res)["max_gap"].status == "FAIL"


@pytest.mark.parametrize("name,into_ms", [("long_02.wav", 6.0), ("numbers_01.wav", 2.0), ("numbers_03.wav", 2.0),
                                           ("punct_02.wav", 2.0)])
def test_reply_cut_just_after_a_pause_has_no_gap_but_a_hole_there_is_one(tmp_path, name, into_ms):
    """Suite run base16a, turn_barge_in_stop: the barge-in cut the agent's copy 6 ms into the word
    after the story's comma pause. Those ms were in the copy's partial last 10 ms frame, unmeasured,
    so the pause was the copy's trailing silence and no intended pause of its own, while the heard
    reply (the copy through Opus) had sound after it: a 226 ms max_gap FAIL on a clean turn. Planted
    on real piper through real libopus; before the fix each pause counted as a gap (170-330 ms, the
    gate FAILs from 200 ms), the fix excuses it as the copy's own. A 230 ms hole
    where the copy has speech is still a gap."""
    from autortc.metrics import continuity

    a, b, pre, heard = _cut_after_pause(name, into_ms)
    pause_ms = (b - a) / SR * 1000.0
    # planted as in base16a: heard, the pause is a gap between sounds
    assert any(abs(g.duration_ms - pause_ms) <= 40.0 for g in continuity.detect_gaps(heard, SR).gaps)
    write_turn_folder(tmp_path / "t", pre=pre, post=heard, user=_gold("short_02.wav", 16000), delay_ms=300.0)
    t = load_turn(tmp_path / "t")
    res = judge_turn(compute(t.artifacts, t.audio), load_gates())
    assert _verdicts(res)["max_gap"].status == "PASS", (a / SR, b / SR, res.continuity.gaps)
    # excused as a pause the agent meant (the heard segment's ms start at its own first sound)
    assert any(abs(g.end_ms - g.start_ms - pause_ms) <= 40.0 for g in res.continuity.excused_gaps), \
        (pause_ms, res.continuity.excused_gaps)
    _hole_before_pause_fails(tmp_path, pre, heard, a)


@pytest.mark.parametrize("name", ["long_02.wav", "numbers_01.wav", "numbers_03.wav", "punct_02.wav"])
def test_reply_cut_as_the_next_word_begins_then_concealed_by_the_receiver_has_no_gap(tmp_path, name):
    """Fault bench fb-bots-s18 b162 (clean turn_barge_in_stop): the barge-in cut the agent's copy 1 ms
    after the next word's first sample over -40 dBFS, so the copy's last ms stayed under its silence
    threshold and the comma pause was the copy's trailing silence; the probe then heard ~20 ms at
    -38 dBFS after the pause (the receiver concealing past the last packet; libopus alone leaves
    -51 dBFS there): max_gap FAIL 226 ms. Planted here: the copy through libopus, then 30 ms of its
    last 2.5 ms repeated at -38 dBFS with a fade (a pitch-period repeat, as a jitter buffer's expand plays).
    Red before the copy's trailing silence counted as a pause it meant. A 230 ms hole where the copy
    has speech is still a gap."""
    from autortc.metrics import continuity

    a, b, pre, heard = _cut_after_pause(name, 1.0)
    heard = heard[:pre.size]
    period = heard[-int(0.0025 * SR):]
    period = period * (10 ** (-38 / 20) / max(float(np.sqrt(np.mean(period ** 2))), 1e-9))  # as heard in b162
    n = int(0.030 * SR)
    expand = np.tile(period, -(-n // period.size))[:n] * np.linspace(1.0, 0.2, n, dtype=np.float32)
    heard = np.concatenate([heard, expand, np.zeros(int(0.2 * SR), np.float32)]).astype(np.float32)
    pause_ms = (b - a) / SR * 1000.0
    # planted: the pause is a gap between sounds in what the user hears
    assert any(abs(g.duration_ms - pause_ms) <= 40.0 for g in continuity.detect_gaps(heard, SR).gaps)
    write_turn_folder(tmp_path / "t", pre=pre, post=heard, user=_gold("short_02.wav", 16000), delay_ms=300.0)
    t = load_turn(tmp_path / "t")
    res = judge_turn(compute(t.artifacts, t.audio), load_gates())
    assert not any(abs(g.end_ms - g.start_ms - pause_ms) <= 40.0 for g in res.continuity.gaps), \
        (pause_ms, res.continuity.gaps)
    assert any(abs(g.end_ms - g.start_ms - pause_ms) <= 40.0 for g in res.continuity.excused_gaps), \
        (pause_ms, res.continuity.gaps, res.continuity.excused_gaps)
    _hole_before_pause_fails(tmp_path, pre, heard, a)
