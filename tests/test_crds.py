"""References from CRDS for real, offline: a local cache in the layout ``crds sync`` makes.

The cache holds two contexts (``jwst_0101.pmap`` and a later ``jwst_0102.pmap`` that
corrects the F1800W reference), each a pipeline mapping selecting MIRI, an instrument
mapping selecting SATURATION, and a reference mapping selecting by detector, filter and
use-after date, as the real MIRI rules do, with their real sha1sums. ``crds.getreferences``
then runs in ``CRDS_MODE=local`` exactly as on a connected machine, minus the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import sha256

from miripersist import Parameters, run, simulate
from miripersist.inventory import read_exposure
from miripersist.thresholds import crds_saturation_reference

#: Reference files of the cache and the thresholds they hold (offsets from a common map).
REFERENCES = {
    "jwst_miri_saturation_0100.fits": ("MIRIMAGE", "F770W", 1000.0),  # superseded by date
    "jwst_miri_saturation_0101.fits": ("MIRIMAGE", "F770W", 0.0),
    "jwst_miri_saturation_0102.fits": ("MIRIMAGE", "F1800W", -20000.0),
    "jwst_miri_saturation_0103.fits": ("MIRIFULONG", "N/A", -5000.0),
    "jwst_miri_saturation_0104.fits": ("MIRIMAGE", "F1800W", -10000.0),  # the correction
}

#: The rules of each context: (detector, filter) -> {use-after: reference}.
RULES = {
    "0101": {
        ("MIRIMAGE", "F770W"): {
            "2022-01-01 00:00:00": "jwst_miri_saturation_0100.fits",
            "2023-06-01 00:00:00": "jwst_miri_saturation_0101.fits",
        },
        ("MIRIMAGE", "F1800W"): {"2022-01-01 00:00:00": "jwst_miri_saturation_0102.fits"},
        ("MIRIFULONG", "N/A"): {"2022-01-01 00:00:00": "jwst_miri_saturation_0103.fits"},
    },
}
RULES["0102"] = {
    **RULES["0101"],
    ("MIRIMAGE", "F1800W"): {"2022-01-01 00:00:00": "jwst_miri_saturation_0104.fits"},
}


def write_mapping(path: Path, header: dict, selector: str) -> None:
    """Write a CRDS mapping with its real sha1sum (over every line but the sha1sum line)."""
    lines = ["header = {"]
    lines += [f"    {k!r} : {v!r}," for k, v in sorted((header | {"sha1sum": "SHA1SUM"}).items())]
    lines += ["}", "", f"selector = {selector}", ""]
    text = "\n".join(lines)
    body = "".join(line for line in text.splitlines(True) if "sha1sum" not in line)
    path.write_text(text.replace("SHA1SUM", hashlib.sha1(body.encode()).hexdigest()))


def write_context(mappings: Path, serial: str, rules: dict) -> str:
    """Write ``jwst_SERIAL.pmap`` -> ``jwst_miri_SERIAL.imap`` -> saturation rmap."""
    common = {"observatory": "JWST", "derived_from": "miripersist tests"}
    rmap = f"jwst_miri_saturation_{serial}.rmap"
    match = "".join(
        f"    {key!r} : UseAfter({{\n"
        + "".join(f"        {date!r} : {ref!r},\n" for date, ref in sorted(dates.items()))
        + "    }),\n"
        for key, dates in sorted(rules.items())
    )
    write_mapping(
        mappings / rmap,
        common
        | {
            "mapping": "REFERENCE",
            "name": rmap,
            "instrument": "MIRI",
            "filekind": "SATURATION",
            "filetype": "SATURATION",
            "file_ext": ".fits",
            "suffix": "saturation",
            "text_descr": "Saturation",
            "classes": ("Match", "UseAfter"),
            "parkey": (
                ("META.INSTRUMENT.DETECTOR", "META.INSTRUMENT.FILTER"),
                ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME"),
            ),
        },
        "Match({\n" + match + "})",
    )
    imap = f"jwst_miri_{serial}.imap"
    write_mapping(
        mappings / imap,
        common
        | {"mapping": "INSTRUMENT", "name": imap, "instrument": "MIRI", "parkey": ("REFTYPE",)},
        "{\n" + f"    'SATURATION' : {rmap!r},\n" + "}",
    )
    pmap = f"jwst_{serial}.pmap"
    write_mapping(
        mappings / pmap,
        common | {"mapping": "PIPELINE", "name": pmap, "parkey": ("META.INSTRUMENT.NAME",)},
        "{\n" + f"    'MIRI' : {imap!r},\n" + "}",
    )
    return pmap


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A CRDS cache as ``crds sync`` leaves it; its server_config names ``jwst_0101.pmap``."""
    root = tmp_path_factory.mktemp("crds-cache")
    mappings = root / "mappings" / "jwst"
    references = root / "references" / "jwst" / "miri"
    config = root / "config" / "jwst"
    for d in (mappings, references, config):
        d.mkdir(parents=True)
    for serial, rules in RULES.items():
        write_context(mappings, serial, rules)
    thr, dq = simulate.thresholds(np.random.default_rng(11))
    for name, (detector, filter_name, offset) in REFERENCES.items():
        simulate.write_saturation_reference(
            str(references / name),
            thr + np.float32(offset),
            dq,
            detector=detector,
            filter_name=filter_name if filter_name != "N/A" else None,
        )
    (config / "server_config").write_text(
        repr(
            {
                "observatory": "jwst",
                "operational_context": "jwst_0101.pmap",
                "edit_context": "jwst_0102.pmap",
                "force_remote_mode": False,
                "bad_files": "",
                "bad_files_list": [],
                "last_synced": "2026-01-01 00:00:00",
                "crds_version": {"str": "14.0.3"},
            }
        )
    )
    (config / "ref_cache_subdir_mode").write_text("instrument")
    return root


