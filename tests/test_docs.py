"""Every command and code block of README.md and docs/*.md runs, as a reader would run it.

Fenced ``bash``, ``sh``, ``console`` and ``python`` blocks are run in order, one sandbox
directory per page, as someone following the page would type them. The sandbox holds a
small synthetic program under the names the pages use: ``obs1/``, ``obs2/`` and
``visit3/`` (two exposures each, in time order), ``my_asn.json`` and its two members,
``sat.fits`` and ``jwst_miri_saturation_0034.fits`` (the program's SATURATION reference),
``mask.fits``, ``gain.fits`` and ``readnoise.fits``. A block that cannot run here (an
install, a batch system, the full pipeline with CRDS) is marked in the Markdown by an HTML
comment just before it, ``<!-- no-run: why -->``; blocks of any other language (output,
diagrams) are text and not run. A block marked ``<!-- file: NAME -->`` is a file the reader
saves (a batch script): it is written as NAME in the sandbox, for the blocks after it to use.
The pages' ``sbatch`` commands go to the tests' real SLURM (tests/slurm.py), whose site
settings are conftest's ``JOBQUEUE_YAML``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from miripersist.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: The pages in the order a reader meets them: the README, then the guide's table of contents.
GUIDE = re.search(
    r"```\{toctree\}\n(?:.*\n)*?:caption: Guide\n\n((?:\S+\n)+)```",
    (ROOT / "docs" / "index.md").read_text(encoding="utf-8"),
)[1].split()
PAGES = [
    ROOT / "README.md",
    *(ROOT / "docs" / f"{name}.md" for name in GUIDE),
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.stem not in GUIDE),
]
RUN = {"bash": "bash", "sh": "bash", "shell": "bash", "console": "console", "python": "python",
       "toml": "toml", "yaml": "yaml"}  # fmt: skip
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
NO_RUN = re.compile(r"^\s*<!--\s*no-run:(?P<reason>.*?)-->\s*$")
FILE = re.compile(r"^\s*<!--\s*file:\s*(?P<name>[\w.-]+)\s*-->\s*$")
#: No-run blocks are the exception: a page that needs more should make its blocks runnable.
MOST_NO_RUN = 12
BLOCK_TIMEOUT = 300


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    no_run: str | None  # the reason, for a block marked no-run
    file: str | None = None  # the name it is saved as, for a block marked file

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, with the no-run reason written just before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = [line[indent:] if line[:indent].strip() == "" else line for line in lines[i + 1 : j]]
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NO_RUN.match(lines[k]) if k >= 0 else None
        saved = FILE.match(lines[k]) if k >= 0 else None
        found.append(
            Block(
                page,
                i + 1,
                m["info"].lower(),
                "\n".join(body) + "\n",
                marker["reason"].strip() if marker else None,
                saved["name"] if saved else None,
            )
        )
        i = j + 1
    return found


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang in RUN and b.no_run is None]


def console_commands(text: str) -> str:
    """The commands of a console transcript: ``$ `` lines and their continuation lines."""
    out, going_on = [], False
    for line in text.splitlines():
        if line.startswith("$ "):
            out.append(line[2:])
        elif going_on:
            out.append(line)
        else:
            continue
        going_on = line.rstrip().endswith("\\")
    return "\n".join(out) + "\n"


# --- the sandbox -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The program the pages name, as ``miripersist simulate`` writes it, made once."""
    root = tmp_path_factory.mktemp("docs-program") / "sandbox"
    assert main(["simulate", str(root)]) == 0
    return root


def sandbox(template: Path, where: Path) -> Path:
    """A fresh copy of the template (hard links: the pages never change an input)."""

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(template, where, copy_function=link)
    return where


TOML_CHECK = "import sys, tomllib; tomllib.load(open(sys.argv[1], 'rb'))"
YAML_CHECK = "import sys, yaml; yaml.safe_load(open(sys.argv[1]))"
#: What this test session set for its own jwst steps (conftest.py), kept from the blocks.
BLOCK_UNSET = ("PYTHONPATH", "CRDS_PATH", "CRDS_SERVER_URL", "STPIPE_DISABLE_CRDS_STEPPARS")


