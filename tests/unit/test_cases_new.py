"""`autortc cases new`: the produced case validates, its speech span matches how the WAV was built,
the case file keeps its other cases byte-identical, and bad input names the file and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from autortc.authoring import CASE_SAMPLE_RATE, LEAD_MS, AuthoringError, add_case, load_user_wav, slug_id, speak
from autortc.cases import CaseFileError, load_case_file

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _user_recording(path: Path, *, sr: int = 44100, lead_ms: int = 400, speech_ms: int = 1200, tail_ms: int = 600) -> None:
    """A stereo float WAV at ``sr``: a -70 dBFS noise floor, then a voiced-speech-like harmonic
    complex (150 Hz fundamental, 4 Hz syllable modulation, -12 dBFS) from ``lead_ms`` for
    ``speech_ms``, then floor again.  The speech span is known by construction."""
    rng = np.random.default_rng(5)
    n = int(sr * (lead_ms + speech_ms + tail_ms) / 1000)
    x = rng.normal(0, 10 ** (-70 / 20), n)
    a, b = int(sr * lead_ms / 1000), int(sr * (lead_ms + speech_ms) / 1000)
    t = np.arange(b - a) / sr
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    voiced *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)  # syllables, never silent
    x[a:b] += 10 ** (-12 / 20) * voiced / np.max(np.abs(voiced))
    sf.write(str(path), np.stack([x, 0.8 * x], axis=1).astype(np.float32), sr, subtype="FLOAT")


def test_user_wav_case_validates_and_its_span_is_where_the_speech_was_put(tmp_path):
    rec = tmp_path / "my recording.wav"
    _user_recording(rec)
    cases = tmp_path / "mine" / "cases.json"
    made = add_case(cases, pcm=load_user_wav(rec), engine="user-wav", case_id="my_question", transcript=None,
                    p_level="P1")
    cf = load_case_file(cases)  # the whole file validates
    case = cf.case("my_question")
    seg = case.segments[0]
    assert seg.sample_rate == CASE_SAMPLE_RATE and not seg.speech_span_measured  # annotated in the file
    assert abs(seg.speech_start_ms - 400) <= 10 and abs(seg.speech_end_ms - 1600) <= 10, (seg.speech_start_ms, seg.speech_end_ms)
    assert abs(seg.duration_ms - 2200) <= 1
    info = sf.info(str(made.wav_path))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert cf.suites["user"].case_ids == ("my_question",) and case.p_level == "P1"
    assert made.run_command() == f"autortc run --cases {cases} --suite user --only my_question"


@pytest.mark.parametrize("engine", ["piper", "espeak"])
def test_text_case_from_tts_validates_with_speech_after_the_lead(tmp_path, engine):
    if engine == "espeak" and shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is part of the toolchain (scripts/make_case_wavs.py); install it")
    pcm, used = speak("What's the weather like today?", engine=engine)  # type: ignore[arg-type]
    assert used == ("piper" if engine == "piper" else "espeak-ng")
    cases = tmp_path / "cases.json"
    made = add_case(cases, pcm=pcm, engine=used, case_id=slug_id("What's the weather like today?"),
                    transcript="What's the weather like today?", keywords=["Sunny"])
    case = load_case_file(cases).case("user_whats_the_weather_like_today")
    seg = case.segments[0]
    # construction: LEAD_MS of digital zeros, then speech trimmed to its span, no tail
    x, _ = sf.read(str(made.wav_path), dtype="int16")
    lead = int(LEAD_MS * CASE_SAMPLE_RATE / 1000)
    assert not np.any(x[:lead]) and np.any(x[lead:lead + 160])
    assert LEAD_MS <= seg.speech_start_ms <= LEAD_MS + 10
    assert seg.duration_ms - 10 <= seg.speech_end_ms <= seg.duration_ms
    assert 1000 <= seg.speech_end_ms - seg.speech_start_ms <= 3000  # five words
    assert case.expect_keywords == ("sunny",) and seg.transcript == "What's the weather like today?"
    assert f"tts:{used}" in case.tags


def test_appending_to_the_bundled_file_keeps_everything_else(tmp_path):
    dst = tmp_path / "cases"
    shutil.copytree(REPO / "cases", dst, ignore=shutil.ignore_patterns("tts"))
    before = json.loads((dst / "all_cases.json").read_text())
    rec = tmp_path / "r.wav"
    _user_recording(rec, sr=48000)
    add_case(dst / "all_cases.json", pcm=load_user_wav(rec), engine="user-wav", case_id="extra", transcript="hm")
    after = json.loads((dst / "all_cases.json").read_text())
    assert after["cases"][:-1] == before["cases"] and after["cases"][-1]["id"] == "extra"
    assert after["suites"]["fast"] == before["suites"]["fast"]  # the fast suite does not grow
    assert after["suites"]["user"]["cases"] == ["extra"]
    # the file's own layout is kept: every old line survives, at most gaining the comma before an addition
    import difflib

    old_lines = (REPO / "cases" / "all_cases.json").read_text().splitlines()
    new_lines = (dst / "all_cases.json").read_text().splitlines()
    removed = [ln[2:] for ln in difflib.ndiff(old_lines, new_lines) if ln.startswith("- ")]
    assert all(ln + "," in new_lines for ln in removed), removed
    assert len(removed) <= 2
    assert len(load_case_file(dst / "all_cases.json").cases) == len(before["cases"]) + 1


def test_bad_input_names_the_file_and_field(tmp_path):
    rec = tmp_path / "r.wav"
    _user_recording(rec)
    pcm = load_user_wav(rec)
    cases = tmp_path / "cases.json"
    add_case(cases, pcm=pcm, engine="user-wav", case_id="one", transcript=None)
    with pytest.raises(AuthoringError, match=r"cases.json: cases\[0\].id: case 'one' exists"):
        add_case(cases, pcm=pcm, engine="user-wav", case_id="one", transcript=None)
    with pytest.raises(AuthoringError, match=r"--id '../x'"):
        add_case(cases, pcm=pcm, engine="user-wav", case_id="../x", transcript=None)
    # a field the schema rejects: nothing is written, the error names the real file, case and field
    text = cases.read_text()
    with pytest.raises(CaseFileError, match=r"cases.json: case 'two': p_level"):
        add_case(cases, pcm=pcm, engine="user-wav", case_id="two", transcript=None, p_level="P7")
    assert cases.read_text() == text and not (tmp_path / "wavs" / "two.wav").exists()
    with pytest.raises(AuthoringError, match="no speech"):
        add_case(cases, pcm=np.zeros(16000, np.int16), engine="user-wav", case_id="silent", transcript=None)
    with pytest.raises(AuthoringError, match=r"--wav .*nope.wav: file not found"):
        load_user_wav(tmp_path / "nope.wav")
    (tmp_path / "broken.json").write_text("[1, 2]")
    with pytest.raises(AuthoringError, match=r"broken.json: cases: expected a JSON object"):
        add_case(tmp_path / "broken.json", pcm=pcm, engine="user-wav", case_id="x", transcript=None)


def test_cli_makes_a_case_from_a_wav_and_says_how_to_run_it(tmp_path):
    from autortc.commands import cases_new

    app = typer.Typer()
    cases_new.register(app)
    rec = tmp_path / "hello.wav"
    _user_recording(rec, sr=16000)
    out = CliRunner().invoke(app, ["cases", "new", "--wav", str(rec), "--text", "Hello there",
                                   "--cases", str(tmp_path / "c.json"), "--priority", "P2"])
    assert out.exit_code == 0, out.output
    assert "case 'user_hello_there'" in out.output and "speech 400-1600 ms" in out.output
    assert f"autortc run --cases {tmp_path / 'c.json'} --suite user --only user_hello_there" in out.output
    bad = CliRunner().invoke(app, ["cases", "new", "--cases", str(tmp_path / "c.json")])
    assert bad.exit_code != 0 and "--text" in bad.output