#: Settings that would take CRDS elsewhere than ``CRDS_PATH``.
OVERRIDES = ["CRDS_PATH_SINGLE"] + [
    f"CRDS_{what}PATH{single}" for what in ("MAP", "REF", "CFG") for single in ("", "_SINGLE")
]


@pytest.fixture
def local_crds(cache, monkeypatch):
    """CRDS in local mode on ``cache``, its in-process state fresh (as in a new process)."""
    from crds.core import config, utils

    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("CRDS_MODE", "local")
    monkeypatch.delenv("CRDS_CONTEXT", raising=False)
    for name in OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "CRDS_REF_SUBDIR_MODE", "None")
    utils.clear_function_caches()  # the context, config and mappings CRDS read before
    yield cache
    utils.clear_function_caches()  # and none of this cache's state stays for other tests


def in_cache(cache: Path, name: str) -> str:
    return str(cache / "references" / "jwst" / "miri" / name)


@pytest.fixture(scope="module")
def exposures(tmp_path_factory):
    """One exposure per filter on MIRIMAGE, and one on MIRIFULONG (small frames)."""
    image = simulate.make_program(
        str(tmp_path_factory.mktemp("crds-image")),
        n_exposures=2,
        ngroups=2,
        subarrays=("SUB64",),
        filters=("F770W", "F1800W"),
    )
    mrs = simulate.make_program(
        str(tmp_path_factory.mktemp("crds-mrs")),
        n_exposures=1,
        ngroups=2,
        subarrays=("SUB64",),
        detector="MIRIFULONG",
    )
    found = {}
    for path in [*image.files, *mrs.files]:
        e = read_exposure(path)
        found[(e.detector, e.filter)] = e
    return found


