"""A transcriber factory for the runner's tests: loading it writes the host's monotonic time to the
file named by ``AUTORTC_TEST_STAMP`` (it runs in the analysis worker, a spawned process)."""

import os
import time


def factory():
    with open(os.environ["AUTORTC_TEST_STAMP"], "a") as f:
        f.write(f"{time.monotonic()}\n")
    return lambda samples, sr: ""
