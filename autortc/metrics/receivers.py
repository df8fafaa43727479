"""Two receivers on the same turns: the browser page's USER_KPI against the probe's EoT → first audio.

On ``--via browser`` every turn is heard twice: by the page (``browser.user_kpi_raw_ms``: its
own end of speech → first playout, on the page's clock) and by the probe bot beside it
(``latency.eot_to_first_audio_ms``: the same end of speech, clock-synced to the host, → first
audible sample the probe received).  Both measure the *same* reply, so their difference is
the instruments' disagreement (the page's jitter buffer and output path vs the probe's
receive path, plus the clock sync), not agent variance (issue 17 §3 "two receivers").

Pure: ``agreement(pairs)`` over :class:`ReceiverPair` records; ``pairs_from_turns`` builds
them from ``TurnResult`` latency blocks.  A turn counts only when *both* measured it; the
others are counted apart (probe only, browser only, neither), never imputed.

* bias   = median(browser − probe) with a 95 % percentile bootstrap interval
  (``scipy.stats.bootstrap``, 9999 resamples, fixed seed, as the bench's delay recovery);
* spread = IQR and sample SD of the differences;
* sync   = the clock sync's round trip per turn: the page → host conversion is good to RTT/2,
  which bounds how much of any one difference the clock can explain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

N_RESAMPLES = 9999


@dataclass(frozen=True)
class ReceiverPair:
    """One turn as both receivers measured it (ms; ``None`` = that receiver has no value)."""

    key: str
    probe_ms: float | None
    browser_ms: float | None
    clock_sync_rtt_ms: float | None = None


@dataclass(frozen=True)
class ReceiverAgreement:
    """Browser − probe over the turns both measured (ms)."""

    turns: int  # turns offered
    paired: int  # both receivers measured
    probe_only: int
    browser_only: int
    neither: int
    bias_ms: float | None  # median(browser - probe)
    bias_ci95_ms: tuple[float, float] | None
    mean_ms: float | None
    sd_ms: float | None
    iqr_ms: float | None
    p25_ms: float | None
    p75_ms: float | None
    min_ms: float | None
    max_ms: float | None
    sync_rtt_median_ms: float | None  # over the paired turns
    sync_error_max_ms: float | None  # max RTT / 2: the clock sync's bound on any one difference
    diffs_ms: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bias_ci95_ms"] = list(self.bias_ci95_ms) if self.bias_ci95_ms else None
        d["diffs_ms"] = [round(x, 2) for x in self.diffs_ms]
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 2)
        return d


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def median_ci(xs: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of the median (``None`` below two values; a point
    interval when every value is equal, where the bootstrap is degenerate)."""
    if len(xs) < 2:
        return None
    a = np.asarray(xs, dtype=float)
    if np.all(a == a[0]):
        return float(a[0]), float(a[0])
    res = stats.bootstrap((a,), np.median, confidence_level=confidence, n_resamples=N_RESAMPLES,
                          method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def agreement(pairs: Iterable[ReceiverPair], *, confidence: float = 0.95, seed: int = 0) -> ReceiverAgreement:
    """Bias (median browser − probe, bootstrap CI) and spread (IQR, SD) over the turns both measured."""
    pairs = list(pairs)
    both = [p for p in pairs if _ok(p.probe_ms) and _ok(p.browser_ms)]
    probe_only = sum(1 for p in pairs if _ok(p.probe_ms) and not _ok(p.browser_ms))
    browser_only = sum(1 for p in pairs if _ok(p.browser_ms) and not _ok(p.probe_ms))
    diffs = [float(p.browser_ms) - float(p.probe_ms) for p in both]  # type: ignore[arg-type]
    rtts = [float(p.clock_sync_rtt_ms) for p in both if _ok(p.clock_sync_rtt_ms)]  # type: ignore[arg-type]
    n = len(diffs)
    a = np.asarray(diffs, dtype=float)
    q25, q75 = (float(np.percentile(a, 25)), float(np.percentile(a, 75))) if n else (None, None)
    return ReceiverAgreement(
        turns=len(pairs), paired=n, probe_only=probe_only, browser_only=browser_only,
        neither=len(pairs) - n - probe_only - browser_only,
        bias_ms=float(np.median(a)) if n else None,
        bias_ci95_ms=median_ci(diffs, confidence=confidence, seed=seed),
        mean_ms=float(a.mean()) if n else None,
        sd_ms=float(a.std(ddof=1)) if n > 1 else None,
        iqr_ms=(q75 - q25) if n else None,  # type: ignore[operator]
        p25_ms=q25, p75_ms=q75,
        min_ms=float(a.min()) if n else None, max_ms=float(a.max()) if n else None,
        sync_rtt_median_ms=float(np.median(rtts)) if rtts else None,
        sync_error_max_ms=max(rtts) / 2.0 if rtts else None,
        diffs_ms=tuple(diffs),
    )


def pairs_from_turns(turns: Iterable[tuple[str, Any]]) -> list[ReceiverPair]:
    """``(key, TurnResult)`` → pairs: the probe's ``eot_to_first_audio_ms`` (``None`` on a
    premature turn) and the page's raw USER_KPI (``latency.user_kpi_raw_ms``: negative on
    talk-over, never clamped, so a disagreement shows as one)."""
    out = []
    for key, t in turns:
        lat = t.latency
        out.append(ReceiverPair(key=key, probe_ms=lat.eot_to_first_audio_ms, browser_ms=lat.user_kpi_raw_ms,
                                clock_sync_rtt_ms=lat.clock_sync_rtt_ms))
    return out


def summary_line(a: ReceiverAgreement | dict[str, Any]) -> str:
    """One line for the terminal, the report and the docs."""
    d = a.to_dict() if isinstance(a, ReceiverAgreement) else a

    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.1f}"

    counts = (f"{d['paired']} paired of {d['turns']} turns (probe only {d['probe_only']}, browser only "
              f"{d['browser_only']}, neither {d['neither']})")
    if not d["paired"]:
        return f"Two receivers (browser USER_KPI − probe EoT → first audio): no turn measured by both; {counts}."
    ci = d.get("bias_ci95_ms")
    sync = (f"; clock sync RTT median {f(d.get('sync_rtt_median_ms'))} ms, so ≤ {f(d.get('sync_error_max_ms'))} ms "
            "of any difference is the clock" if d.get("sync_error_max_ms") is not None else "")
    return (f"Two receivers (browser USER_KPI − probe EoT → first audio, same turns): bias {f(d['bias_ms'])} ms "
            f"(95 % bootstrap {f(ci[0]) if ci else '–'} … {f(ci[1]) if ci else '–'}), IQR {f(d['iqr_ms'])} ms "
            f"({f(d['p25_ms'])} … {f(d['p75_ms'])}), SD {f(d['sd_ms'])} ms, range {f(d['min_ms'])} … {f(d['max_ms'])}; "
            f"{counts}{sync}.")
