"""An stpipe Step, so that ``strun persistence_mask my_asn.json`` works like any jwst step.

Its parameters mirror the command line's. The input is an association file, a directory,
an uncal file or a glob pattern (or a list of them); the outputs go to ``output_dir``
(default: the current directory). It returns the run's store as an xarray Dataset.
"""

from __future__ import annotations

import contextlib
import os
import re

from configobj import ConfigObj
from stpipe import Step
from stpipe.exceptions import StpipeExitException

from . import registry
from .batch import FLAGS as BATCH_FLAGS
from .batch import SYSTEMS, Batch
from .errors import ConfigError, MiripersistError
from .options import OPTIONS, Option, parse_duration, split

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


EXT = "required by stpipe; outputs are named by miripersist"

#: Each field of a Batch as the step's parameter: the command line's option, underscored.
BATCH_KEYS = {name: flag[2:].replace("-", "_") for name, (flag, _, _) in BATCH_FLAGS.items()}

#: The command line's --cluster and worker-job options, as step parameters.
BATCH_SPEC = [
    f"cluster = option({', '.join(map(repr, SYSTEMS))}, None, default=None) # worker jobs on "
    "a batch system through dask-jobqueue, as its configuration (jobqueue.yaml) says; they "
    "end with the run",
    *(
        f"{BATCH_KEYS[name]} = "
        + ("integer(default=None, min=1)" if metavar == "N" else "string(default=None)")
        + f" # with cluster: {words}"
        for name, (_, metavar, words) in BATCH_FLAGS.items()
    ),
]


def spec_line(option: Option) -> str:
    """The step's spec of an option: its type, default and range, and its help."""
    if option.kind == "int":
        kind = f"integer(default={option.default}, min={option.minimum})"
    elif option.kind == "bool":
        kind = f"boolean(default={option.default})"
    elif option.kind in ("choice", "rule"):
        names = option.choices if option.kind == "choice" else registry.names()
        kind = f"option({', '.join(map(repr, names))}, default={option.default!r})"
    else:
        kind = "string(default=None)"
    return f"{option.key} = {kind} # {option.described()}"


def from_step(option: Option, value: object) -> object:
    """A step parameter's value as Python gives it: paths split at commas, '' as None.

    A duration is read here, so that its error names the step's parameter.
    """
    if value == "":
        value = None
    if option.kind == "paths":
        return [p.strip() for p in str(value or "").split(",") if p.strip()]
    if option.kind == "duration" and value is not None:
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise ConfigError(f"{option.key}: {exc}") from None
    return value


class PersistenceMaskStep(Step):
    """Mask MIRI persistence from saturation in earlier exposures (miripersist)."""

    class_alias = "persistence_mask"
    reference_file_types: list = []
    prefetch_references = False

    spec = "\n".join(
        [*map(spec_line, OPTIONS), *BATCH_SPEC, f"output_ext = string(default='.fits') # {EXT}"]
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

    def _workers(self) -> contextlib.AbstractContextManager:
        """Worker jobs on a batch system for the run, when ``cluster`` names one."""
        if self.cluster is None:
            return contextlib.nullcontext()
        from .cluster import batch_client

        given = {name: getattr(self, key) for name, key in BATCH_KEYS.items()}
        return batch_client(Batch.given(self.cluster, given))

    def _masked(self, step_input):
        from .engine import Parameters, run

        inputs = list(step_input) if isinstance(step_input, list | tuple) else [step_input]
        values = {option.name: from_step(option, getattr(self, option.key)) for option in OPTIONS}
        fields, keywords = split(values)
        output_dir = self.output_dir or os.getcwd()
        with self._workers():
            ds = run([str(i) for i in inputs], output_dir, params=Parameters(**fields), **keywords)
        from .summary import last_run_line

        self.log.info(
            "%d exposures, %d pixels flagged in all; %s; outputs in %s",
            ds.sizes["exposure"],
            int(ds["n_masked"].sum()),
            last_run_line(ds.attrs.get("last_run", {})),
            output_dir,
        )
        return ds