def run_block(
    block: Block, cwd: Path, scratch: Path, warm: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a block in ``cwd``; with ``warm`` (a directory of shims, see :func:`warm`), its
    Python and its ``miripersist`` and ``strun`` commands start in a pre-warmed interpreter.

    ``env`` (default: this process's) is the reader's environment. A file block is saved.
    """
    if block.file is not None:
        saved = cwd / block.file
        saved.write_text(block.text)
        saved.chmod(0o755)
        return subprocess.CompletedProcess([], 0, "", "")
    env = dict(os.environ if env is None else env)
    path = [os.path.dirname(sys.executable), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join([str(warm), *path] if warm else path)
    env["MPLBACKEND"] = "Agg"
    # A block that runs jwst offline says how itself, as a reader must: the settings this
    # test session made for its own jwst steps are not passed on.
    for name in BLOCK_UNSET:
        env.pop(name, None)
    kind = RUN[block.lang]
    if kind == "python":
        script = scratch / f"block_{block.line}.py"
        script.write_text(block.text)
        command = [str(warm / "_warm") if warm else sys.executable, str(script)]
    elif kind in ("toml", "yaml"):  # a packaging or settings file: it must parse
        script = scratch / f"block_{block.line}.{kind}"
        script.write_text(block.text)
        check = TOML_CHECK if kind == "toml" else YAML_CHECK
        command = [sys.executable, "-c", check, str(script)]
    else:
        text = block.text if kind == "bash" else console_commands(block.text)
        command = ["bash", "-e", "-o", "pipefail", "-c", text]
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


# A block's command spends about 3 s importing jwst, dask, xarray and matplotlib before it does
# anything, and the pages hold about twenty: most of this test's time. So commands start in a
# fork of one interpreter that imported them once. A shim named like the command sends its
# arguments, working directory, environment and standard streams to that server, which forks;
# the child runs the very script the command would (the console script, or the block's file)
# as __main__, and the shim exits with its exit code.
ZYGOTE = r"""
import json, logging, os, runpy, signal, socket, sys, threading, traceback
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import miripersist.cli, miripersist.engine, miripersist.report, miripersist.html_report
import miripersist.step, stpipe._cli.strun, jwst.pipeline
assert threading.active_count() == 1, "no thread may run in a process that forks"
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(16)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    size = int.from_bytes(data[:8], "big")
    body = data[8:]
    while len(body) < size:
        body += conn.recv(size - len(body))
    request = json.loads(body)
    if os.fork():
        for fd in fds:
            os.close(fd)
        conn.close()
        continue
    server.close()
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        try:
            conn.sendall(str(code).encode())
        finally:
            os._exit(code)
"""

SHIM = """#!{python} -S
import json, os, socket, sys
argv = {argv} + sys.argv[1:]
body = json.dumps({{"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
with socket.socket(socket.AF_UNIX) as s:
    s.connect({socket!r})
    socket.send_fds(s, [len(body).to_bytes(8, "big") + body], [0, 1, 2])
    answer = s.recv(16)
sys.exit(int(answer) if answer else 1)
"""


@pytest.fixture(scope="module")
def warm(tmp_path_factory, reader_env):
    """A directory of shims (``miripersist``, ``strun``, and ``_warm SCRIPT``) for the server.

    The server starts in the reader's environment: dask reads where its configuration is
    (``DASK_CONFIG``) as it is imported. (A batch job's ``miripersist`` is then a fork of the
    server, outside the job's processes: tests/test_slurm.py runs the real thing.)
    """
    shims = tmp_path_factory.mktemp("warm")
    sock = str(shims / "zygote.sock")
    server = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, sock],
        stdout=subprocess.PIPE,
        stderr=open(shims / "zygote.log", "w"),  # the server's, for its life
        text=True,
        env={k: v for k, v in (reader_env or os.environ).items() if k not in BLOCK_UNSET}
        | {"MPLBACKEND": "Agg"},
    )
    try:
        if server.stdout.readline().strip() != "ready":
            log = _tail((shims / "zygote.log").read_text(), 5)
            warnings.warn(f"no warm interpreter, blocks start cold:\n{log}", stacklevel=1)
            yield None
            return
        bin_dir = Path(sys.executable).parent
        for name, argv in (
            ("miripersist", [str(bin_dir / "miripersist")]),
            ("strun", [str(bin_dir / "strun")]),
            ("_warm", []),
        ):
            shim = shims / name
            shim.write_text(SHIM.format(python=sys.executable, argv=argv, socket=sock))
            shim.chmod(0o755)
        yield shims
    finally:
        server.kill()
        server.wait()


def _tail(text: str, n: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


# --- the tests -------------------------------------------------------------------------------


def test_every_block_is_run_or_marked_with_a_reason():
    no_run = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        starts = {b.line for b in blocks(page)}
        for n, line in enumerate(lines, 1):
            if NO_RUN.match(line):
                after = next(
                    (k for k in range(n + 1, len(lines) + 1) if lines[k - 1].strip()), None
                )
                assert after in starts, f"{page.name}:{n}: a no-run mark not just before a block"
        for b in blocks(page):
            if b.no_run is not None:
                assert b.no_run, f"{b.where}: no-run needs a reason"
                assert b.lang in RUN, f"{b.where}: a {b.lang or 'plain'} block is never run"
                no_run.append(b)
    assert len(no_run) <= MOST_NO_RUN, [b.where for b in no_run]
    assert sum(len(runnable(p)) for p in PAGES) >= 10


def test_the_collector_reads_indented_blocks_and_marks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n- a list item:\n\n  <!-- no-run: needs a cluster -->\n  ```bash\n"
        "  sbatch job.sh\n  ```\n\n```python\nprint(1)\n```\n\n```\nplain output\n```\n"
        "\n```console\n$ echo a \\\n  b\na b\n```\n"
    )
    found = blocks(page)
    assert [(b.lang, b.no_run) for b in found] == [
        ("bash", "needs a cluster"),
        ("python", None),
        ("", None),
        ("console", None),
    ]
    assert found[0].text == "sbatch job.sh\n"
    assert console_commands(found[3].text) == "echo a \\\n  b\n"


def run_page(page: Path, cwd: Path, work: Path, warm: Path | None, env: dict) -> str | None:
    """Run a page's blocks in order in ``cwd``; the first failure, described."""
    for block in runnable(page):
        done = run_block(block, cwd, work, warm, env)
        if done.returncode != 0:
            jobs = "".join(
                f"\n--- {log.name} ---\n{_tail(log.read_text())}"
                for log in sorted(cwd.glob("slurm-*.out"), key=os.path.getmtime)[-2:]
            )
            return (
                f"{block.where}: the {block.lang} block failed (exit {done.returncode}):\n"
                f"{textwrap.indent(block.text, '    ')}\n--- stdout ---\n{_tail(done.stdout)}"
                f"\n--- stderr ---\n{_tail(done.stderr)}{jobs}"
            )
    return None


def uses_slurm(page: Path) -> bool:
    """Whether a page's blocks submit to a batch system."""
    return any(re.search(r"^\$? ?\S*=?\$?\(?sbatch ", b.text, re.M) for b in runnable(page))


@pytest.fixture(scope="module")
def reader_env(request) -> dict | None:
    """The reader's environment: a SLURM user's (tests/slurm.py) where SLURM is installed."""
    try:
        return dict(request.getfixturevalue("site"))
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="module")
def page_results(template, warm, tmp_path_factory, reader_env):
    """Every page run in reading order, one after another, in one folder.

    A reader follows the pages one after another in the folder ``miripersist simulate``
    made: what one page leaves there (outputs, stores) is what the next one meets. Pages
    that submit batch jobs are left out where there is no SLURM.
    """
    work = tmp_path_factory.mktemp("pages")
    cwd = sandbox(template, work / "sandbox")
    pool = ThreadPoolExecutor(max_workers=1)
    env = reader_env or dict(os.environ)
    futures = {
        page: pool.submit(run_page, page, cwd, work, warm, env)
        for page in PAGES
        if reader_env is not None or not uses_slurm(page)
    }
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize(
    "page", [p for p in PAGES if runnable(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_page_runs(page, page_results):
    """The page's blocks, in order, after the pages before it, each exits 0."""
    if page not in page_results:
        pytest.skip("its blocks submit batch jobs, and there is no SLURM here (.ci/run has one)")
    failure = page_results[page].result(timeout=BLOCK_TIMEOUT * len(runnable(page)) * len(PAGES))
    assert failure is None, failure


def test_documented_header_cards_are_the_ones_written(template, tmp_path):
    from astropy.io import fits

    import miripersist

    miripersist.run(
        [str(template / "obs1")],
        str(tmp_path),
        [str(template / "sat.fits")],
        miripersist.Parameters(mode="sidecar"),
    )
    written = set()
    for path in tmp_path.glob("*_persistence_dq.fits"):
        written |= {key for key in fits.getheader(path) if key.startswith("MP")}
    documented = set(re.findall(r"`(MP[A-Z]+)`", (ROOT / "docs" / "cli.md").read_text()))
    assert written and documented == written


def test_the_step_page_names_every_step_parameter():
    from miripersist.options import OPTIONS

    text = (ROOT / "docs" / "pipeline.md").read_text()
    assert [o.key for o in OPTIONS if f"`{o.key}`" not in text] == []


def test_the_documented_defaults_are_the_option_table_s():
    from miripersist.options import OPTIONS

    rows = {}
    for line in (ROOT / "docs" / "cli.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        if len(cells) == 3 and cells[0].startswith("`--"):
            rows.setdefault(cells[0].strip("`").split()[0], cells[1].strip("`"))
    for option in OPTIONS:
        if option.kind == "bool":
            assert rows[option.cli] == "off", option.cli
        elif option.kind in ("int", "choice", "rule"):
            assert rows[option.cli] == str(option.default), option.cli


def _commands(parser, prefix=""):
    """Every command of the parser, ``memory add`` among them, with its own parser."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


def test_documented_options_are_the_parser_s():
    from miripersist.cli import build_parser

    commands = dict(_commands(build_parser()))
    assert "memory add" in commands and "memory status" in commands
    text = (ROOT / "docs" / "cli.md").read_text()
    for name, sub in commands.items():
        options = {o for a in sub._actions for o in a.option_strings if o.startswith("--")}
        options -= {"--help"}
        missing = sorted(o for o in options if f"`{o}" not in text and f" {o}" not in text)
        assert not missing, f"miripersist {name}: options not in docs/cli.md: {missing}"
    for option in set(re.findall(r"`(--[a-z][a-z-]+)", text)):
        assert any(
            option in a.option_strings for s in commands.values() for a in s._actions
        ) or option.startswith("--steps"), f"docs/cli.md names {option}, which no command has"
