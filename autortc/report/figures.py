"""Figures of the report (matplotlib, PNG bytes): the latency CDF and, for a failed turn,
waveform + spectrogram of pre-RTC vs post-RTC audio read from its turn folder."""

from __future__ import annotations

import io
from pathlib import Path

from autortc.results import TurnResult

__all__ = ["cdf_png", "pre_post_png"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def cdf_png(values: list[float], gate_ms: float | None) -> bytes | None:
    if not values:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    v = np.sort(np.asarray(values, dtype=float))
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.step(v, np.arange(1, v.size + 1) / v.size, where="post")
    if gate_ms is not None:
        ax.axvline(gate_ms, color="r", ls="--", label=f"gate {gate_ms:.0f} ms")
        ax.legend(loc="lower right")
    ax.set_xlabel("EoT -> first audio (ms)")
    ax.set_ylabel("fraction of turns")
    ax.grid(alpha=0.3)
    return _png(fig)


def pre_post_png(turn_dir: Path, turn: TurnResult) -> tuple[bytes | None, str]:
    from autortc.audio import AudioFileError, load_audio

    pics = []
    for name, label in (("pre_rtc.wav", "pre-RTC (agent)"), ("post_rtc_reply.wav", "post-RTC (probe)")):
        p = turn_dir / name
        if not p.exists() and name == "post_rtc_reply.wav":
            p = turn_dir / "post_rtc_full.wav"
        if not p.exists():
            pics.append((label, None))
            continue
        try:
            a = load_audio(p, sr=16000)
            pics.append((label, a.samples[: 16000 * 20]))
        except AudioFileError as exc:
            pics.append((f"{label}: {exc}", None))
    if all(x is None for _, x in pics):
        return None, f"no audio in {turn_dir}"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 2, figsize=(11, 4.5), squeeze=False)
    for col, (label, x) in enumerate(pics):
        ax_w, ax_s = axes[0][col], axes[1][col]
        ax_w.set_title(label, fontsize=9)
        if x is None:
            ax_w.text(0.5, 0.5, "missing", ha="center")
            ax_s.axis("off")
            continue
        t = np.arange(x.shape[0]) / 16000
        ax_w.plot(t, x, lw=0.4)
        ax_w.set_ylim(-1, 1)
        ax_w.set_xlim(0, max(t[-1], 0.01) if t.size else 1)
        for iv in (turn.continuity.gaps if col == 1 else []):
            ax_w.axvspan(iv.start_ms / 1000, iv.end_ms / 1000, color="r", alpha=0.25)
        if x.size >= 512:
            with np.errstate(divide="ignore"):
                ax_s.specgram(x + 1e-7, NFFT=512, Fs=16000, noverlap=384, cmap="magma", vmin=-130, vmax=-30)
        ax_s.set_xlabel("s")
        ax_s.set_ylabel("Hz")
    fig.tight_layout()
    return _png(fig), ""
