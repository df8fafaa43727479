import numpy as np
import pytest

from autortc.metrics.fingerprints import (detect_repeats, detect_spikes, drift_ratio, hf_energy_ratio,
                                          hf_ratio_drop, peak_derivative_max)
from autortc.testing.faults import boom, hf_loss, make_speech, speed_drift, stutter

pytestmark = pytest.mark.unit

SR = 16000


@pytest.fixture(scope="module")
def speeches():
    return [make_speech(SR, seed=s) for s in (10, 11)]


def test_clean_has_no_spikes_and_no_repeats(speeches):
    for s in speeches:
        assert detect_spikes(s.samples, SR) == []
        assert detect_repeats(s.samples, SR) == []


@pytest.mark.parametrize("i", [0, 1])
def test_boom_20ms_found(speeches, i):
    s = speeches[i]
    at = s.speech_points_ms(1, rng_seed=i)[0]
    y, f = boom(s.samples, SR, at, 20.0)
    sp = detect_spikes(y, SR)
    assert len(sp) == 1, sp
    assert abs(sp[0].start_ms - f.start_ms) <= 10 and abs(sp[0].end_ms - f.end_ms) <= 10
    # the onset is a step of about the boom amplitude (0.95) minus the speech under it
    assert peak_derivative_max(y) >= 0.8


def test_boom_in_silence_found(speeches):
    """A first-frame pop before any speech (missing fade-in)."""
    s = speeches[0]
    y, f = boom(s.samples, SR, 50.0, 20.0)
    sp = detect_spikes(y, SR)
    assert len(sp) == 1 and abs(sp[0].start_ms - 50.0) <= 10 and abs(sp[0].end_ms - 70.0) <= 10


@pytest.mark.parametrize("ratio", [1.03, 0.97])
def test_speed_drift_within_10_percent(speeches, ratio):
    s = speeches[0]
    y, f = speed_drift(s.samples, SR, ratio)
    got = drift_ratio(s.samples, y, SR)
    assert got - 1 == pytest.approx(f.value - 1, rel=0.10)
    assert drift_ratio(s.samples, s.samples, SR) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("gain", [0.0, 0.5])
def test_hf_loss_within_10_percent(speeches, gain):
    s = speeches[1]
    y, f = hf_loss(s.samples, SR, gain=gain)
    got = hf_ratio_drop(s.samples, y, SR)
    assert got == pytest.approx(f.value, rel=0.10)
    assert abs(hf_ratio_drop(s.samples, s.samples, SR)) < 0.01
    assert hf_energy_ratio(s.samples, SR) > 0.01  # the corpus really has 4-8 kHz energy


def test_hf_ratio_across_sample_rates(speeches):
    from autortc.audio import resample

    s = speeches[1]
    up = resample(s.samples, SR, 48000)
    assert abs(hf_ratio_drop(s.samples, up, SR, 48000)) < 0.05
    assert hf_energy_ratio(np.zeros(8000), 8000) is None  # band above Nyquist


@pytest.mark.parametrize("chunk_ms,repeats", [(60, 2), (120, 1)])
def test_stutter_found(speeches, chunk_ms, repeats):
    s = speeches[0]
    at = s.fault_points_ms(chunk_ms, 1, rng_seed=chunk_ms)[0]
    y, f = stutter(s.samples, SR, at, chunk_ms, repeats)
    r = detect_repeats(y, SR)
    assert len(r) == 1, r
    assert abs(r[0].start_ms - f.start_ms) <= 10 and abs(r[0].end_ms - f.end_ms) <= 10, (r, f)
    assert r[0].period_ms == pytest.approx(chunk_ms, rel=0.10)


def test_clean_speech_has_no_frame_repeats(speeches):
    from autortc.metrics.fingerprints import detect_frame_repeats

    for s in speeches:
        assert detect_frame_repeats(s.samples, SR) == []


def test_a_repeated_opus_frame_is_found_where_it_was_played_and_nowhere_else():
    """Piper speech (cases/tts/gold) through libopus; packet k lost and concealed by playing the
    previous frame again (autortc.testing.opus).  The repeat must be found on the lost packet's span;
    the lossless round trip must give none (concealment_bench.py measures the real-path false alarms)."""
    from pathlib import Path

    import soundfile as sf

    from autortc.metrics.fingerprints import all_repeats, detect_frame_repeats
    from autortc.testing import opus

    pytest.importorskip("av")
    x, sr = sf.read(Path(__file__).resolve().parents[2] / "cases" / "tts" / "gold" / "long_01.wav", dtype="float32")
    clean = opus.opus_roundtrip(x, sr)[0]
    assert detect_frame_repeats(clean, 48000) == []
    tried = 0
    for k in (60, 120, 150):
        a, b = opus.lost_span(k)
        if np.sqrt(np.mean(clean[a - 960:b + 960] ** 2)) < 0.03:
            continue  # not inside speech
        tried += 1
        y = opus.opus_roundtrip(x, sr, lost=[k], conceal="repeat")[0]
        found = [r for r in all_repeats(y, 48000) if a / 48 - 30 <= r.start_ms <= b / 48 + 30]
        assert found, (k, a / 48, all_repeats(y, 48000))
        assert found[0].period_ms == pytest.approx(20.0, abs=0.5)
    assert tried >= 2


