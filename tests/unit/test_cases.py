"""Case files: the bundled suite is complete and consistent; bad files fail with errors
that name the file, the case and the field."""

from __future__ import annotations

import copy
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autortc.cases import (
    CaseFileError,
    load_case_file,
    load_cases,
    measure_speech_span,
    valid_id,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "cases" / "all_cases.json"
SR = 16000


# --------------------------------------------------------------------------- fixtures


def speech_like(sr: int = SR, *, lead_ms: int = 300, speech_ms: int = 800, tail_ms: int = 0,
                level: float = 0.3, seed: int = 0) -> np.ndarray:
    """Silence, then an amplitude-modulated harmonic burst (speech-like), then silence."""
    rng = np.random.default_rng(seed)
    n = int(speech_ms * sr / 1000)
    t = np.arange(n) / sr
    f0 = 140.0
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 8))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t)  # syllable-rate modulation, never silent
    burst = level * env * voiced / np.max(np.abs(voiced))
    return np.concatenate([np.zeros(int(lead_ms * sr / 1000)), burst, np.zeros(int(tail_ms * sr / 1000))]).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)


def good_doc() -> dict:
    return {
        "v": 1,
        "suites": {
            "quick": {"mode": "per_case", "cases": ["hello", "barge"]},
            "talk": {"mode": "conversation", "turns": 5, "cases": ["hello", "barge"]},
        },
        "cases": [
            {
                "id": "hello",
                "p_level": "P0",
                "description": "greeting",
                "segments": [{"wav": "wavs/hello.wav", "after": "start", "offset_ms": 0, "expect": "respond",
                              "speech_start_ms": 300, "speech_end_ms": 1100}],
                "expect_keywords": ["Hello", "help"],
                "reference_reply": "Hello! How can I help?",
                "expected_silence_ms": [[0, 250]],
                "gates": {"eot_to_first_audio_p95_ms": 900},
                "tags": ["endpointing"],
            },
            {
                "id": "barge",
                "p_level": "P1",
                "description": "barge-in",
                "segments": [
                    {"wav": "wavs/hello.wav", "after": "start", "expect": "respond"},
                    {"wav": "wavs/stop.wav", "after": "agent_speech_start", "offset_ms": 900, "expect": "stop"},
                ],
            },
        ],
    }


@pytest.fixture()
def case_dir(tmp_path: Path) -> Path:
    write_wav(tmp_path / "wavs" / "hello.wav", speech_like())
    write_wav(tmp_path / "wavs" / "stop.wav", speech_like(lead_ms=50, speech_ms=600, seed=1))
    return tmp_path


def write_doc(case_dir: Path, doc: dict, name: str = "cases.json") -> Path:
    p = case_dir / name
    p.write_text(json.dumps(doc, indent=2))
    return p


def expect_error(path: Path, *, case: str | None, field: str, contains: str) -> CaseFileError:
    with pytest.raises(CaseFileError) as info:
        load_case_file(path)
    err = info.value
    text = str(err)
    print(text)
    assert str(path) in text
    matching = [p for p in err.problems if p.field == field and p.case_id == case]
    assert matching, f"no problem for case={case!r} field={field!r} in:\n{text}"
    assert any(contains in p.message for p in matching), f"{contains!r} not in {[p.message for p in matching]}"
    line = next(line for line in text.splitlines() if field in line and (case is None or repr(case) in line))
    assert line.startswith(str(path))
    return err


# --------------------------------------------------------------------------- good files


