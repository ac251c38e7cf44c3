"""Persistence-array files in the format of jwst's PersistenceStep (ASDF).

The step reads and writes ``{DETECTOR: {"filename", "rows", "cols", "vals",
"pers_time"}}``: the window end (Unix seconds) of every pixel with an open window, by row
and column of the exposure's own array, and the window length it was made with
(``jwst/persistence/persistence_step.py``). Files written here load in the step as its
``persistence_array_file`` and in :func:`read_state` as ``--history``.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from .errors import ConfigError, brief
from .saturation import pixels

#: Name of the state after a run's last exposures, in the output directory.
FINAL_STATE = "persistence_state.asdf"
#: Suffix of an exposure's state file (the state just before it).
STATE_SUFFIX = "_persistence_state.asdf"


def state_entry(
    window_ends: np.ndarray, filename: str, pers_time: int, frame: tuple[int, int] = (1, 1)
) -> dict:
    """One detector's entry, as the step's ``write_persistence_array`` makes it.

    ``frame`` is the 1-indexed detector column and row of the array's first pixel
    (SUBSTRT1, SUBSTRT2), recorded as ``xstart`` and ``ystart`` beside the step's keys
    (which the step ignores), so that a subarray's state can serve as ``--history``.
    """
    rows, cols = pixels(window_ends != 0.0)
    return {
        "filename": filename,
        "rows": rows,
        "cols": cols,
        "vals": window_ends[rows, cols],
        "pers_time": int(pers_time),
        "xstart": int(frame[0]),
        "ystart": int(frame[1]),
    }


#: The keys of a detector's entry, as :func:`state_entry` makes it, with their types.
ENTRY_KEYS = {"filename": str, "rows": np.ndarray, "cols": np.ndarray, "vals": np.ndarray,
              "pers_time": int, "xstart": int, "ystart": int}  # fmt: skip


def state_bytes(tree: dict) -> bytes:
    """The ASDF file of a tree of detector entries.

    A tree of :func:`state_entry` entries is written by :func:`lean_state_bytes`, anything
    else by asdf itself (:func:`asdf_state_bytes`).
    """
    return lean_state_bytes(tree) if is_entry_tree(tree) else asdf_state_bytes(tree)


def is_entry_tree(tree: dict) -> bool:
    """Whether every value of ``tree`` is exactly an entry of :func:`state_entry`."""
    for detector, entry in tree.items():
        if not (isinstance(detector, str) and isinstance(entry, dict)):
            return False
        if set(entry) != set(ENTRY_KEYS):
            return False
        if any(type(entry[key]) is not kind for key, kind in ENTRY_KEYS.items()):
            return False
        if any(entry[key].ndim != 1 for key in ("rows", "cols", "vals")):
            return False
    return True


def asdf_state_bytes(tree: dict) -> bytes:
    """The ASDF file of any tree, as asdf writes it."""
    import io

    import asdf

    buffer = io.BytesIO()
    asdf.AsdfFile(tree).write_to(buffer)
    return buffer.getvalue()


def lean_state_bytes(tree: dict) -> bytes:
    """The ASDF file of a tree of :func:`state_entry` entries, written without asdf.

    asdf validates every tree it writes against its schemas and, through its JSON-schema
    resolver, parses the ndarray schemas' YAML again on every write (12 ms a state file; a
    program writes one per exposure), and its first write loads every installed asdf
    extension (2 s: gwcs, stdatamodels, asdf-astropy). This writes only such a tree
    (:func:`is_entry_tree`), as asdf 5 writes it: a YAML tree of ``core/ndarray-1.1.0``
    arrays stored in binary blocks with MD5 checksums. asdf reads it back to the same tree
    (tested) and so does the pipeline's step. The same tree gives the same bytes.
    """
    from . import __version__

    lines = [
        "#ASDF 1.0.0",
        "#ASDF_STANDARD 1.6.0",
        "%YAML 1.1",
        "%TAG ! tag:stsci.edu:asdf/",
        "--- !core/asdf-1.1.0",
        "asdf_library: !core/software-1.0.0 {name: miripersist, version: "
        + _yaml_string(str(__version__))
        + "}",
    ]
    blocks: list[np.ndarray] = []
    for detector, entry in tree.items():
        lines.append(f"{_yaml_string(str(detector))}:")
        lines.append(f"  filename: {_yaml_string(str(entry['filename']))}")
        for key in ("rows", "cols", "vals"):
            dtype = np.dtype("<f8") if key == "vals" else np.dtype("<i8")
            data = np.ascontiguousarray(entry[key], dtype=dtype)
            lines += [
                f"  {key}: !core/ndarray-1.1.0",
                f"    source: {len(blocks)}",
                f"    datatype: {'float64' if key == 'vals' else 'int64'}",
                "    byteorder: little",
                f"    shape: [{data.size}]",
            ]
            blocks.append(data)
        lines.append(f"  pers_time: {int(entry['pers_time'])}")
        for key in ("xstart", "ystart"):
            if key in entry:
                lines.append(f"  {key}: {int(entry[key])}")
    out = ["\n".join(lines).encode() + b"\n...\n"]
    for data in blocks:
        raw = data.tobytes()
        out.append(
            _BLOCK_MAGIC
            + struct.pack(
                ">HIIQQQ16s",
                48,  # the header's size after this field
                0,  # flags: not streamed
                0,  # compression: none
                len(raw),  # allocated
                len(raw),  # used
                len(raw),  # data
                hashlib.md5(raw).digest(),  # noqa: S324 - the standard's block checksum
            )
            + raw
        )
    return b"".join(out)


_BLOCK_MAGIC = b"\xd3BLK"


def _yaml_string(text: str) -> str:
    """A YAML double-quoted scalar on one line, escaped by YAML's own emitter."""
    import yaml

    return yaml.safe_dump(text, default_style='"', width=1 << 30, allow_unicode=False).strip()