def test_a_swelling_periodic_vowel_is_no_frame_repeat():
    """A 200 Hz voiced sound repeats every 5 ms, so also every 20 ms (NCC 1.0); rising 3 dB per 20 ms,
    as a vowel's onset does, it is no copy of the frame before it: the level match keeps it out."""
    from autortc.metrics.fingerprints import detect_frame_repeats

    t = np.arange(int(0.3 * SR)) / SR
    wave = sum(np.sin(2 * np.pi * 200 * h * t) / h for h in range(1, 6))
    x = (0.05 * wave * 10 ** (3 / 20 * t / 0.020)).astype(np.float32)
    x = x / np.abs(x).max() * 0.5
    assert detect_frame_repeats(x, SR) == []


def _gold48(name: str) -> np.ndarray:
    """A gold sentence of ``cases/tts/gold`` (``name`` without .wav) as (n,) float32 at 48 kHz, as the agent's copy."""
    from pathlib import Path

    import soundfile as sf

    from autortc.audio import resample

    x, sr = sf.read(Path(__file__).resolve().parents[2] / "cases" / "tts" / "gold" / f"{name}.wav", dtype="float32")
    return resample(x, sr, 48000).astype(np.float32)


def _vowel(sr: int, seconds: float, noise: float, seed: int) -> np.ndarray:
    """A steady vowel: harmonics of 125 Hz (period 8 ms, so every 40 ms lag is 5 periods) plus white
    noise ``noise`` times the harmonics' RMS; its NCC at a 40 ms lag is 1 / (1 + noise**2)."""
    t = np.arange(int(sr * seconds)) / sr
    v = sum(np.sin(2 * np.pi * 125 * k * t + k) / k for k in range(1, 8))
    v = v / np.sqrt(np.mean(v * v))
    x = 0.1 * (v + noise * np.random.default_rng(seed).standard_normal(v.size))
    pad = np.zeros(int(0.3 * sr))  # silence around it, as around a word (the detector's floor is adaptive)
    return np.concatenate([pad, x, pad]).astype(np.float32)


def test_a_steady_vowel_the_codec_smoothed_over_the_threshold_is_content_not_a_repeat():
    from autortc.metrics.fingerprints import codec_crossings

    # noise 0.25 / 0.20 of the vowel's RMS: NCC at 40 ms just under / just over 0.98 (the detector
    # resamples to 8 kHz, which halves the white noise), as rs1's 0.974 / 0.983
    copy = _vowel(SR, 0.6, noise=0.25, seed=1)
    heard = _vowel(SR, 0.6, noise=0.20, seed=2)
    reps = detect_repeats(heard, SR)
    assert reps and not detect_repeats(copy, SR)
    assert codec_crossings(reps, copy, SR, 0.0) == reps
    # a copy whose vowel is far less periodic there does not explain the heard hit
    assert codec_crossings(reps, _vowel(SR, 0.6, noise=0.6, seed=1), SR, 0.0) == []


def test_a_replayed_chunk_and_the_agents_own_repeat_are_not_codec_crossings(speeches):
    from autortc.metrics.fingerprints import codec_crossings

    s = speeches[0]
    at = s.fault_points_ms(60, 1, rng_seed=60)[0]
    heard, _ = stutter(s.samples, SR, at, 60, 1)  # the path played 60 ms twice; the copy is clean speech
    reps = detect_repeats(heard, SR)
    assert len(reps) == 1
    assert codec_crossings(reps, s.samples, SR, 0.0) == []  # the copy is shorter after the repeat: same start
    assert codec_crossings(reps, heard, SR, 0.0) == []  # the agent's own copy has it: counted, attributed


def test_the_agents_own_repeat_is_found_where_the_user_hears_it_after_opus():
    """A 40 ms chunk the agent played twice (in its copy), then libopus: the codec can pull the heard
    NCC under REPEAT_NCC (fb-bots-s8: 0.974), so the copy says where to look and the heard audio
    whether the user got it. A clean copy through the same codec gives nothing."""
    from autortc.metrics.fingerprints import all_repeats
    from autortc.testing import opus

    pytest.importorskip("av")
    x48 = _gold48("long_01")
    clean_heard = opus.opus_roundtrip(x48, 48000)[0][: x48.size]
    assert all_repeats(clean_heard, 48000, ref=x48) == []
    found = 0
    for at_ms in (450.0, 1050.0, 1650.0, 2250.0):
        a, n = int(at_ms * 48), 40 * 48
        if np.sqrt(np.mean(x48[a - n:a + 2 * n] ** 2)) < 0.03:
            continue  # not inside speech
        copy = np.concatenate([x48[:a + n], x48[a:a + n], x48[a + n:]])
        heard = opus.opus_roundtrip(copy, 48000)[0][: copy.size]
        hits = [r for r in all_repeats(heard, 48000, ref=copy) if at_ms + 20 <= r.end_ms and r.start_ms <= at_ms + 100]
        assert hits, (at_ms, all_repeats(heard, 48000, ref=copy))
        found += 1
    assert found >= 2