def test_good_file_loads_with_annotations_suites_and_resolved_paths(case_dir: Path) -> None:
    path = write_doc(case_dir, good_doc())
    cf = load_case_file(path)
    hello = cf.case("hello")
    seg = hello.segments[0]
    assert seg.wav_path == (case_dir / "wavs" / "hello.wav").resolve()
    assert (seg.sample_rate, seg.n_samples) == (SR, int(1.1 * SR))
    assert (seg.speech_start_ms, seg.speech_end_ms, seg.speech_span_measured) == (300, 1100, False)
    assert seg.eot_sample == int(1.1 * SR)
    assert hello.expect_keywords == ("hello", "help")  # normalised to lower case
    assert hello.expected_silence_ms == ((0, 250),)
    assert hello.gates == {"eot_to_first_audio_p95_ms": 900.0}

    barge = cf.case("barge")
    stop = barge.segments[1]
    assert (stop.after, stop.offset_ms, stop.expect) == ("agent_speech_start", 900, "stop")
    # no annotation in the file: measured from the WAV (burst at 50..650 ms)
    assert stop.speech_span_measured
    assert abs(stop.speech_start_ms - 50) <= 10 and abs(stop.speech_end_ms - 650) <= 10

    assert [c.id for c in load_cases(path, suite="quick")] == ["hello", "barge"]
    assert [c.id for c in load_cases(path)] == ["hello", "barge"]
    talk = cf.suites["talk"]
    assert talk.turn_case_ids() == ("hello", "barge", "hello", "barge", "hello")
    assert talk.turn_case_ids(3) == ("hello", "barge", "hello")


def test_unknown_suite_lists_known_suites(case_dir: Path) -> None:
    path = write_doc(case_dir, good_doc())
    with pytest.raises(CaseFileError, match=r"unknown suite 'nightly'; known suites: quick, talk"):
        load_cases(path, suite="nightly")


# --------------------------------------------------------------------------- bad files


def test_missing_field_names_file_case_and_field(case_dir: Path) -> None:
    doc = good_doc()
    del doc["cases"][0]["segments"][0]["expect"]
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].expect", contains="required field is missing")


def test_missing_case_id_names_the_case_by_index(case_dir: Path) -> None:
    doc = good_doc()
    del doc["cases"][1]["id"]
    expect_error(write_doc(case_dir, doc), case="cases[1]", field="id", contains="required field is missing")


@pytest.mark.parametrize(
    ("bad_id", "why"),
    [
        ("../escape", "path separator"),
        ("a..b", "contains '..'"),
        ("a/b", "path separator"),
        ("tab\there", "control character"),
        ("space here", "must be 1-64 characters"),
        ("-leading", "must be 1-64 characters"),
        ("x" * 65, "must be 1-64 characters"),
    ],
)
def test_bad_case_id(case_dir: Path, bad_id: str, why: str) -> None:
    doc = good_doc()
    doc["cases"][0]["id"] = bad_id
    doc["suites"] = {}
    expect_error(write_doc(case_dir, doc), case=bad_id, field="id", contains=why)


def test_valid_id_accepts_the_bundled_style() -> None:
    assert valid_id("endpoint_short_hello") is None
    assert valid_id("case-2.v1") is None


def test_unknown_expect_value(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][1]["segments"][1]["expect"] = "pause"
    err = expect_error(write_doc(case_dir, doc), case="barge", field="segments[1].expect", contains="'respond', 'stop' or 'ignore'")
    assert "'pause'" in str(err)


def test_unknown_anchor_and_unknown_field(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][1]["segments"][1]["after"] = "agent_reply_start"
    doc["cases"][0]["expect_keyword"] = ["typo"]
    path = write_doc(case_dir, doc)
    expect_error(path, case="barge", field="segments[1].after", contains="agent_speech_start")
    expect_error(path, case="hello", field="expect_keyword", contains="unknown field")


def test_wav_missing(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][0]["segments"][0]["wav"] = "wavs/nope.wav"
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].wav", contains="WAV file not found")


def test_wav_stereo(case_dir: Path) -> None:
    x = speech_like()
    write_wav(case_dir / "wavs" / "stereo.wav", np.stack([x, x], axis=1))
    doc = good_doc()
    doc["cases"][0]["segments"][0]["wav"] = "wavs/stereo.wav"
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].wav", contains="2 channels, expected mono")


