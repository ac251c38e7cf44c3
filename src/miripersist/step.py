"""An stpipe Step, so that ``strun persistence_mask my_asn.json`` works like any jwst step.

Its parameters mirror the command line's. The input is an association file, a directory,
an uncal file or a glob pattern (or a list of them); the outputs go to ``output_dir``
(default: the current directory). It returns the run's store as an xarray Dataset.
"""

from __future__ import annotations

import os
import re

from configobj import ConfigObj
from stpipe import Step
from stpipe.exceptions import StpipeExitException

from . import registry
from .errors import MiripersistError

__all__ = ["PersistenceMaskStep", "StepError"]


class StepError(MiripersistError, StpipeExitException):
    """A run of the step that failed: one line, logged, and the exit code of the command line.

    ``strun`` ends with the exit code of a :class:`~stpipe.exceptions.StpipeExitException`
    without a traceback; from Python it is caught as any :class:`MiripersistError`.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        StpipeExitException.__init__(self, exit_code, message)
        self.exit_code = exit_code

    def __str__(self) -> str:
        return str(self.args[1])


def strun_words(message: str, spec: str) -> str:
    """A message's command-line options as ``strun`` takes them.

    ``--overwrite`` becomes ``--overwrite=True`` (strun's booleans take a value), and
    ``--saturation-ref`` becomes ``--saturation_ref``; what the message says for Python
    callers (``overwrite=True in Python``, ``store=...``) is dropped.
    """
    parsed = ConfigObj(spec.splitlines(), list_values=False, _inspec=True)
    message = re.sub(r"\s*\([a-z_]+=[^()]*\)|,? [a-z_]+=True in Python,?", "", message)
    for name, kind in parsed.items():
        flag = "--" + name.replace("_", "-")
        said = f"--{name}=True" if str(kind).startswith("boolean") else f"--{name}"
        message = re.sub(rf"{re.escape(flag)}(?![\w-])", said, message)
    return message


class PersistenceMaskStep(Step):
    """Mask MIRI persistence from saturation in earlier exposures (miripersist)."""

    class_alias = "persistence_mask"
    reference_file_types: list = []
    prefetch_references = False

    spec = """
        method = option({methods}, default='{default}') # persistence rule
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
    """.format(  # noqa: E501
        methods=", ".join(repr(name) for name in registry.names()), default=registry.DEFAULT
    )

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
        from .options import parse_duration

        if self.window is None:
            return None
        try:
            return parse_duration(self.window)
        except ValueError as exc:
            raise ConfigError(f"window: {exc}") from None

    def process(self, step_input):
        """Run miripersist on ``step_input``; return its store (an xarray Dataset).

        A failure is logged as one line, with the options as ``strun`` spells them, and
        raised as :class:`StepError`.
        """
        try:
            return self._masked(step_input)
        except MiripersistError as exc:
            message = strun_words(str(exc), self.spec)
            self.log.error("%s", message)
            raise StepError(message, exc.exit_code) from None

    def _masked(self, step_input):
        from .engine import Parameters
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
        ds = self._run(inputs, output_dir, refs, params)
        from .summary import last_run_line

        self.log.info(
            "%d exposures, %d pixels flagged in all; %s; outputs in %s",
            ds.sizes["exposure"],
            int(ds["n_masked"].sum()),
            last_run_line(ds.attrs.get("last_run", {})),
            output_dir,
        )
        return ds

    def _run(self, inputs: list, output_dir: str, refs: list[str], params):
        from .engine import run

        return run(
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
