"""Command line: ``miripersist run``, ``report`` and ``demo``; a thin layer over the API."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

from . import registry, rulenames
from .batch import FLAGS as BATCH_FLAGS
from .batch import SYSTEMS, Batch
from .errors import ConfigError, MiripersistError
from .options import BY_NAME, OPTIONS, Option, split
from .paths import local_path


def _duration(text: str) -> float:
    """:func:`~miripersist.options.parse_duration` for argparse (its error type)."""
    from .options import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    """A whole number of at least 1, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


class _Version(argparse.Action):
    """``--version``: the version is read (from the package's metadata) only when asked."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from . import __version__

        print(f"miripersist {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render the CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="miripersist",
        description="Mask JWST MIRI persistence from saturation in earlier exposures.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_report(sub)
    _add_demo(sub)
    _add_debug(
        sub.add_parser(
            "methods",
            help="list the persistence rules installed (--method), with their defaults",
            description="List every rule --method takes: miripersist's own and those that "
            f"packages register (entry points {rulenames.GROUP}), each with what it is, its "
            "default window and flags, and the files it writes in each --mode.",
        )
    )
    _add_memory(sub)
    _add_simulate(sub)
    return parser


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="mask persistence in a set of uncal files")
    run.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="directories (their *_uncal.fits), files, glob patterns or association files",
    )
    run.add_argument("--output-dir", required=True, help="where outputs and the store go")
    for option in OPTIONS:
        run.add_argument(option.cli, dest=option.name, **_argparse_keys(option))
    _add_cluster(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    run.add_argument(
        "--summary",
        choices=("auto", "exposures", "detectors"),
        default="auto",
        help="the end-of-run table: a row per exposure, per detector, or (auto) per exposure "
        "up to 40 exposures, per detector beyond (default auto)",
    )
    _add_debug(run)


def _add_cluster(run: argparse.ArgumentParser) -> None:
    dist = run.add_argument_group("dask cluster (default: threads in this process)")
    where = dist.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="address of a running scheduler")
    where.add_argument(
        "--scheduler-file",
        metavar="FILE",
        help="scheduler file (dask scheduler --scheduler-file, dask-mpi, dask-jobqueue)",
    )
    where.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="start a local cluster of N worker processes",
    )
    where.add_argument(
        "--cluster",
        choices=tuple(SYSTEMS),
        metavar="SYSTEM",
        help=f"submit worker jobs to a batch system through dask-jobqueue ({', '.join(SYSTEMS)}), "
        "configured as dask-jobqueue reads it (jobqueue.yaml, DASK_JOBQUEUE__... variables); "
        "the jobs end with the run",
    )
    dist.add_argument(
        "--threads-per-worker",
        type=_positive,
        metavar="M",
        help="threads per local worker, with --workers (default 1)",
    )
    dist.add_argument(
        "--wait-for-workers",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="with --scheduler, --scheduler-file or --cluster, how long to wait for a first "
        "worker (e.g. 10m while a batch system starts them; default 60s, 10m for --cluster)",
    )
    _add_jobs(run)


def _add_jobs(run: argparse.ArgumentParser) -> None:
    jobs = run.add_argument_group("worker jobs, with --cluster (default: as jobqueue.yaml says)")
    for name, (flag, metavar, words) in BATCH_FLAGS.items():
        kind = _positive if metavar == "N" else str
        jobs.add_argument(flag, dest=f"batch_{name}", type=kind, metavar=metavar, help=words)


def _add_report(sub) -> None:
    rep = sub.add_parser(
        "report",
        help="a table, figures and a web page (DIR/index.html) from a run's store",
        description="Write persistence_report.ecsv, three PNG figures and index.html (a "
        "self-contained page: parameters, inputs, figures, a sortable table of the exposures "
        "with links to their outputs, the inputs skipped) about a run's store.",
    )
    rep.add_argument(
        "store",
        metavar="STORE",
        help="the zarr store of a run, or the run's output directory (its persistence.zarr)",
    )
    rep.add_argument("--out", metavar="DIR", help="where to write (default STORE/../report)")
    rep.add_argument(
        "--outputs",
        metavar="DIR",
        help="the run's output directory, which the page links to (default: the store's "
        "directory, as for a run without --store)",
    )
    _add_debug(rep)


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="make a small synthetic program and mask it")
    demo.add_argument(
        "directory",
        nargs="?",
        default="miripersist-demo",
        help="where to put it (default ./miripersist-demo)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_debug(demo)


#: The options of ``memory add``: those that shape sources, and how inputs are read.
MEMORY_ADD = (
    "saturation_refs",
    "method",
    "n_unsat_threshold",
    "n_pix_grow_sat",
    "integrations",
    "dilate",
    "skip_bad",
    "verify_checksums",
)


def _add_memory(sub) -> None:
    memory = sub.add_parser(
        "memory",
        help="the detector memory: add exposures to it, or say what it holds",
        description="The detector memory (run --memory PATH) keeps, per detector, the "
        "sources of every exposure runs have seen, so that persistence from earlier programs "
        "is masked too.",
    )
    what = memory.add_subparsers(dest="memory_command", required=True)
    add = what.add_parser(
        "add",
        help="put exposures into the memory, writing no outputs",
        description="Compute the sources of INPUTs (other programs' files, a day of the "
        "detector's calibration exposures) and put them into the memory, with the "
        "parameters that shape them; runs with --memory then mask with them.",
    )
    add.add_argument("inputs", nargs="+", metavar="INPUT", help="as run's")
    add.add_argument(
        "--memory", required=True, metavar="PATH", help="the memory (made when missing)"
    )
    for name in MEMORY_ADD:
        option = BY_NAME[name]
        add.add_argument(option.cli, dest=option.name, **_argparse_keys(option))
    add.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_debug(add)
    status = what.add_parser(
        "status",
        help="what the memory covers per detector, and which recorded runs are stale",
    )
    status.add_argument("path", metavar="PATH", help="the memory")
    status.add_argument("--json", action="store_true", help="as JSON, for scripts")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a recorded run is stale (for job chains: run it again)",
    )
    _add_debug(status)


def _add_simulate(sub) -> None:
    sim = sub.add_parser(
        "simulate",
        help="write the synthetic program the README's and docs' examples use",
        description="Write obs1/, obs2/ and visit3/ (two uncal files each, in time order), "
        "two more files and my_asn.json beside them, the SATURATION reference as sat.fits "
        "and jwst_miri_saturation_0034.fits, and mask.fits, gain.fits, readnoise.fits for "
        "calwebb_detector1. Run the examples in DIR.",
    )
    sim.add_argument(
        "directory",
        nargs="?",
        default=".",
        help="where to write it (default: the current directory)",
    )
    sim.add_argument(
        "--groups", type=_positive, default=5, metavar="N", help="groups a ramp (default 5)"
    )
    sim.add_argument("--seed", type=int, default=5, help="random seed (default 5)")
    _add_debug(sim)


DEBUG_HELP = "on an error, print the traceback too"


def _argparse_keys(option: Option) -> dict:
    """How argparse reads an option of the table: type, action, choices, help."""
    keys: dict = {"help": option.described(), "metavar": option.metavar}
    if option.kind == "bool":
        return {"action": "store_true", "help": keys["help"]}
    if option.kind == "paths":
        keys.update(action="append", default=[] if option.default == () else None)
    elif option.kind == "choice":
        keys.update(choices=option.choices, default=option.default, metavar=None)
    elif option.kind == "int":
        keys.update(type=int, default=option.default)
    elif option.kind == "duration":
        keys.update(type=_duration, default=option.default)
    else:
        # A rule's name is not a choice: reading the registered names costs --help 60 ms;
        # Parameters refuses an unknown name in one line, naming every rule registered.
        keys.update(default=option.default)
    return keys


def _add_debug(subparser: argparse.ArgumentParser) -> None:
    # Also after the command; SUPPRESS keeps a --debug given before it when not repeated.
    subparser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP
    )


def _dask_config(client, wait_days: float | None) -> contextlib.AbstractContextManager:
    """The run's dask configuration: its wait for lost workers, or local threads.

    On a cluster, ``--wait-for-workers`` is also how long a run whose workers are all lost
    waits for one to join. Without one, the threaded scheduler is named outright: with no
    scheduler in dask's configuration, every ``dask.compute`` imports distributed to look
    for a client (0.2-0.3 s, a sixth of a one-exposure run). The choice is the same: with
    neither ``client`` nor distributed imported, there is no client to find.
    """
    import dask

    if client is not None and wait_days is not None:
        from .execute import WAIT_KEY

        return dask.config.set({WAIT_KEY: wait_days * 86400.0})
    if client is not None or "distributed" in sys.modules:
        return contextlib.nullcontext()
    import dask.threaded

    return dask.config.set(scheduler=dask.threaded.get)


@contextlib.contextmanager
def _importing(module: str):
    """No cyclic garbage collection while the libraries behind ``module`` are imported.

    numpy, astropy, pandas, xarray, dask and zarr make a quarter of a million objects as they
    are imported, kept for the life of the process; collections scanning them again and again
    cost 0.2-0.5 s of a one-exposure run. Once imported they are frozen (:func:`gc.freeze`:
    left out of every later collection, the run's own included). Only the first time:
    when ``module`` is already imported, nothing changes.
    """
    if module in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _cmd_run(args: argparse.Namespace) -> int:
    _check_cluster_options(args)
    with _importing("miripersist.engine"):
        from . import engine
        from .cluster import check_workers, connect, dashboard, disconnect
        from .progress import ProgressBar
        from .store import Stored
        from .summary import format_summary

    fields, keywords = split({option.name: getattr(args, option.name) for option in OPTIONS})
    # Paths made absolute, inputs found and read, before a cluster is asked for: workers
    # resolve paths in their own working directory.
    request = engine.resolve(
        args.inputs, args.output_dir, params=engine.Parameters(**fields), **keywords
    )
    client = connect(
        args.scheduler,
        args.scheduler_file,
        args.workers,
        args.threads_per_worker,
        wait_for_workers=None if args.wait_for_workers is None else args.wait_for_workers * 86400.0,
        batch=_batch(args),
        log_level=logging.ERROR if args.debug else logging.CRITICAL,
    )
    with _dask_config(client, args.wait_for_workers):
        try:
            if client is not None:
                link = dashboard(client)
                if link and not args.quiet:
                    print(f"miripersist: dask dashboard at {link}", file=sys.stderr)
                check_workers(client, request.readable(), request.output_dir)
            store_path = engine.run_request(request, ProgressBar(not args.quiet))
        finally:
            if client is not None:
                disconnect(client)
        # Inputs left out were named once each as they were found (a warning on stderr); the
        # summary lists them again at its end, for the record (the store is read through zarr).
        if not args.quiet:
            where = {"outputs": request.output_dir, "store": store_path}
            print(format_summary(Stored(store_path), args.summary, where))
    return 0


def _check_cluster_options(args: argparse.Namespace) -> None:
    if args.threads_per_worker is not None and args.workers is None:
        raise ConfigError("--threads-per-worker is for a local cluster: give --workers N too")
    running = (args.scheduler, args.scheduler_file, args.cluster)
    if args.wait_for_workers is not None and all(v is None for v in running):
        raise ConfigError(
            "--wait-for-workers is for a cluster's workers: give --scheduler, --scheduler-file "
            "or --cluster"
        )
    for name, (flag, _, _) in BATCH_FLAGS.items():
        if getattr(args, f"batch_{name}") is not None and args.cluster is None:
            raise ConfigError(f"{flag} is for worker jobs: give --cluster SYSTEM too")


def _batch(args: argparse.Namespace) -> Batch | None:
    """The worker jobs the command line asks for, or None."""
    if args.cluster is None:
        return None
    return Batch.given(args.cluster, {name: getattr(args, f"batch_{name}") for name in BATCH_FLAGS})


def _cmd_report(args: argparse.Namespace) -> int:
    local_path(args.store, "the store")  # said before the heavy imports
    if not os.path.exists(args.store):
        raise ConfigError(f"{args.store}: no such store")
    with _importing("miripersist.report"):
        from .report import report

    done = report(args.store, args.out, args.outputs)
    print("\n".join(done.table.pformat(max_lines=-1, max_width=-1)))
    print(f"table: {done.ecsv}")
    for path in done.figures:
        print(f"figure: {path}")
    print(f"page: {done.page}")
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    print(registry.table(registry.describe()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    local_path(args.directory, "the demo's directory")
    from .demo import demo

    demo(args.directory, quiet=args.quiet)
    return 0


def _cmd_memory(args: argparse.Namespace) -> int:
    if args.memory_command == "status":
        return _memory_status(args)
    local_path(args.memory, "--memory")
    with _importing("miripersist.engine"):
        from . import engine
        from .progress import ProgressBar

    fields, keywords = split({name: getattr(args, name) for name in MEMORY_ADD})
    added = engine.add_to_memory(
        args.inputs,
        args.memory,
        params=engine.Parameters(**fields),
        progress=ProgressBar(not args.quiet),
        **keywords,
    )
    print(f"{args.memory}: {added} exposure{'s' if added != 1 else ''} added")
    return 0


def _memory_status(args: argparse.Namespace) -> int:
    local_path(args.path, "the memory")
    from .remember import status

    found = status(args.path)
    if args.json:
        import json

        print(json.dumps(found, indent=2))
    else:
        print(format_status(found))
    stale = any(run["stale"] for run in found["runs"])
    return 1 if args.check and stale else 0


def format_status(found: dict) -> str:
    """``memory status`` as text: a line per detector, then a line per recorded run."""
    lines = [f"{found['memory']}: {found['entries']} entries"]
    for detector, d in found["detectors"].items():
        programs = ", ".join(d["programs"]) or "-"
        lines.append(
            f"  {detector}: {d['exposures']} exposures, {d['start']} to {d['end']}, "
            f"programs {programs}"
        )
    for run in found["runs"]:
        state = f"STALE ({len(run['stale'])} exposures to add)" if run["stale"] else "up to date"
        lines.append(f"  run {run['output_dir']} ({run['exposures']} exposures): {state}")
    return "\n".join(lines)


def _cmd_simulate(args: argparse.Namespace) -> int:
    directory = local_path(args.directory, "the directory")
    from .simulate import example_program

    written = example_program(directory, ngroups=args.groups, seed=args.seed)
    for path in written:
        print(os.path.relpath(path))
    return 0


class _Said(logging.Formatter):
    """``miripersist: warning: ...`` for every warning, whether or not its text says so."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING and not text.startswith("warning:"):
            text = "warning: " + text
        return "miripersist: " + text


def _terminate(signum, frame) -> None:
    # SIGTERM (a batch system's wall-time kill) stops like Ctrl-C: temporaries are removed,
    # finished outputs and the store stay consistent, and a rerun resumes.
    raise KeyboardInterrupt


def _path_in(exc: BaseException) -> str | None:
    """The file an exception is about: its ``filename``, or a path its message starts with."""
    filename = getattr(exc, "filename", None)
    if isinstance(filename, str | bytes | os.PathLike) and os.fspath(filename):
        return os.fsdecode(filename)
    head, colon, _ = str(exc).partition(": ")
    if not colon or not head or "\n" in head:
        return None
    if os.path.exists(head) or (os.sep in head and not any(c.isspace() for c in head)):
        return head
    return None


def unexpected_error(exc: BaseException, command: str) -> str:
    """One line for an exception that is not one of this tool's own errors.

    Parameters
    ----------
    exc : BaseException
        The exception.
    command : str
        The subcommand that raised it.

    Returns
    -------
    str
        ``FILE: unexpected error in 'miripersist COMMAND': Type: message``, without
        ``FILE: `` when no file is known; only the first line of the message.
    """
    path = _path_in(exc)
    text = str(exc).strip()
    if path is not None and text.startswith(f"{path}: "):
        text = text[len(path) + 2 :]  # named once, in front
    text = text.splitlines()[0] if text else ""
    if len(text) > 300:
        text = text[:297] + "..."
    what = f"unexpected error in 'miripersist {command}'"
    kind = type(exc).__name__
    return (f"{path}: " if path else "") + f"{what}: {kind}" + (f": {text}" if text else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``miripersist`` command; returns the exit code.

    Every failure ends in one line on stderr naming the file where one is known: this
    tool's own errors (exit code 1 or 2), an I/O error, an interruption and, as a last
    line of defence, any other exception (exit code 1). With ``--debug``, the traceback
    is printed before that line.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.WARNING, format="miripersist: %(message)s")

    def fail(message: str, code: int, hint: bool = False) -> int:
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        elif hint:
            message += " (run again with --debug for the traceback)"
        print(f"miripersist: error: {message}", file=sys.stderr)
        return code

    # The package's warnings go to this command's stderr, once each, whatever the root
    # logger was given by a host program.
    own = logging.getLogger("miripersist")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_Said())
    propagate = own.propagate
    own.addHandler(console)
    own.propagate = False
    try:
        return {
            "run": _cmd_run,
            "report": _cmd_report,
            "demo": _cmd_demo,
            "methods": _cmd_methods,
            "simulate": _cmd_simulate,
            "memory": _cmd_memory,
        }[args.command](args)
    except MiripersistError as exc:
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("miripersist: interrupted; run the same command again to resume", file=sys.stderr)
        return 1
    except OSError as exc:
        path = _path_in(exc)
        return fail((f"{path}: " if path else "") + f"{exc.strerror or exc}", 1)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        return fail(unexpected_error(exc, args.command), 1, hint=True)
    finally:
        own.removeHandler(console)
        own.propagate = propagate


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