def read_state(path: str, pers_time: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Window ends per detector from a persistence-array file, as full images of ``shape``.

    Raises
    ------
    ConfigError
        If the file is not such a file, or was made with another window (the step would
        silently start afresh; here it is a mistake to say).
    """
    import asdf

    out: dict[str, np.ndarray] = {}
    try:
        with asdf.open(path, memmap=False) as af:
            for detector, entry in af.tree.items():
                if not (isinstance(entry, dict) and {"rows", "cols", "vals"} <= entry.keys()):
                    continue
                if int(entry.get("pers_time", -1)) != int(pers_time):
                    raise ConfigError(
                        f"{path}: {detector} state was made with a window of "
                        f"{entry.get('pers_time')} s, this run's is {pers_time} s"
                    )
                # A subarray's state (this tool's files say where it lies; the step's
                # own files do not, and are taken as full frame) in detector coordinates.
                rows = np.asarray(entry["rows"]) + int(entry.get("ystart", 1)) - 1
                cols = np.asarray(entry["cols"]) + int(entry.get("xstart", 1)) - 1
                if rows.size and (rows.max() >= shape[0] or cols.max() >= shape[1]):
                    raise ConfigError(
                        f"{path}: {detector} state is not full-frame (a pixel beyond "
                        f"{shape[1]} x {shape[0]}); give a run's final {FINAL_STATE}"
                    )
                image = np.zeros(shape, dtype=np.float64)
                image[rows, cols] = np.asarray(entry["vals"], dtype=np.float64)
                out[str(detector)] = image
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not a persistence-array ASDF file ({brief(exc, 120)})"
        ) from None
    return out


def last_filenames(path: str) -> dict[str, str]:
    """The exposure each detector's state in a persistence-array file ends with."""
    import asdf

    with asdf.open(path, memmap=False) as af:
        return {
            str(d): str(e.get("filename", ""))
            for d, e in af.tree.items()
            if isinstance(e, dict) and "vals" in e
        }
