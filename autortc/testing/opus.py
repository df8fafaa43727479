"""Real Opus round trip (libopus) for tests: clean speech as the user would hear it, and lost
packets concealed the way a receiver conceals them.

``opus_roundtrip(x, sr) -> (y, 48000)`` encodes mono float32 ``x`` with libopus at 48 kHz in
20 ms frames (the WebRTC default; ``bitrate`` bit/s) and decodes it again; ``y`` is time-aligned
to ``x`` resampled to 48 kHz (the codec's pre-skip is removed).  Raises ``RuntimeError`` naming
the codec when PyAV has no libopus.

``lost=(k, ...)`` drops the encoded packets ``k`` (packet ``k`` sounds over samples
``[k * 960 - 312, (k + 1) * 960 - 312)`` of ``x`` at 48 kHz: the encoder's 312-sample look-ahead,
:func:`lost_span`) and conceals them as ``conceal`` says:

* ``"plc"``: libopus's own packet-loss concealment (``opus_decode`` with no data): the decoder
  extends the last pitch periods and fades them -- the frame is *smeared*;
* ``"repeat"``: the previous frame's decoded audio is played again (the decoder still runs its
  PLC so its state advances as a receiver's would) -- the frame is *repeated*;
* ``"zero"``: silence (a receiver without PLC).

Decoding with loss goes through libopus itself (ctypes; PyAV cannot hand the decoder a missing
packet); without loss it is bit-exact with PyAV's decoder (checked: max difference 1 LSB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["opus_roundtrip", "lost_span", "FRAME_48K"]

FRAME_48K = 960  # one 20 ms Opus frame at 48 kHz
_PRE_SKIP = 312  # libopus's encoder look-ahead at 48 kHz (PyAV does not report it)


def lost_span(k: int) -> tuple[int, int]:
    """Samples ``[a, b)`` of the input (48 kHz) that lost packet ``k`` would have carried."""
    return k * FRAME_48K - _PRE_SKIP, (k + 1) * FRAME_48K - _PRE_SKIP


def _encode(x: np.ndarray, sr: int, bitrate: int) -> tuple[list[bytes], int, int]:
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
    n = FRAME_48K
    pcm = np.clip(np.round(y48 * 32767.0), -32768, 32767).astype(np.int16)
    pad = (-pcm.shape[0]) % n
    pcm = np.concatenate([pcm, np.zeros(pad + 2 * n, np.int16)])
    pkts: list[bytes] = []
    pts = 0
    for i in range(0, pcm.shape[0], n):
        fr = av.AudioFrame.from_ndarray(pcm[i:i + n].reshape(1, -1), format="s16", layout="mono")
        fr.sample_rate = 48000
        fr.pts = pts
        pts += n
        pkts += [bytes(p) for p in enc.encode(fr)]
    pkts += [bytes(p) for p in enc.encode(None)]
    skip = int(getattr(enc, "delay", 0) or _PRE_SKIP)
    return pkts, skip, y48.shape[0]


def _libopus() -> ctypes.CDLL:
    """libopus: PyAV's own copy (the one its codec uses), else the system's."""
    import av

    libs = sorted((Path(av.__file__).parent.parent / "av.libs").glob("libopus*.so*"))
    name = str(libs[0]) if libs else ctypes.util.find_library("opus")
    if not name:
        raise RuntimeError("libopus not found (neither in PyAV's av.libs nor on the system)")
    lib = ctypes.CDLL(name)
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    return lib


def _decode(pkts: list[bytes], lost: set[int], conceal: str) -> np.ndarray:
    lib = _libopus()
    err = ctypes.c_int()
    dec = lib.opus_decoder_create(48000, 1, ctypes.byref(err))
    if err.value != 0 or not dec:
        raise RuntimeError(f"opus_decoder_create failed ({err.value})")
    buf = (ctypes.c_int16 * 5760)()
    out: list[np.ndarray] = []
    try:
        for k, p in enumerate(pkts):
            if k in lost:
                got = lib.opus_decode(dec, None, 0, buf, FRAME_48K, 0)  # PLC: no data
            else:
                got = lib.opus_decode(dec, p, len(p), buf, 5760, 0)
            if got < 0:
                raise RuntimeError(f"opus_decode of packet {k} failed ({got})")
            fr = np.frombuffer(buf, np.int16, count=got).copy()
            if k in lost and conceal == "repeat" and out:
                fr = out[-1].copy()
            elif k in lost and conceal == "zero":
                fr = np.zeros_like(fr)
            out.append(fr)
    finally:
        lib.opus_decoder_destroy(dec)
    return np.concatenate(out)


def opus_roundtrip(x: np.ndarray, sr: int, *, bitrate: int = 32000, lost: Sequence[int] = (),
                   conceal: str = "plc") -> tuple[np.ndarray, int]:
    if conceal not in ("plc", "repeat", "zero"):
        raise ValueError(f"conceal: expected 'plc', 'repeat' or 'zero', got {conceal!r}")
    pkts, skip, n = _encode(x, sr, bitrate)
    if lost:
        # packet k holds the frame the encoder was given k-th; the decoder's output lags the input
        # by the pre-skip, so packet k sounds over input samples [k*960 - 312, (k+1)*960 - 312)
        pcm = _decode(pkts, {int(k) for k in lost}, conceal)
    else:
        import av

        dec = av.CodecContext.create("libopus", "r")
        dec.sample_rate = 48000
        dec.layout = "mono"
        dec.format = "s16"
        dec.open()
        out: list[np.ndarray] = []
        for p in pkts:
            for d in dec.decode(av.Packet(p)):
                out.append(d.to_ndarray().reshape(-1))
        pcm = np.concatenate(out)
    y = pcm.astype(np.float32) / 32768.0
    y = y[skip:skip + n]
    if y.shape[0] < n:
        y = np.concatenate([y, np.zeros(n - y.shape[0], np.float32)])
    return y, 48000
