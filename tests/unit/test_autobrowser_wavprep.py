"""autobrowser.wavprep: the fake-capture WAV is 48 kHz mono int16, lead + speech + 10 s pad."""

import numpy as np
import pytest
import soundfile as sf

from autobrowser.wavprep import prepare_chromium_wav

pytestmark = pytest.mark.unit


def write_tone(path, sr, seconds, channels=1, amp=0.3):
    n = int(sr * seconds)
    x = amp * np.sin(2 * np.pi * 300 * np.arange(n) / sr)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    sf.write(str(path), x, sr, subtype="PCM_16")
    return n


def test_resamples_to_48k_mono_and_pads(tmp_path):
    src = tmp_path / "case.wav"
    write_tone(src, 16_000, 1.5, channels=2)
    p = prepare_chromium_wav(src, tmp_path / "cap.wav", lead_s=0.5, pad_s=10.0)
    info = sf.info(str(p.path))
    assert (info.samplerate, info.channels, info.subtype) == (48_000, 1, "PCM_16")
    assert p.lead_samples == 24_000 and p.pad_samples == 480_000
    assert info.frames == p.n_samples == 24_000 + 72_000 + 480_000
    y, _ = sf.read(str(p.path), dtype="int16")
    assert not y[:24_000].any() and not y[-480_000:].any()
    # speech sits where the source put it, within the resampler's ringing
    assert abs(p.speech_onset_sample - 24_000) <= 48
    assert abs(p.speech_end_sample - (24_000 + 72_000)) <= 48
    assert p.loop_s == pytest.approx(p.n_samples / 48_000)


def test_48k_input_keeps_its_samples(tmp_path):
    src = tmp_path / "case.wav"
    write_tone(src, 48_000, 1.0)
    x, _ = sf.read(str(src), dtype="int16")
    p = prepare_chromium_wav(src, tmp_path / "cap.wav", lead_s=0.0, pad_s=2.0)
    y, _ = sf.read(str(p.path), dtype="int16")
    assert np.array_equal(y[: len(x)], x)
    assert len(y) == len(x) + 96_000


def test_silent_case_is_rejected_with_the_file_named(tmp_path):
    src = tmp_path / "quiet.wav"
    sf.write(str(src), np.zeros(16_000), 16_000)
    with pytest.raises(ValueError, match="quiet.wav.*no signal"):
        prepare_chromium_wav(src, tmp_path / "cap.wav")


def test_unreadable_case_is_rejected_with_the_file_named(tmp_path):
    src = tmp_path / "bad.wav"
    src.write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="bad.wav"):
        prepare_chromium_wav(src, tmp_path / "cap.wav")


def test_quiet_speaker_gets_a_threshold_it_can_cross(tmp_path):
    src = tmp_path / "quiet.wav"
    write_tone(src, 16_000, 1.0, amp=0.012)  # RMS 0.0085 < 0.015
    p = prepare_chromium_wav(src, tmp_path / "cap.wav", lead_s=0.5, pad_s=1.0)
    assert p.detector.threshold_rms == pytest.approx(0.012 / np.sqrt(2) / 2, rel=0.02)
    assert len(p.segments) == 1 and abs(p.speech_onset_sample - 24_000) <= 48


def test_annotated_end_of_speech_is_kept_in_capture_samples(tmp_path):
    src = tmp_path / "case.wav"
    write_tone(src, 16_000, 1.5)
    p = prepare_chromium_wav(src, tmp_path / "cap.wav", lead_s=0.5, pad_s=1.0, speech_end_ms=1200)
    assert p.eot_sample == 24_000 + 57_600 and p.user_eot_sample == p.eot_sample
    with pytest.raises(ValueError, match="speech_end_ms"):
        prepare_chromium_wav(src, tmp_path / "cap2.wav", speech_end_ms=4000)
