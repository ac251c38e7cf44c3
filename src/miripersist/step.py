"""An stpipe Step, so that ``strun persistence_mask my_asn.json`` works like any jwst step.

Its parameters mirror the command line's. The input is an association file, a directory,
an uncal file or a glob pattern (or a list of them); the outputs go to ``output_dir``
(default: the current directory). It returns the run's store as an xarray Dataset.
"""

from __future__ import annotations

import os

from stpipe import Step

__all__ = ["PersistenceMaskStep"]


class PersistenceMaskStep(Step):
    """Mask MIRI persistence from saturation in earlier exposures (miripersist)."""

    class_alias = "persistence_mask"
    reference_file_types: list = []
    prefetch_references = False

    spec = """
        method = option('notebook', 'pipeline', 'snowblind', default='notebook') # persistence rule
        n_unsat_threshold = integer(default=3, min=0) # source: at most this many unsaturated groups
        n_pix_grow_sat = integer(default=1, min=0) # growth of saturation, as jwst's saturation step
        saturation_ref = string(default=None) # SATURATION reference file(s), comma-separated; None asks CRDS
        user_mask = string(default=None) # table of 1-indexed x, y or a FITS image
        mode = option('copy', 'sidecar', default='copy') # masked uncal copies or DQ sidecar files
        compress = boolean(default=False) # tile-compressed sidecars
        keep_names = boolean(default=False) # copies keep their inputs' file names
        store = string(default=None) # zarr store (default output_dir/persistence.zarr)
        flags = string(default=None) # pixel DQ flag names to set (default: the method's)
        window = string(default=None) # how long a source masks: 2500s, 10h, inf (default: the method's)
        integrations = option('first', 'all', default='first') # integrations that make sources
        dilate = integer(default=0, min=0) # grow the mask beyond the saturated core
        history = string(default=None) # store of an earlier run, saturation before this one
        skip_bad = boolean(default=False) # leave out bad inputs instead of stopping
        overwrite = boolean(default=False) # start afresh
        output_ext = string(default='.fits') # required by stpipe; outputs are named by miripersist
    """  # noqa: E501

    @classmethod
    def _get_crds_parameters(cls, dataset):
        # There is no CRDS parameter reference for this step, and its inputs are read by
        # miripersist itself (headers only), never opened as datamodels here.
        return {}, "jwst"

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        """Return no parameters: this step has no CRDS parameter reference file."""
        from stpipe import config_parser

        return config_parser.ConfigObj()

    def _window(self) -> float | None:
        from .errors import ConfigError
        from .parameters import parse_duration

        if self.window is None:
            return None
        try:
            return parse_duration(self.window)
        except ValueError as exc:
            raise ConfigError(f"window: {exc}") from None

    def process(self, step_input):
        """Run miripersist on ``step_input``; return its store (an xarray Dataset)."""
        from .engine import Parameters, run
        from .flags import parse_flags

        inputs = list(step_input) if isinstance(step_input, list | tuple) else [step_input]
        refs = [r.strip() for r in (self.saturation_ref or "").split(",") if r.strip()]
        params = Parameters(
            method=self.method,
            compress=self.compress,
            keep_names=self.keep_names,
            n_unsat_threshold=self.n_unsat_threshold,
            n_pix_grow_sat=self.n_pix_grow_sat,
            flags=parse_flags(self.flags) if self.flags else None,
            mode=self.mode,
            window_days=self._window(),
            integrations=self.integrations,
            dilate=self.dilate,
        )
        output_dir = self.output_dir or os.getcwd()
        ds = run(
            [str(i) for i in inputs],
            output_dir,
            saturation_refs=refs,
            params=params,
            store=self.store,
            user_mask=self.user_mask,
            overwrite=self.overwrite,
            history=self.history,
            skip_bad=self.skip_bad,
        )
        from .summary import last_run_line

        self.log.info(
            "%d exposures, %d pixels flagged in all; %s; outputs in %s",
            ds.sizes["exposure"],
            int(ds["n_masked"].sum()),
            last_run_line(ds.attrs.get("last_run", {})),
            output_dir,
        )
        return ds
