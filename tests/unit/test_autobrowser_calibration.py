"""autobrowser.calibration: the browser-vs-probe table and ground-truth error (pure)."""

import pytest

from autobrowser.calibration import CalibrationRun, calibrate, calibration_markdown, ground_truth_error

pytestmark = pytest.mark.unit


def test_table_and_overall():
    runs = [
        CalibrationRun("a", 0, 1000.0, 980.0), CalibrationRun("a", 1, 1010.0, 985.0), CalibrationRun("a", 2, 990.0, 975.0),
        CalibrationRun("b", 0, 500.0, 510.0), CalibrationRun("b", 1, None, 505.0),
    ]
    table, overall = calibrate(runs)
    a, b = table
    assert a.case_id == "a" and a.runs == 3
    assert a.browser_mean_ms == pytest.approx(1000.0) and a.browser_stdev_ms == pytest.approx(10.0)
    assert a.diff_mean_ms == pytest.approx((20 + 25 + 15) / 3) and (a.diff_min_ms, a.diff_max_ms) == (15.0, 25.0)
    assert b.runs == 1 and b.browser_stdev_ms is None and b.probe_mean_ms == pytest.approx(507.5)
    assert overall.n == 4 and overall.mean_ms == pytest.approx((20 + 25 + 15 - 10) / 4)
    md = calibration_markdown(table, overall, command="autortc calibrate")
    assert "| a | 3 | 1000.0 | 10.0 |" in md and "autortc calibrate" in md


def test_ground_truth_error():
    g = ground_truth_error([101.0, 99.0, 100.5, 104.0], [100.0] * 4)
    assert g.median_abs_ms == pytest.approx(1.0) and g.n == 4
    assert g.p95_abs_ms == pytest.approx(3.55)
    with pytest.raises(ValueError, match="pair up"):
        ground_truth_error([1.0], [1.0, 2.0])
