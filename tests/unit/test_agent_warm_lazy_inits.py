"""The bundled agent builds LiveKit Agents' lazy tables before it registers, not at the first reply.

Truth from outside the agent: LiveKit Agents' own cache of the hyphenator the transcript
synchronizer calls on the event loop (``livekit.agents.tokenize._basic_hyphenator``).
"""

import pytest

pytestmark = pytest.mark.unit


def test_warm_lazy_inits_builds_the_hyphenator_the_first_reply_would_build():
    from livekit.agents.tokenize import _basic_hyphenator as hy

    from system.agent.worker import warm_lazy_inits

    hy._get_hyphenator.cache_clear()
    assert hy._get_hyphenator.cache_info().currsize == 0
    warm_lazy_inits()
    assert hy._get_hyphenator.cache_info().currsize == 1
