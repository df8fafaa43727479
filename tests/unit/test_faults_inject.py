"""The agent's fault injectors put exactly the planted fault where their truth says.

Ground truth comes from the construction of the test signal, not from the injector: a
"reply" made of words (every sample +-A with a seeded random sign, so no stretch repeats)
at known intervals on the 10 ms grid, separated by exact digital silence. Where a fault
must land follows from those intervals alone (the documented rule: first 10 ms / 20 ms
grid position >= at_ms with 20 ms of word on either side; middle of the first >= 120 ms
pause with sound on both sides; the first word's onset). Each fault is then checked
sample by sample against the input under several chunkings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from system.agent.faults import (
    FaultPlan,
    FaultSpec,
    FaultSpecError,
    Passthrough,
    make_applier,
    parse_metadata,
)

pytestmark = pytest.mark.unit

SR = 24000
MS = SR // 1000
A = 12000
# (start_ms, end_ms) of each word; 60 ms closure between the first two (no sentence pause),
# a 300 ms sentence pause [1400, 1700), 200 ms leading and 300 ms trailing silence
WORDS_MS = [(200, 700), (760, 1400), (1700, 2500)]
TOTAL_MS = 2800


def make_reply(words_ms=WORDS_MS, total_ms=TOTAL_MS, amp=A, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(total_ms * MS, dtype=np.int16)
    for s, e in words_ms:
        x[s * MS : e * MS] = (amp * rng.choice([-1, 1], size=(e - s) * MS)).astype(np.int16)
    return x


def chunkings(n: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(42)
    rand = []
    while sum(rand) < n:
        rand.append(int(rng.integers(1, 2000)))
    tiny = [1, 2, 3, 479, 481] * (n // 966 + 1)
    return {"20ms": [480] * (n // 480 + 1), "10ms": [240] * (n // 240 + 1), "random": rand, "tiny": tiny, "one": [n]}


def run(spec: FaultSpec | None, x: np.ndarray, sizes: list[int]):
    ap = make_applier(spec, SR)
    outs, i = [], 0
    for size in sizes:
        if i >= x.size:
            break
        outs.append(ap.process(x[i : i + size]))
        i += size
    outs.append(ap.finish())
    return np.concatenate(outs), ap.truth


def run_all(spec, x):
    """Output and truth per chunking; all chunkings must agree exactly."""
    results = {name: run(spec, x, sizes) for name, sizes in chunkings(x.size).items()}
    ref_out, ref_truth = results["one"]
    for name, (out, truth) in results.items():
        assert np.array_equal(out, ref_out), f"chunking {name} changed the output"
        assert truth == ref_truth, f"chunking {name} changed the truth"
    return ref_out, ref_truth


def inside_word_position(at_ms: float, size: int, grid: int) -> int:
    """First grid point p >= max(at, 20 ms) with [p-20ms, p+size+20ms) inside one constructed word."""
    margin = 20 * MS
    p = -(-max(int(round(at_ms * MS)), margin) // grid) * grid
    while p < TOTAL_MS * MS:
        if any(s * MS <= p - margin and p + size + margin <= e * MS for s, e in WORDS_MS):
            return p
        p += grid
    raise AssertionError("test reply has no such window")


def changed_span(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    idx = np.nonzero(a != b)[0]
    return int(idx[0]), int(idx[-1]) + 1


# -- no fault ------------------------------------------------------------------------------


def test_no_fault_is_byte_identical_and_returns_the_same_arrays():
    x = make_reply()
    plan = FaultPlan.from_metadata(json.dumps({"case_id": "greeting"}))
    assert plan.spec is None and plan.case_id == "greeting"
    rf = plan.for_reply(0, SR)
    for ap in (rf.agent, rf.path):
        assert isinstance(ap, Passthrough)
        for sizes in chunkings(x.size).values():
            ap2 = make_applier(None, SR)
            i = 0
            outs = []
            for s in sizes:
                chunk = x[i : i + s]
                i += s
                out = ap2.process(chunk)
                assert out is chunk
                outs.append(out)
            outs.append(ap2.finish())
            assert np.concatenate(outs).tobytes() == x.tobytes()
    assert plan.transform_text("The weather is sunny.") == "The weather is sunny."
    assert not plan.skip_reply and plan.allow_interruptions and plan.session_overrides() == {}
    assert plan.premature_start_ms is None and plan.delay_ms == 0.0
    assert plan.trace_fields() == {"fault": None, "fault_truth": []}


def test_fault_only_on_its_reply_index():
    plan = FaultPlan(FaultSpec(kind="gap", ms=60, reply_index=1))
    first = plan.for_reply(0, SR)
    assert isinstance(first.agent, Passthrough) and isinstance(first.path, Passthrough)
    second = plan.for_reply(1, SR)
    assert isinstance(second.agent, Passthrough) and not isinstance(second.path, Passthrough)


# -- path faults: inside words -------------------------------------------------------------


@pytest.mark.parametrize("at_ms", [0.0, 300.0, 333.3, 650.0, 1234.5])
@pytest.mark.parametrize("ms", [20.0, 60.0, 150.0])
def test_gap_zeroes_exactly_inside_a_word(at_ms, ms):
    x = make_reply()
    n = int(round(ms * MS))
    out, t = run_all(FaultSpec(kind="gap", at_ms=at_ms, ms=ms), x)
    p = inside_word_position(at_ms, n, 10 * MS)
    assert out.size == x.size
    assert changed_span(out, x) == (p, p + n)
    assert not out[p : p + n].any()
    assert (t.planted, t.start_sample, t.size_samples, t.in_agent_copy) == (True, p, n, False)
    assert t.start_ms == pytest.approx(p / MS) and t.size_ms == pytest.approx(ms)


@pytest.mark.parametrize("at_ms", [0.0, 310.0, 690.0, 1111.0])
def test_lost_frame_is_one_whole_20ms_frame_inside_a_word(at_ms):
    x = make_reply()
    out, t = run_all(FaultSpec(kind="lost_frame", at_ms=at_ms), x)
    p = inside_word_position(at_ms, 20 * MS, 20 * MS)
    assert p % (20 * MS) == 0
    assert changed_span(out, x) == (p, p + 20 * MS)
    assert not out[p : p + 20 * MS].any()
    assert (t.start_sample, t.size_samples, t.extra["frame_index"]) == (p, 20 * MS, p // (20 * MS))


@pytest.mark.parametrize("seed", [0, 7])
def test_noise_dropout_replaces_exactly_60ms_with_minus45_dbfs_noise(seed):
    x = make_reply()
    out, t = run_all(FaultSpec(kind="noise_dropout", at_ms=500, seed=seed), x)
    p, n = inside_word_position(500, 60 * MS, 10 * MS), 60 * MS
    assert changed_span(out, x) == (p, p + n)
    seg = out[p : p + n].astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(seg**2)) / 32768) == pytest.approx(-45.0, abs=0.05)
    assert abs(np.corrcoef(seg, x[p : p + n])[0, 1]) < 0.1  # noise, not the word turned down
    assert np.count_nonzero(out[p : p + n] != x[p : p + n]) == n
    assert (t.start_sample, t.size_samples) == (p, n)


def test_gap_not_planted_when_no_word_is_long_enough_after_at():
    x = make_reply()
    out, t = run_all(FaultSpec(kind="gap", at_ms=2400, ms=150), x)
    assert out.tobytes() == x.tobytes()
    assert t.planted is False and t.reason


# -- path faults: pause, cuts, band, speed ---------------------------------------------------


@pytest.mark.parametrize("at_ms", [0.0, 650.0, 1390.0])
def test_stall_inserts_500ms_silence_in_the_middle_of_the_sentence_pause(at_ms):
    x = make_reply()
    out, t = run_all(FaultSpec(kind="stall", at_ms=at_ms), x)
    p, n = (1400 + 150) * MS, 500 * MS  # the 60 ms closure at 700 ms is no sentence pause
    assert np.array_equal(out, np.concatenate([x[:p], np.zeros(n, np.int16), x[p:]]))
    assert (t.start_sample, t.size_samples, t.extra["pause_start"], t.extra["pause_samples"]) == (p, n, 1400 * MS, 300 * MS)


def test_stall_never_lands_in_the_trailing_silence():
    x = make_reply()
    out, t = run_all(FaultSpec(kind="stall", at_ms=1800), x)
    assert out.tobytes() == x.tobytes() and t.planted is False


def test_stall_skips_a_pause_that_at_ms_falls_into():
    x = make_reply(words_ms=[(100, 500), (800, 1200), (1500, 2000)], total_ms=2300)
    out, t = run_all(FaultSpec(kind="stall", at_ms=600, ms=100), x)
    p = (1200 + 150) * MS  # the pause [500, 800) has no sound after at_ms before it
    assert np.array_equal(out, np.concatenate([x[:p], np.zeros(100 * MS, np.int16), x[p:]]))
    assert t.start_sample == p


def test_head_cut_removes_250ms_from_the_speech_onset():
    x = make_reply()
    out, t = run_all(FaultSpec(kind="head_cut"), x)
    onset, n = 200 * MS, 250 * MS
    assert np.array_equal(out, np.concatenate([x[:onset], x[onset + n :]]))
    assert (t.start_sample, t.size_samples, t.in_agent_copy) == (onset, n, False)


def test_tail_cut_keeps_the_first_60_percent():
    x = make_reply()
    out, t = run_all(FaultSpec(kind="tail_cut"), x)
    keep = (x.size * 6) // 10
    assert np.array_equal(out, x[:keep])
    assert (t.start_sample, t.size_samples, t.extra["reply_samples"]) == (keep, x.size - keep, x.size)


def _tone(freq_hz, n, amp):
    return amp * np.sin(2 * np.pi * freq_hz * np.arange(n) / SR)


def _amplitude_at(y: np.ndarray, freq_hz: float, sr: int = SR) -> float:
    k = np.arange(y.size)
    return float(2 * abs(np.sum(y * np.exp(-2j * np.pi * freq_hz * k / sr))) / y.size)


def test_lowpass_keeps_1khz_and_removes_8khz():
    n = SR  # 1 s; 1000 and 8000 Hz are whole cycles per second
    x = np.round(_tone(1000, n, 8000) + _tone(8000, n, 8000)).astype(np.int16)
    out, t = run_all(FaultSpec(kind="lowpass"), x)
    steady = out[SR // 10 :].astype(np.float64)
    assert _amplitude_at(steady, 1000) == pytest.approx(8000, rel=0.06)  # within 0.5 dB
    assert 20 * np.log10(_amplitude_at(steady, 8000) / 8000) < -40
    assert t.extra["cutoff_hz"] == 3400 and t.size_samples == n and not t.in_agent_copy


def test_rate_error_plays_the_reply_1_088_times_faster():
    n = SR + 1  # (n - 1) * 147 / 160 is whole: the last output sample is the last input sample
    x = np.round(_tone(1000, n, 10000)).astype(np.int16)
    out, t = run_all(FaultSpec(kind="rate_22k_as_24k"), x)
    # output k is the input at k * 24000/22050 = k * 160/147: its last index <= n - 1
    assert out.size == (n - 1) * 147 // 160 + 1
    assert out[-1] == x[-1]
    k = np.arange(out.size)
    expect = 10000 * np.sin(2 * np.pi * 1000 * k * (160 / 147) / SR)
    assert np.max(np.abs(out - expect)) < 0.01 * 10000 + 1
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64) * np.hanning(out.size), 16 * out.size))
    peak_hz = np.argmax(spectrum) * SR / (16 * out.size)
    assert peak_hz == pytest.approx(1000 * 24000 / 22050, abs=1.0)
    assert t.extra["speed_ratio"] == pytest.approx(24000 / 22050) and t.extra["out_samples"] == out.size


# -- agent faults --------------------------------------------------------------------------


def test_clipping_multiplies_by_6_and_clamps():
    x = make_reply(amp=3000)
    x[300 * MS : 310 * MS] = 7000  # clips
    x[310 * MS : 320 * MS] = -5000  # clips at the negative rail
    out, t = run_all(FaultSpec(kind="clipping"), x)
    expect = np.clip(x.astype(np.int64) * 6, -32768, 32767)
    assert np.array_equal(out, expect)
    assert t.extra["clipped_samples"] == np.count_nonzero(np.abs(x.astype(np.int64) * 6) > 32767)
    assert t.in_agent_copy and t.size_samples == x.size


def test_click_sets_only_the_first_sample_to_full_scale():
    x = make_reply()
    out, t = run_all(FaultSpec(kind="click"), x)
    assert out[0] == 32767 and np.array_equal(out[1:], x[1:])
    assert (t.start_sample, t.size_samples, t.in_agent_copy) == (0, 1, True)


@pytest.mark.parametrize("at_ms", [0.0, 420.0, 1000.0])
def test_repeat_plays_a_40ms_chunk_twice(at_ms):
    x = make_reply()
    out, t = run_all(FaultSpec(kind="repeat", at_ms=at_ms), x)
    n = 40 * MS
    p = inside_word_position(at_ms, n, 10 * MS)
    assert np.array_equal(out, np.concatenate([x[: p + n], x[p : p + n], x[p + n :]]))
    assert (t.start_sample, t.size_samples, t.out_start_sample, t.in_agent_copy) == (p, n, p + n, True)


@pytest.mark.parametrize("ms", [300.0, 600.0])
def test_delay_prepends_exactly_n_ms_of_silence(ms):
    x = make_reply()
    out, t = run_all(FaultSpec(kind="delay", ms=ms), x)
    n = int(ms * MS)
    assert np.array_equal(out, np.concatenate([np.zeros(n, np.int16), x]))
    assert np.nonzero(out)[0][0] - np.nonzero(x)[0][0] == n
    assert t.in_agent_copy and t.size_samples == n


def test_plan_routes_agent_faults_before_and_path_faults_after_the_copy():
    for kind, side in [("clipping", "agent"), ("click", "agent"), ("repeat", "agent"), ("delay", "agent"),
                       ("gap", "path"), ("lost_frame", "path"), ("lowpass", "path"), ("tail_cut", "path")]:
        rf = FaultPlan(FaultSpec(kind=kind, ms=60 if kind in ("gap", "delay") else None)).for_reply(0, SR)
        damaged = rf.agent if side == "agent" else rf.path
        other = rf.path if side == "agent" else rf.agent
        assert not isinstance(damaged, Passthrough) and isinstance(other, Passthrough), kind


def test_trace_fields_carry_spec_and_truth():
    x = make_reply()
    plan = FaultPlan.from_metadata({"case_id": "c", "fault": {"kind": "gap", "at_ms": 300, "ms": 60, "seed": 7}})
    rf = plan.for_reply(0, SR)
    mid = rf.agent.process(x)
    rf.path.process(mid)
    rf.path.finish()
    rf.agent.finish()
    tf = plan.trace_fields()
    assert tf["fault"]["kind"] == "gap" and tf["fault"]["ms"] == 60
    (truth,) = tf["fault_truth"]
    assert truth["start_sample"] == 300 * MS and truth["size_ms"] == pytest.approx(60) and truth["planted"]
    json.dumps(tf)


# -- text and turn-taking hooks --------------------------------------------------------------


def test_wrong_words_removes_the_case_keywords():
    plan = FaultPlan(FaultSpec(kind="wrong_words", keywords=("sunny", "Paris")))
    out = plan.transform_text("It is Sunny in paris today, sunny indeed. Parisian food.")
    assert "sunny" not in out.lower() and "paris " not in out.lower() and "Parisian" in out
    (truth,) = plan.trace_fields()["fault_truth"]
    assert truth["extra"]["removed_keywords"] == ["sunny", "Paris"] and truth["in_agent_copy"]


def test_wrong_words_without_keywords_replaces_the_reply():
    plan = FaultPlan(FaultSpec(kind="wrong_words"))
    assert plan.transform_text("The weather is sunny.") != "The weather is sunny."


def test_turn_taking_hooks():
    assert FaultPlan(FaultSpec(kind="no_reply")).skip_reply
    ny = FaultPlan(FaultSpec(kind="no_yield"))
    assert ny.allow_interruptions is False and ny.session_overrides() == {"interruption": {"enabled": False}}
    for kind in ("gap", "delay", "no_reply", "premature", "wrong_words"):
        assert FaultPlan(FaultSpec(kind=kind, ms=60, user_speech_ms=900)).session_overrides() == {}
    fy = FaultPlan(FaultSpec(kind="false_yield")).session_overrides()
    assert fy["interruption"]["min_words"] == 0
    pre = FaultPlan(FaultSpec(kind="premature", user_speech_ms=1800))
    assert pre.premature_start_ms == 1300 and pre.turn_truth().extra["lead_ms"] == 500
    assert FaultPlan(FaultSpec(kind="delay", ms=300)).delay_ms == 300


# -- bad metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta, field",
    [
        ('{"fault": {"kind": "gap", "at_ms": 800}}', "fault"),  # gap without ms
        ('{"fault": {"kind": "gap", "at_ms": -5, "ms": 20}}', "fault.at_ms"),
        ('{"fault": {"kind": "boom"}}', "fault.kind"),
        ('{"fault": {"kind": "click", "size": 3}}', "fault.size"),
        ('{"fault": {"kind": "lost_frame", "ms": 30}}', "fault"),
        ('{"fault": {"kind": "premature"}}', "user_speech_ms"),
        ('{"fault": "gap"}', "fault"),
        ('{"case_id": 3}', "case_id"),
        ("not json", "not JSON"),
    ],
)
def test_bad_metadata_names_the_field(meta, field):
    with pytest.raises(FaultSpecError) as err:
        parse_metadata(meta, source="dispatch metadata")
    assert "dispatch metadata" in str(err.value) and field in str(err.value)


def test_empty_metadata_is_a_clean_turn():
    assert parse_metadata(None) == (None, None)
    assert parse_metadata("") == (None, None)


def test_applier_refuses_stereo_or_float():
    ap = make_applier(FaultSpec(kind="click"), SR)
    with pytest.raises(ValueError, match="mono int16"):
        ap.process(np.zeros((10, 2), np.int16))
    with pytest.raises(ValueError, match="mono int16"):
        ap.process(np.zeros(10, np.float32))


@pytest.mark.parametrize("pause_ms, planted", [(110, False), (120, True)])
def test_stall_needs_a_pause_of_at_least_120ms(pause_ms, planted):
    words = [(100, 600), (600 + pause_ms, 1200)]
    x = make_reply(words_ms=words, total_ms=1300)
    out, t = run_all(FaultSpec(kind="stall", at_ms=0, ms=200), x)
    assert t.planted is planted
    if planted:
        p = (600 + 60) * MS
        assert np.array_equal(out, np.concatenate([x[:p], np.zeros(200 * MS, np.int16), x[p:]]))
    else:
        assert out.tobytes() == x.tobytes()
