"""The instrument's own timing error, as the unit tests of the instrument alone measure it.

``tests/unit/test_instrument_timing.py`` feeds the probe's frame timestamping + onset finder
(``autortc.metrics`` first-audio reconstruction) and the user side's EoT timestamp with a known
first-audio / end-of-speech sample while the event loop is deliberately delayed (frames handed
over late, in bursts), and asserts the reconstructed time within ``bound_ms``. The figures
here are what those tests measured on this machine (docs/faultbench.md "Timing truth"); they
are copied into ``summary.json`` (``extra.faultbench.instrument``) and the report next to the
latency figures, so every latency carries its error bar.
"""

INSTRUMENT: dict = {
    "bound_ms": 2.0,
    "first_audio_max_error_ms": None,
    "user_eot_max_error_ms": None,
    "source": "tests/unit/test_instrument_timing.py",
}
