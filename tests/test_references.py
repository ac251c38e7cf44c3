"""SATURATION references: asked of CRDS when none is given, chosen by detector and filter,
refused for another detector."""

from __future__ import annotations

import numpy as np
import pytest

from miripersist import ConfigError, run, simulate


def test_crds_is_asked_when_no_reference_is_given(tmp_path, program, monkeypatch):
    import crds

    asked = []

    def fake(parameters, reftypes, observatory):
        asked.append(parameters)
        return {"saturation": program.saturation_ref}

    monkeypatch.setattr(crds, "getreferences", fake)
    ds = run([program.directory], str(tmp_path / "out"))
    assert len(asked) == 6
    assert asked[0]["META.INSTRUMENT.DETECTOR"] == "MIRIMAGE"
    assert {p["META.INSTRUMENT.FILTER"] for p in asked} == {"F770W", "F1800W"}
    assert set(ds["saturation_ref"].values) == {program.saturation_ref}


def test_wrong_detector_reference_is_refused(tmp_path, program, sat_thresholds):
    thr, dq = sat_thresholds
    other = simulate.write_saturation_reference(str(tmp_path / "long.fits"), thr, dq, "MIRIFULONG")
    with pytest.raises(ConfigError, match="detector MIRIMAGE has no --saturation-ref"):
        run([program.directory], str(tmp_path / "out"), [other])


def test_references_are_chosen_by_detector_and_filter(tmp_path, program, sat_thresholds):
    thr, dq = sat_thresholds
    low = simulate.write_saturation_reference(
        str(tmp_path / "f770w.fits"), np.full_like(thr, 9010.0), dq, filter_name="F770W"
    )
    anyf = simulate.write_saturation_reference(str(tmp_path / "any.fits"), thr, dq)
    ds = run([program.directory], str(tmp_path / "out"), [anyf, low])
    chosen = dict(zip(ds["filter"].values, ds["saturation_ref"].values, strict=False))
    assert chosen == {"F770W": low, "F1800W": anyf}
    f770 = ds["filter"].values == "F770W"
    # With thresholds just above the bias, every F770W pixel saturates at once.
    assert (ds["n_source"].values[f770] > ds["n_source"].values[~f770].max()).all()
    with pytest.raises(ConfigError, match="a second --saturation-ref for detector MIRIMAGE"):
        run([program.directory], str(tmp_path / "out2"), [low, low])
    with pytest.raises(ConfigError, match="no --saturation-ref for filter F1800W"):
        run([program.directory], str(tmp_path / "out3"), [low])