def test_crds_picks_the_reference_by_detector_filter_and_date(local_crds, exposures):
    cache = local_crds
    f770w = exposures[("MIRIMAGE", "F770W")]
    assert f770w.date_obs > "2023-06-01"  # after both F770W use-after dates
    picks = {key: crds_saturation_reference(e) for key, e in exposures.items()}
    assert picks == {
        ("MIRIMAGE", "F770W"): in_cache(cache, "jwst_miri_saturation_0101.fits"),
        ("MIRIMAGE", "F1800W"): in_cache(cache, "jwst_miri_saturation_0102.fits"),
        ("MIRIFULONG", "F770W"): in_cache(cache, "jwst_miri_saturation_0103.fits"),
    }
    earlier = dataclasses.replace(f770w, date_obs="2023-01-15", time_obs="12:00:00.000")
    assert crds_saturation_reference(earlier) == in_cache(cache, "jwst_miri_saturation_0100.fits")


def test_the_context_can_be_named_and_a_relative_crds_path_gives_absolute_paths(
    local_crds, exposures, monkeypatch
):
    cache = local_crds
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_0102.pmap")
    monkeypatch.chdir(cache.parent)
    monkeypatch.setenv("CRDS_PATH", cache.name)
    path = crds_saturation_reference(exposures[("MIRIMAGE", "F1800W")])
    assert path == in_cache(cache, "jwst_miri_saturation_0104.fits")


def test_an_exposure_the_rules_do_not_cover_is_named(local_crds, exposures):
    from miripersist import ConfigError

    other = dataclasses.replace(exposures[("MIRIMAGE", "F770W")], filter="F2550W")
    with pytest.raises(ConfigError, match=f"{other.path}: CRDS could not give"):
        crds_saturation_reference(other)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("crds-prog")),
        n_exposures=4,
        ngroups=4,
        subarrays=("SUB256",),
        filters=("F770W", "F1800W"),
        seed=5,
    )


def digests(directory: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(directory.glob("*.fits"))}


def test_a_run_with_crds_equals_a_run_given_the_same_files(local_crds, program, tmp_path):
    cache = local_crds
    params = Parameters(mode="sidecar")
    ds_crds = run([program.directory], str(tmp_path / "crds"), params=params)
    given = [
        in_cache(cache, "jwst_miri_saturation_0101.fits"),
        in_cache(cache, "jwst_miri_saturation_0102.fits"),
    ]
    ds_given = run([program.directory], str(tmp_path / "given"), given, params=params)
    assert len(digests(tmp_path / "crds")) == len(program.files)
    assert digests(tmp_path / "crds") == digests(tmp_path / "given")
    for name in ("source", "mask", "saturation_ref", "saturation_ref_sha256"):
        np.testing.assert_array_equal(ds_crds[name].values, ds_given[name].values)


def test_a_corrected_reference_recomputes_exactly_its_exposures(
    local_crds, program, tmp_path, monkeypatch
):
    cache = local_crds
    params = Parameters(mode="sidecar")
    out = str(tmp_path / "out")
    before = run([program.directory], out, params=params)
    f1800w = before["filter"].values == "F1800W"
    assert 0 < f1800w.sum() < len(f1800w)
    expected = np.where(
        f1800w,
        in_cache(cache, "jwst_miri_saturation_0102.fits"),
        in_cache(cache, "jwst_miri_saturation_0101.fits"),
    )
    np.testing.assert_array_equal(before["saturation_ref"].values, expected)
    sources = before["source"].values.copy()

    # CRDS delivers a corrected F1800W reference in a new context; the next run (a new
    # process, hence the fresh CRDS state) uses it.
    from crds.core import utils

    monkeypatch.setenv("CRDS_CONTEXT", "jwst_0102.pmap")
    utils.clear_function_caches()
    after = run([program.directory], out, params=params)
    assert after.attrs["last_run"]["computed"] == f1800w.sum()
    assert after.attrs["last_run"]["reused"] == (~f1800w).sum()
    corrected = in_cache(cache, "jwst_miri_saturation_0104.fits")
    np.testing.assert_array_equal(
        after["saturation_ref"].values, np.where(f1800w, corrected, expected)
    )
    assert list(after["saturation_ref_sha256"].values[f1800w]) == [sha256(corrected)] * f1800w.sum()
    np.testing.assert_array_equal(after["source"].values[~f1800w], sources[~f1800w])
    assert not np.array_equal(after["source"].values[f1800w], sources[f1800w])