@pytest.mark.parametrize("name,at_ms", [("long_01", 5250.0), ("long_02", 2550.0), ("numbers_02", 1350.0)])
def test_the_agents_repeat_in_a_quiet_stretch_reaches_the_user_although_the_codec_drops_its_waveform(name, at_ms):
    """40 ms the agent played twice in a quiet or unvoiced stretch, then libopus: the heard NCC at the copy's
    repeat falls to 0.00-0.89 (the codec keeps the sound, not the samples; faultbench fb-bots-s12 missed
    repeat_40 this way), yet the user hears the repeat: it must be found. The same heard audio with the
    replayed chunk lost on the way is a hole, not the agent's repeat delivered."""
    from autortc.metrics.fingerprints import all_repeats, copy_repeats_heard
    from autortc.testing import opus

    pytest.importorskip("av")
    x48 = _gold48(name)
    a, n = int(at_ms * 48), 40 * 48
    copy = np.concatenate([x48[:a + n], x48[a:a + n], x48[a + n:]])
    assert [q for q in detect_repeats(copy, 48000) if q.start_ms <= at_ms + 85 and q.end_ms >= at_ms + 35]
    heard = opus.opus_roundtrip(copy, 48000)[0][: copy.size]

    def here(reps):
        return [r for r in reps if at_ms + 20 <= r.end_ms and r.start_ms <= at_ms + 100]

    assert here(all_repeats(heard, 48000, ref=copy)), all_repeats(heard, 48000, ref=copy)
    lost = heard.copy()
    lost[a + n:a + 2 * n] = 0.0  # the path lost the replayed chunk
    assert not here(copy_repeats_heard(lost, copy, 48000, 0.0))


@pytest.mark.parametrize("name,at_ms", [("long_01", 1890.0), ("numbers_01", 550.0), ("punct_02", 450.0),
                                        ("long_03", 1550.0)])
def test_the_agents_repeat_in_an_unvoiced_stretch_is_searched_by_its_full_band_level(name, at_ms):
    """40 ms the agent played twice where the sound is a fricative: -27...-35 dBFS in full band, under the
    loudness gate (-40 dBFS) below 4 kHz, the band the repeat search runs in (browser faultbench
    fb-browser-s16 b009 missed repeat_40 so). The copy's search gates by the full band; through libopus the
    user hears the repeat, and with the replayed chunk lost on the way, none."""
    from autortc.audio import resample
    from autortc.metrics.fingerprints import all_repeats, copy_repeats_heard
    from autortc.testing import opus

    pytest.importorskip("av")
    x48 = _gold48(name)
    a, n = int(at_ms * 48), 40 * 48
    band = resample(x48[a:a + n], 48000, 8000)
    assert 20 * np.log10(np.sqrt(np.mean(x48[a:a + n] ** 2))) > -36 > -42 > 20 * np.log10(np.sqrt(np.mean(band ** 2)))
    copy = np.concatenate([x48[:a + n], x48[a:a + n], x48[a + n:]])

    def here(reps):
        return [r for r in reps if at_ms + 20 <= r.end_ms and r.start_ms <= at_ms + 100]

    assert not here(detect_repeats(copy, 48000))  # the band's gate alone does not search it
    heard = opus.opus_roundtrip(copy, 48000)[0][: copy.size]
    assert here(all_repeats(heard, 48000, ref=copy)), all_repeats(heard, 48000, ref=copy)
    lost = heard.copy()
    lost[a + n:a + 2 * n] = 0.0
    assert not here(copy_repeats_heard(lost, copy, 48000, 0.0))


@pytest.mark.parametrize("name", ["long_01", "long_02", "long_03", "numbers_01", "numbers_02", "numbers_03",
                                  "punct_01", "punct_02", "punct_03", "short_01", "short_02", "short_03"])
def test_a_clean_reply_through_opus_has_no_repeat(name):
    """The gold sentences as the agent's copy, through libopus, nothing planted: no repeat, heard or the copy's."""
    from autortc.metrics.fingerprints import all_repeats
    from autortc.testing import opus

    pytest.importorskip("av")
    x48 = _gold48(name)
    heard = opus.opus_roundtrip(x48, 48000)[0][: x48.size]
    assert all_repeats(heard, 48000, ref=x48) == []
