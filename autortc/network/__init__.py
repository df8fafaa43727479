"""Network impairment of the user side's media path, and its verification.

- ``profiles``: profile files (built-in ``profiles.toml`` + user files), validation.
- ``impairment``: pure per-direction model (loss/Gilbert-Elliott, token bucket, jitter).
- ``relay``: asyncio per-client UDP impairment relay; TCP forwarder for signaling.
- ``netns``: namespaces, veth, the netem detector and backend.
- ``measure``: probe packet train, configured-vs-measured verification.
- ``webrtc``: WebRTC stats of the user side against the profile.
- ``path``: ``ImpairedPath``, what a run uses.
- ``cli``: ``autortc net profiles|check|measure|serve``.

See docs/network.md for the design.
"""

from autortc.network.profiles import NetworkProfile, ProfileError, get_profile, load_profiles

__all__ = ["NetworkProfile", "ProfileError", "get_profile", "load_profiles"]
