"""Audio and timing metrics of AutoRTC: pure functions over numpy arrays and plain data.

One module per family (``latency``, ``continuity``, ``level``, ``fidelity``,
``perceptual``, ``content``, ``turntaking``, ``fingerprints``); ``turn`` loads one
turn folder (see ``docs/artifacts.md``) and calls them.  Nothing here does I/O
except ``turn`` and the process pool in ``perceptual``.
"""
