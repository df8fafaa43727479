"""Real Opus round trip (libopus through PyAV) for tests: clean speech as the user would hear it.

``opus_roundtrip(x, sr) -> (y, 48000)`` encodes mono float32 ``x`` with libopus at 48 kHz in
20 ms frames (the WebRTC default; ``bitrate`` bit/s) and decodes it again; ``y`` is time-aligned
to ``x`` resampled to 48 kHz (the codec's pre-skip is removed).  Raises ``RuntimeError`` naming
the codec when PyAV has no libopus.
"""

from __future__ import annotations

import numpy as np

__all__ = ["opus_roundtrip"]


def opus_roundtrip(x: np.ndarray, sr: int, *, bitrate: int = 32000) -> tuple[np.ndarray, int]:
    import av

    from autortc.audio import resample

    if "libopus" not in av.codecs_available:
        raise RuntimeError("PyAV has no 'libopus' codec: cannot run the Opus round trip")
    y48 = resample(np.asarray(x, np.float32), sr, 48000) if sr != 48000 else np.asarray(x, np.float32)
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = bitrate
    enc.options = {"frame_duration": "20", "application": "voip"}
    enc.open()
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate = 48000
    dec.layout = "mono"
    dec.format = "s16"
    dec.open()
    n = 960
    pcm = np.clip(np.round(y48 * 32767.0), -32768, 32767).astype(np.int16)
    pad = (-pcm.shape[0]) % n
    pcm = np.concatenate([pcm, np.zeros(pad + 2 * n, np.int16)])
    out: list[np.ndarray] = []
    pts = 0
    for i in range(0, pcm.shape[0], n):
        fr = av.AudioFrame.from_ndarray(pcm[i:i + n].reshape(1, -1), format="s16", layout="mono")
        fr.sample_rate = 48000
        fr.pts = pts
        pts += n
        for pkt in enc.encode(fr):
            for d in dec.decode(pkt):
                out.append(d.to_ndarray().reshape(-1))
    for pkt in enc.encode(None):
        for d in dec.decode(pkt):
            out.append(d.to_ndarray().reshape(-1))
    y = np.concatenate(out).astype(np.float32) / 32768.0
    skip = int(getattr(enc, "delay", 0) or 312)
    y = y[skip:skip + y48.shape[0]]
    if y.shape[0] < y48.shape[0]:
        y = np.concatenate([y, np.zeros(y48.shape[0] - y.shape[0], np.float32)])
    return y, 48000