@pytest.mark.parametrize(
    ("sr", "subtype", "why"),
    [
        (SR, "FLOAT", "sample format FLOAT, expected PCM_16"),
        (SR, "PCM_24", "sample format PCM_24, expected PCM_16"),
        (11025, "PCM_16", "sample rate 11025 Hz"),
    ],
)
def test_wav_wrong_format(case_dir: Path, sr: int, subtype: str, why: str) -> None:
    write_wav(case_dir / "wavs" / "bad.wav", speech_like(sr), sr=sr, subtype=subtype)
    doc = good_doc()
    doc["cases"][0]["segments"][0]["wav"] = "wavs/bad.wav"
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].wav", contains=why)


def test_wav_not_a_wav(case_dir: Path) -> None:
    (case_dir / "wavs" / "text.wav").write_text("not audio")
    doc = good_doc()
    doc["cases"][0]["segments"][0]["wav"] = "wavs/text.wav"
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].wav", contains="not a readable WAV file")


def test_wav_outside_case_folder_or_absolute(case_dir: Path) -> None:
    inner = case_dir / "suite"
    inner.mkdir()
    doc = good_doc()
    doc["cases"][0]["segments"][0]["wav"] = "../wavs/hello.wav"
    doc["cases"][1]["segments"][0]["wav"] = str(case_dir / "wavs" / "hello.wav")
    path = write_doc(inner, doc)
    expect_error(path, case="hello", field="segments[0].wav", contains="points outside the case file's folder")
    expect_error(path, case="barge", field="segments[0].wav", contains="absolute path")


def test_silent_wav_without_annotation(case_dir: Path) -> None:
    write_wav(case_dir / "wavs" / "silent.wav", np.zeros(SR, np.float32))
    doc = good_doc()
    doc["cases"][1]["segments"][1]["wav"] = "wavs/silent.wav"
    expect_error(write_doc(case_dir, doc), case="barge", field="segments[1].wav", contains="no speech found")


def test_duplicate_ids(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"].append(copy.deepcopy(doc["cases"][0]))
    expect_error(write_doc(case_dir, doc), case="hello", field="id", contains="duplicate case id (cases[0] and cases[2])")


def test_bad_suite_reference(case_dir: Path) -> None:
    doc = good_doc()
    doc["suites"]["quick"]["cases"].append("helo")
    expect_error(write_doc(case_dir, doc), case="helo", field="suites.quick.cases[2]", contains="unknown case 'helo'")


def test_suite_mode_rules(case_dir: Path) -> None:
    doc = good_doc()
    doc["suites"]["quick"]["turns"] = 3
    del doc["suites"]["talk"]["turns"]
    doc["suites"]["twice"] = {"mode": "per_case", "cases": ["hello", "hello"]}
    path = write_doc(case_dir, doc)
    expect_error(path, case=None, field="suites.quick.turns", contains="only applies to mode 'conversation'")
    expect_error(path, case=None, field="suites.talk.turns", contains="needs 'turns'")
    expect_error(path, case="hello", field="suites.twice.cases", contains="listed twice")


def test_segment_timing_rules(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][0]["segments"][0]["after"] = "agent_speech_start"  # first segment has no agent yet
    doc["cases"][1]["segments"][1]["after"] = "previous_end"  # stop must talk into the reply
    path = write_doc(case_dir, doc)
    expect_error(path, case="hello", field="segments[0].after", contains="first segment must be timed from 'start'")
    expect_error(path, case="barge", field="segments[1].after", contains="must be timed from 'agent_speech_start'")


def test_first_segment_must_respond(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][0]["segments"][0]["expect"] = "ignore"
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].expect", contains="must expect 'respond'")


def test_negative_offset_and_bad_p_level(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][1]["segments"][1]["offset_ms"] = -5
    doc["cases"][1]["p_level"] = "P9"
    path = write_doc(case_dir, doc)
    expect_error(path, case="barge", field="segments[1].offset_ms", contains="greater than or equal to 0")
    expect_error(path, case="barge", field="p_level", contains="'P0', 'P1' or 'P2'")


