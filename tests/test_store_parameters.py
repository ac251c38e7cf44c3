"""The store describes itself, and a store of other parameters is refused, naming the
options changed as the user gave them."""

from __future__ import annotations

import pytest
import xarray as xr

from miripersist import ConfigError, Parameters, run


def test_store_is_self_describing(tmp_path, program):
    store = tmp_path / "elsewhere.zarr"
    run(
        [program.directory],
        str(tmp_path / "out"),
        [program.saturation_ref],
        Parameters(n_unsat_threshold=2, n_pix_grow_sat=0),
        store=str(store),
    )
    ds = xr.open_zarr(store)
    assert dict(ds.sizes) == {"exposure": 6, "y": 1024, "x": 1032}
    for name in ("file", "detector", "filter", "mid_mjd", "start_mjd", "end_mjd", "xstart"):
        assert name in ds.coords
    assert '"n_unsat_threshold": 2' in ds.attrs["parameters"]
    assert "jwst" in ds.attrs["versions"]
    assert not (tmp_path / "out" / "persistence.zarr").exists()


def test_a_refusal_names_the_changed_options_as_the_user_gave_them(tmp_path, program):
    mask_a, mask_b = tmp_path / "a.csv", tmp_path / "b.csv"
    mask_a.write_text("x,y\n10,10\n")
    mask_b.write_text("x,y\n20,20\n")
    args = ([program.directory], str(tmp_path / "out"), [program.saturation_ref])
    run(*args, user_mask=str(mask_a))
    with pytest.raises(ConfigError) as info:
        run(*args, Parameters(window_days=1 / 24), user_mask=str(mask_b))
    message = str(info.value)
    assert f"--user-mask {mask_a} -> {mask_b}" in message
    assert "--window inf (a source masks every later exposure) -> 3600 s (1 h)" in message
    assert "sha256" not in message and "window_days" not in message
    mask_a.write_text("x,y\n30,30\n")
    with pytest.raises(ConfigError, match="--user-mask .*a.csv \\(its content changed\\)"):
        run(*args, user_mask=str(mask_a))


def test_a_store_of_other_parameters_is_refused_not_mixed(tmp_path, program):
    run([program.directory], str(tmp_path), [program.saturation_ref])
    with pytest.raises(ConfigError, match="other parameters .*--n-pix-grow-sat 1 -> 2"):
        run(
            [program.directory],
            str(tmp_path),
            [program.saturation_ref],
            Parameters(n_pix_grow_sat=2),
        )
    ds = run(
        [program.directory],
        str(tmp_path),
        [program.saturation_ref],
        Parameters(n_pix_grow_sat=2),
        overwrite=True,
    )
    assert ds.attrs["parameters"]["n_pix_grow_sat"] == 2
    assert not list(tmp_path.glob(".tmp-*")), "no temporary file may be left"


def test_python_callers_get_one_line_errors_and_plain_strings_work(tmp_path, program):
    ds = run(program.directory, str(tmp_path / "a"), program.saturation_ref)  # strings
    assert ds.sizes["exposure"] == len(program.files)
    with pytest.raises(ConfigError, match="params must be a miripersist.Parameters, not dict"):
        run(program.directory, str(tmp_path / "b"), program.saturation_ref, {"mode": "sidecar"})
    assert Parameters(window_days="10h").window_days == pytest.approx(10 / 24)
    with pytest.raises(ConfigError, match="window_days: not a duration"):
        Parameters(window_days="ten hours")
    with pytest.raises(ConfigError, match="n_unsat_threshold must be an integer, not '3'"):
        Parameters(n_unsat_threshold="3")
