"""Run ``autortc ...`` with a sampler of the harness's event-loop stalls (a diagnostic).

A watchdog thread checks a 5 ms heartbeat task on the harness's event loop (the loop that paces
the user bot's mic); whenever the heartbeat is more than ``AUTORTC_STALL_MS`` (default 30) ms
late it samples the main thread's stack once, and keeps the worst lag of that stall. Full garbage
collections over 20 ms are timed too (``gc.callbacks``). At exit the stalls, worst first, go to
``AUTORTC_STALL_OUT`` (default ``output/loop_stalls.txt``): a stack ending in ``select`` means the
loop was idle and its thread was not scheduled in time (CPU starvation), anything else is work
on the loop.

    .venv/bin/autortc stack up -q
    .venv/bin/python scripts/loop_stalls.py run --suite fast --jobs 2 --no-progress --run-id t1j2
    .venv/bin/autortc stack down -q
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from pathlib import Path


def main() -> int:
    limit_s = float(os.environ.get("AUTORTC_STALL_MS", "30")) / 1000
    out = Path(os.environ.get("AUTORTC_STALL_OUT", "output/loop_stalls.txt"))
    main_id = threading.get_ident()
    beat: list[float | None] = [None]  # the heartbeat's last beat; None while no loop runs
    stalls: list[list] = []  # [clock s, worst lag s, stack]
    collections: list[tuple[float, int, float]] = []  # (clock s, generation, duration s)
    started = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        elif time.monotonic() - started[0] > 0.02:
            collections.append((time.monotonic(), info["generation"], time.monotonic() - started[0]))

    def watch() -> None:
        sampled: float | None = None
        while True:
            time.sleep(0.005)
            last = beat[0]
            lag = 0.0 if last is None else time.monotonic() - last
            if lag <= limit_s:
                continue
            if last != sampled:  # a new stall: sample the stack once
                sampled = last
                frame = sys._current_frames().get(main_id)
                stalls.append([time.monotonic(), lag, "".join(traceback.format_stack(frame)[-12:]) if frame else "?"])
            elif lag > stalls[-1][1]:
                stalls[-1][1] = lag

    gc.callbacks.append(on_gc)
    threading.Thread(target=watch, name="loop-stall-watch", daemon=True).start()
    run = asyncio.run

    def run_with_heartbeat(coro, **kw):  # type: ignore[no-untyped-def]
        async def beating():  # type: ignore[no-untyped-def]
            async def heartbeat() -> None:
                while True:
                    beat[0] = time.monotonic()
                    await asyncio.sleep(0.005)

            task = asyncio.create_task(heartbeat(), name="loop-stall-heartbeat")
            try:
                return await coro
            finally:
                task.cancel()
                beat[0] = None

        return run(beating(), **kw)

    asyncio.run = run_with_heartbeat  # the CLI's commands start their loop with asyncio.run
    from autortc.cli import main as cli

    sys.argv = ["autortc", *sys.argv[1:]]
    try:
        cli()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w") as f:
            f.write(f"{len(stalls)} stalls over {limit_s * 1000:.0f} ms; full collections over 20 ms (clock s, "
                    f"generation, ms): {[(round(t, 2), g, round(d * 1000)) for t, g, d in collections]}\n")
            for t, lag, stack in sorted(stalls, key=lambda s: -s[1]):
                f.write(f"\n==== clock {t:.3f} s: loop {lag * 1000:.0f} ms late\n{stack}")
        print(f"loop stalls: {len(stalls)} over {limit_s * 1000:.0f} ms -> {out}", file=sys.stderr)


if __name__ == "__main__":  # the analysis worker's spawned process imports this module: run nothing there
    sys.exit(main())
