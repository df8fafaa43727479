"""The bench plan: which turn gets which fault, with random positions from one printed seed.

Nothing is hand-picked: ``make_plan(cases, seed=...)`` draws every repeat's case and
``at_ms`` from ``numpy.random.default_rng(seed)``, the clean turns cycle over the very
cases the faults use, and the run order is shuffled (so a slow minute of the machine
does not land on one fault). The same seed and cases give the same plan, item for item.

Each ``BenchItem.metadata()`` is the room/dispatch metadata the bundled agent parses
(``system/agent/faults.py``): ``{"case_id": ..., "fault": {...}}`` (no ``fault``: clean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autortc.faultbench.catalogue import CATALOGUE, FaultEntry


class PlanError(ValueError):
    """The bench cannot be planned (no case fits a fault, bad counts)."""


@dataclass(frozen=True)
class BenchCase:
    """What the plan needs of a case: id, level, tags, keywords and the user's speech length.

    ``respond_only``: the case has exactly one segment and it expects a reply (the faults
    without ``needs`` go only to these). ``user_speech_ms``: first segment's speech span.
    """

    id: str
    p_level: str
    tags: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    user_speech_ms: float | None = None
    respond_only: bool = True
    user_sound_to_eot_ms: float | None = None

    @staticmethod
    def sound_to_eot_ms(seg: Any) -> float | None:
        """From the segment WAV's first sound (``autortc.protocol.sound.SoundOnset``, the rule the agent
        applies to the audio it receives) to its ``speech_end_ms``; None without a readable WAV."""
        path = getattr(seg, "wav_path", None)
        if path is None:
            return None
        import soundfile as sf

        from autortc.audio.energy import first_sound_ms

        x, sr = sf.read(str(path), dtype="int16", always_2d=True)
        first = first_sound_ms(x[:, 0], sr)
        if first is None or first >= seg.speech_end_ms:
            return None
        return float(seg.speech_end_ms - first)

    @classmethod
    def from_case(cls, case: Any) -> BenchCase:
        """From an ``autortc.cases.Case`` (duck-typed: id, p_level, tags, expect_keywords, segments)."""
        segs = tuple(case.segments)
        first = segs[0]
        return cls(
            id=case.id,
            p_level=case.p_level,
            tags=tuple(case.tags),
            keywords=tuple(case.expect_keywords),
            user_speech_ms=float(first.speech_end_ms - first.speech_start_ms),
            respond_only=len(segs) == 1 and first.expect == "respond",
            user_sound_to_eot_ms=cls.sound_to_eot_ms(first),
        )


@dataclass(frozen=True)
class BenchItem:
    """One turn of the bench. ``fault`` is None for a clean turn; ``pair`` ties delay_300/600 turns."""

    index: int
    case_id: str
    fault: str | None
    spec: dict[str, Any] | None
    repeat: int
    pair: int | None = None

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"case_id": self.case_id, "bench_item": self.index}
        if self.spec is not None:
            meta["fault"] = dict(self.spec)
        return meta


@dataclass(frozen=True)
class BenchPlan:
    seed: int
    k: int
    clean: int
    delay_pairs: int
    items: tuple[BenchItem, ...]
    cases: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            key = it.fault or "clean"
            out[key] = out.get(key, 0) + 1
        return out


def _eligible(entry: FaultEntry, cases: list[BenchCase]) -> list[BenchCase]:
    if entry.needs:
        return [c for c in cases if all(t in c.tags for t in entry.needs)]
    return [c for c in cases if c.p_level == "P0" and c.respond_only]


def _spec_for(entry: FaultEntry, case: BenchCase, rng: np.random.Generator) -> dict[str, Any]:
    spec = dict(entry.spec)
    spec["seed"] = int(rng.integers(0, 2**31 - 1))
    if entry.at_ms_range is not None:
        lo, hi = entry.at_ms_range
        spec["at_ms"] = round(float(rng.uniform(lo, hi)), 1)
    if entry.kind == "wrong_words":
        spec["keywords"] = list(case.keywords)
    if entry.kind == "premature":
        if case.user_speech_ms is None:
            raise PlanError(f"case {case.id}: premature reply needs the user's speech span (speech_start/end_ms)")
        spec["user_speech_ms"] = case.user_speech_ms
        if case.user_sound_to_eot_ms is not None:
            spec["user_sound_to_eot_ms"] = case.user_sound_to_eot_ms
    return spec


def make_plan(
    cases: list[BenchCase],
    *,
    seed: int,
    k: int = 5,
    clean: int = 50,
    delay_pairs: int = 20,
    faults: list[str] | None = None,
    catalogue: tuple[FaultEntry, ...] = CATALOGUE,
) -> BenchPlan:
    """Plan ``k`` repeats of every scored fault, ``delay_pairs`` delay_300/delay_600 pairs
    (same case, consecutive), and ``clean`` clean turns over the cases the faults use.

    ``faults`` restricts to these catalogue names (e.g. a small CI bench). Raises
    ``PlanError`` when a fault has no eligible case or a count is negative.
    """
    if k < 1 or clean < 0 or delay_pairs < 0:
        raise PlanError(f"bench plan: need k >= 1, clean >= 0, delay_pairs >= 0 (got k={k}, clean={clean}, delay_pairs={delay_pairs})")
    entries = [e for e in catalogue if faults is None or e.name in faults]
    if faults is not None:
        unknown = sorted(set(faults) - {e.name for e in catalogue})
        if unknown:
            raise PlanError(f"bench plan: unknown faults {unknown}; known: {[e.name for e in catalogue]}")
    rng = np.random.default_rng(seed)
    faulted: list[tuple[str, str | None, dict[str, Any] | None, int, int | None]] = []
    used: list[str] = []

    def use(case_id: str) -> None:
        if case_id not in used:
            used.append(case_id)

    for e in entries:
        if e.timing:
            continue
        pool = _eligible(e, cases)
        if not pool:
            raise PlanError(f"bench plan: no case fits fault {e.name} (needs tags {list(e.needs)} or a P0 single respond segment)")
        for r in range(k):
            case = pool[int(rng.integers(len(pool)))]
            use(case.id)
            faulted.append((case.id, e.name, _spec_for(e, case, rng), r, None))

    timing = {e.kind + str(e.spec.get("ms")): e for e in entries if e.timing}
    d300, d600 = timing.get("delay300"), timing.get("delay600")
    pairs: list[list[tuple[str, str | None, dict[str, Any] | None, int, int | None]]] = []
    if delay_pairs and d300 is not None and d600 is not None:
        pool = _eligible(d300, cases)
        if not pool:
            raise PlanError("bench plan: no case fits the delay pairs")
        case = pool[int(rng.integers(len(pool)))]  # one case: the pair's difference cancels its own latency
        use(case.id)
        for r in range(delay_pairs):
            order = (d300, d600) if r % 2 == 0 else (d600, d300)  # alternate which comes first
            pairs.append([(case.id, e.name, _spec_for(e, case, rng), r, r) for e in order])

    clean_pool = used or [c.id for c in cases if c.p_level == "P0" and c.respond_only]
    if clean and not clean_pool:
        raise PlanError("bench plan: no case for the clean turns")
    clean_items = [(clean_pool[i % len(clean_pool)], None, None, i, None) for i in range(clean)]

    # shuffle single turns; each delay pair stays consecutive
    units: list[list[tuple[str, str | None, dict[str, Any] | None, int, int | None]]] = [[x] for x in faulted + clean_items] + pairs
    order = rng.permutation(len(units))
    items = []
    for u in order:
        for case_id, name, spec, rep, pair in units[int(u)]:
            items.append(BenchItem(index=len(items), case_id=case_id, fault=name, spec=spec, repeat=rep, pair=pair))
    return BenchPlan(seed=seed, k=k, clean=clean, delay_pairs=delay_pairs if d300 and d600 else 0,
                     items=tuple(items), cases=tuple(clean_pool))
