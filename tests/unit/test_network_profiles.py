"""Network profile files: built-ins, user extension, and errors that name file and field."""

from __future__ import annotations

import pytest

from autortc.network.profiles import (
    PROFILES_ENV,
    DirectionSpec,
    NetworkProfile,
    ProfileError,
    get_profile,
    load_profiles,
    parse_profiles,
)

pytestmark = pytest.mark.unit


def test_builtin_profiles_hold_seed_and_commercial_presets():
    ps = load_profiles(use_env=False)
    assert {"wifi_good", "4g_ok", "bad_wifi", "dsl", "regular_3g", "poor_4g", "very_bad_network"} <= set(ps)
    # the seed's figures (devlog 11.5)
    assert ps["wifi_good"].is_identity
    for name, (d, j, loss) in {"4g_ok": (30, 20, 0.5), "bad_wifi": (50, 40, 2.0)}.items():
        for spec in (ps[name].uplink, ps[name].downlink):
            assert (spec.delay_ms, spec.jitter_ms, spec.loss_pct) == (d, j, loss)
            assert spec.reorder is False
    # commercial presets: round-trip latency split over the two directions
    assert ps["regular_3g"].uplink.rate_kbps == 750
    assert ps["regular_3g"].uplink.delay_ms + ps["regular_3g"].downlink.delay_ms == 250
    assert ps["very_bad_network"].downlink.loss_pct == 10.0
    assert ps["poor_4g"].uplink.burst_packets > 1


def test_user_file_extends_and_overrides(tmp_path, monkeypatch):
    user = tmp_path / "mine.toml"
    user.write_text(
        """
[profiles.office]
description = "office uplink congested"
delay_ms = 10
loss_pct = 1
[profiles.office.uplink]
rate_kbps = 256
delay_ms = 40

[profiles.4g_ok]
delay_ms = 35
jitter_ms = 5
"""
    )
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    ps = load_profiles([user])
    office = ps["office"]
    assert office.uplink.delay_ms == 40 and office.uplink.rate_kbps == 256 and office.uplink.loss_pct == 1
    assert office.downlink.delay_ms == 10 and office.downlink.rate_kbps is None
    assert ps["4g_ok"].uplink.delay_ms == 35 and ps["4g_ok"].source == str(user)
    assert "bad_wifi" in ps  # built-ins still there
    monkeypatch.setenv(PROFILES_ENV, str(user))
    assert get_profile("office").uplink.rate_kbps == 256


@pytest.mark.parametrize(
    "body, must_contain",
    [
        ("[profiles.x]\nloss_pct = -1\n", ["profiles.x.loss_pct", "greater than or equal to 0"]),
        ("[profiles.x]\nloss_pct = 100\n", ["profiles.x.loss_pct", "less than 100"]),
        ("[profiles.x]\ndelay_ms = 'slow'\n", ["profiles.x.delay_ms", "'slow'"]),
        ("[profiles.x]\ndelay = 10\n", ["profiles.x.delay", "Extra inputs"]),
        ("[profiles.x]\ndelay_ms = 10\njitter_ms = 20\n", ["profiles.x", "jitter_ms (20) must not exceed delay_ms (10)"]),
        ("[profiles.x]\ndelay_ms = 10\n[profiles.x.uplink]\njitter_ms = 30\n", ["profiles.x.uplink", "jitter_ms"]),
        ("[profiles.x]\nrate_kbps = 0\n", ["profiles.x.rate_kbps", "greater than 0"]),
        ("[profiles.x]\nloss_pct = 60\nburst_packets = 1.2\n", ["profiles.x", "Gilbert-Elliott"]),
        ("[profile.x]\ndelay_ms = 1\n", ["unknown top-level key", "profile"]),
        ("[profiles]\n", ["at least one [profiles.<name>]"]),
        ("[profiles.x\n", ["not valid TOML"]),
        ("profiles = 3\n", ["at least one"]),
    ],
)
def test_bad_files_name_file_and_field(tmp_path, body, must_contain):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ProfileError) as ei:
        load_profiles([f], use_env=False)
    msg = str(ei.value)
    assert str(f) in msg
    for part in must_contain:
        assert part in msg, msg


def test_missing_file_and_unknown_name(tmp_path, monkeypatch):
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    with pytest.raises(ProfileError, match="cannot read network profiles file"):
        load_profiles([tmp_path / "nope.toml"])
    with pytest.raises(ProfileError) as ei:
        get_profile("5g_dream")
    assert "5g_dream" in str(ei.value) and "bad_wifi" in str(ei.value)


def test_symmetric_constructor_validates():
    p = NetworkProfile.symmetric("t", delay_ms=20, jitter_ms=5, loss_pct=1)
    assert p.uplink == p.downlink == DirectionSpec(delay_ms=20, jitter_ms=5, loss_pct=1)
    assert p.to_dict()["uplink"]["delay_ms"] == 20
    with pytest.raises(ValueError):
        NetworkProfile.symmetric("t", delay_ms=5, jitter_ms=6)


def test_parse_profiles_reports_source_name():
    with pytest.raises(ProfileError, match=r"^case.yaml#network: profiles.y.loss_pct"):
        parse_profiles("[profiles.y]\nloss_pct = 'a lot'\n", source="case.yaml#network")