def test_string_where_number_expected_is_rejected(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][1]["segments"][1]["offset_ms"] = "900"
    expect_error(write_doc(case_dir, doc), case="barge", field="segments[1].offset_ms", contains="valid integer")


def test_annotation_out_of_range(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][0]["segments"][0]["speech_end_ms"] = 5000  # WAV is 1100 ms
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].speech_end_ms", contains="<= WAV duration (1100 ms)")
    doc = good_doc()
    del doc["cases"][0]["segments"][0]["speech_end_ms"]
    expect_error(write_doc(case_dir, doc), case="hello", field="segments[0].speech_start_ms", contains="give both")


def test_expected_silence_rules(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][0]["expected_silence_ms"] = [[100, 50]]
    expect_error(write_doc(case_dir, doc), case="hello", field="expected_silence_ms[0]", contains="start_ms < end_ms")
    doc["cases"][0]["expected_silence_ms"] = [[0, 200], [100, 300]]
    expect_error(write_doc(case_dir, doc), case="hello", field="expected_silence_ms[1]", contains="not overlap")
    doc["cases"][0]["expected_silence_ms"] = [[1000, 2000]]
    expect_error(write_doc(case_dir, doc), case="hello", field="expected_silence_ms[0]", contains="after the end of segments[0]")


def test_gate_override_names_and_values(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][0]["gates"] = {"Max Gap": 200, "clipping": "high"}
    path = write_doc(case_dir, doc)
    expect_error(path, case="hello", field="gates.clipping", contains="valid number")
    doc["cases"][0]["gates"] = {"Max Gap": 200}
    expect_error(write_doc(case_dir, doc), case="hello", field="gates.Max Gap", contains="lower_snake_case")


def test_file_level_problems(tmp_path: Path) -> None:
    p = tmp_path / "broken.json"
    p.write_text('{"v": 1, "cases": [\n  {"id": "a",}\n]}')
    expect_error(p, case=None, field="(file)", contains="not valid JSON")
    assert "line 2" in str(pytest.raises(CaseFileError, load_case_file, p).value)
    p.write_text(json.dumps({"v": 2, "cases": []}))
    expect_error(p, case=None, field="v", contains="unsupported case file version 2")
    expect_error(tmp_path / "absent.json", case=None, field="(file)", contains="case file not found")


def test_all_problems_reported_at_once(case_dir: Path) -> None:
    doc = good_doc()
    doc["cases"][0]["segments"][0]["wav"] = "wavs/nope.wav"
    doc["cases"][1]["segments"][1]["after"] = "previous_end"
    doc["suites"]["quick"]["cases"].append("ghost")
    with pytest.raises(CaseFileError) as info:
        load_case_file(write_doc(case_dir, doc))
    fields = {(p.case_id, p.field) for p in info.value.problems}
    assert {("hello", "segments[0].wav"), ("barge", "segments[1].after"), ("ghost", "suites.quick.cases[2]")} <= fields
    assert "3 problem(s)" in str(info.value).splitlines()[0]


# --------------------------------------------------------------------------- speech span


def test_speech_span_finds_burst_and_ignores_click() -> None:
    x = speech_like(lead_ms=420, speech_ms=730, tail_ms=500)
    start, end = measure_speech_span(x, SR)
    assert abs(start - 420) <= 10 and abs(end - 1150) <= 10
    click = np.zeros(SR, np.float32)
    click[100:260] = 0.9  # 10 ms full-scale click: shorter than a 30 ms speech run
    assert measure_speech_span(click, SR) is None
    x2 = x.copy()
    x2[16:336] += 0.9 * np.exp(-np.arange(320) / 64)  # boom in the first 20 ms
    assert measure_speech_span(x2, SR) == (start, end)


def test_speech_span_over_noise_floor_and_int16() -> None:
    rng = np.random.default_rng(3)
    x = speech_like(lead_ms=500, speech_ms=600, tail_ms=500) + 0.003 * rng.standard_normal(int(1.6 * SR)).astype(np.float32)
    start, end = measure_speech_span(x, SR)
    assert abs(start - 500) <= 15 and abs(end - 1100) <= 15
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)
    assert measure_speech_span(pcm, SR) == (start, end)
    with pytest.raises(ValueError, match="mono"):
        measure_speech_span(np.zeros((10, 2)), SR)


# --------------------------------------------------------------------------- the bundled cases


@pytest.fixture(scope="module")
def bundled():
    return load_case_file(BUNDLED)


def test_bundled_fast_suite_is_12_p0_plus_4_p1(bundled) -> None:
    fast = bundled.select("fast")
    assert len(fast) == 16
    assert sum(c.p_level == "P0" for c in fast) == 12
    assert {c.id for c in fast if c.p_level == "P1"} == {"boom_trigger", "speed_drift", "distortion_sibilant", "stutter_long_pause"}
    segs = [s for c in fast for s in c.segments]
    stops = [c.id for c in fast if any(s.expect == "stop" for s in c.segments)]
    ignores = [c.id for c in fast if any(s.expect == "ignore" for s in c.segments)]
    assert len(stops) == 1 and len(ignores) == 1
    assert all(c.p_level == "P0" for c in fast if c.id in stops + ignores)
    stop_seg = bundled.case(stops[0]).segments[1]
    assert (stop_seg.after, stop_seg.offset_ms) == ("agent_speech_start", 900)
    for s in segs:
        info = sf.info(str(s.wav_path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), s.wav_path
        assert not s.speech_span_measured, f"{s.wav_path}: annotation missing; run scripts/make_case_wavs.py"
    nightly = bundled.suites["nightly"]
    assert nightly.mode == "conversation" and nightly.turns == 20
    assert len(nightly.turn_case_ids()) == 20


def test_bundled_annotations_match_the_wavs(bundled) -> None:
    """The committed annotations are what the measurement gives on the committed WAVs
    (within one 10 ms frame: the script measures the float stem, this the int16 file).

    Exception: cases whose fault changes the level (noise, gain) are annotated on the
    clean stem, where the measurement is not masked by noise or a low level; there the
    WAV's span must still lie within 200 ms of the annotation.
    """
    for case in bundled.cases:
        tol = 200 if case.fault and case.fault.get("kind") in ("noise", "gain") else 10
        for s in case.segments:
            x, sr = sf.read(str(s.wav_path), dtype="int16")
            start, end = measure_speech_span(x, sr)
            assert abs(start - s.speech_start_ms) <= tol and abs(end - s.speech_end_ms) <= tol, (
                case.id, s.index, (s.speech_start_ms, s.speech_end_ms), (start, end))


def test_bundled_expected_silence_is_silent_between_speech(bundled) -> None:
    with_silence = [c for c in bundled.cases if c.expected_silence_ms]
    assert {c.id for c in with_silence} >= {"endpoint_pause_in_turn", "stutter_long_pause"}
    for case in with_silence:
        s = case.segments[0]
        x, sr = sf.read(str(s.wav_path), dtype="float64")
        for a, b in case.expected_silence_ms:
            assert s.speech_start_ms < a < b < s.speech_end_ms
            inside = x[int(a * sr / 1000) + 1: int(b * sr / 1000) - 1]
            assert np.sqrt(np.mean(inside ** 2)) < 10 ** (-60 / 20), (case.id, a, b)
            before = x[max(0, int(a * sr / 1000) - 320): int(a * sr / 1000)]
            after = x[int(b * sr / 1000): int(b * sr / 1000) + 320]
            assert np.max(np.abs(before)) > 0.01 and np.max(np.abs(after)) > 0.01, (case.id, a, b)
    long_pause = max(b - a for a, b in bundled.case("stutter_long_pause").expected_silence_ms)
    assert long_pause >= 1000


def test_bundled_fault_cases_carry_their_fault(bundled) -> None:
    x, sr = sf.read(str(bundled.case("boom_trigger").segments[0].wav_path), dtype="int16")
    first = np.abs(x[: sr // 50].astype(np.int32))  # the first 20 ms frame
    assert first.max() == 32767  # full-scale spike
    assert np.abs(np.diff(x[: sr // 50].astype(np.int32))).max() > 16000  # step onset
    assert np.abs(x[sr // 50: int(0.29 * sr)]).max() < 300  # then silence until the speech

    x, sr = sf.read(str(bundled.case("noise_background").segments[0].wav_path), dtype="float64")
    noise_p = np.mean(x[: int(0.29 * sr)] ** 2)
    speech = x[int(0.3 * sr): int(2.2 * sr)]
    fr = speech[: len(speech) // 160 * 160].reshape(-1, 160)
    p = np.mean(fr ** 2, axis=1)
    act = np.sqrt(p) > np.sqrt(p.max()) * 0.01
    snr_db = 10 * np.log10((np.mean(p[act]) - noise_p) / noise_p)
    assert 8.5 <= snr_db <= 11.5, snr_db

    quiet = sf.read(str(bundled.case("level_quiet_speaker").segments[0].wav_path), dtype="float64")[0]
    assert -31.0 <= 20 * np.log10(np.max(np.abs(quiet))) <= -29.0

    ignore_seg = bundled.case("turn_backchannel_ignore").segments[1]
    assert ignore_seg.speech_end_ms - ignore_seg.speech_start_ms < 500  # under LiveKit's min interruption duration


def test_bundled_expectations_follow_the_agent_rules(bundled) -> None:
    """Each case's first transcript triggers a rule whose reply is the reference reply and
    holds every expected keyword (the agent's real matcher is used)."""
    pytest.importorskip("livekit.agents")
    sys.path.insert(0, str(REPO))
    from system.agent.scripted_llm import load_rules

    rules = load_rules(REPO / "system" / "agent" / "rules.json")
    seen_rules = set()
    for case in bundled.cases:
        rule_id, reply = rules.reply_for(case.segments[0].transcript or "")
        assert rule_id != "default", case.id
        seen_rules.add(rule_id)
        words = set(re.findall(r"[a-z0-9']+", reply.lower()))
        for kw in case.expect_keywords:
            assert kw in words, (case.id, kw, reply)
        if case.reference_reply is not None:
            assert case.reference_reply == reply, case.id
        default_words = set(re.findall(r"[a-z0-9']+", rules.default.lower()))
        assert not set(case.expect_keywords) & default_words, case.id
        for s in case.segments[1:]:
            if s.expect == "stop":
                assert rules.reply_for(s.transcript or "")[0] == "stop"
    stop_case = next(c for c in bundled.cases if any(s.expect == "stop" for s in c.segments))
    assert stop_case.reference_reply is None and stop_case.expect_keywords == ()
    assert len(seen_rules) == len(bundled.cases)  # every case exercises its own rule


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install -y espeak-ng)")
def test_committed_wavs_and_annotations_are_what_the_script_makes() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    import make_case_wavs as mk

    built = {r.case_id: mk.build_case(r) for r in mk.RECIPES}
    again = mk.build_case(mk.RECIPES[5])
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(built[mk.RECIPES[5].case_id], again))
    mine = [REPO / "cases" / "all_cases.json", *sorted((REPO / "cases" / "wavs").glob("*.wav"))]
    before = {p: p.read_bytes() for p in mine}
    diffs = mk.apply(REPO / "cases", built, write=False)
    assert diffs == [], "run: python scripts/make_case_wavs.py\n" + "\n".join(diffs)
    assert {p: p.read_bytes() for p in mine} == before  # a check writes nothing
