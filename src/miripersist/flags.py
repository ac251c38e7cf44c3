"""DQ flag names as jwst spells them, turned into pixel DQ bit values.

The names and values are stdatamodels' (``stdatamodels.jwst.datamodels.dqflags``), never
written here. Importing that module imports the whole datamodels package, asdf and
astropy.nddata (0.5-0.9 s, a third of a small run), so its two tables are read from its
source instead: the dict displays assigned to ``pixel`` and ``group``, evaluated by
:func:`_evaluate` (integers, ``2**n``, ``<<``, ``|``, and entries of the table read
before). Anything else in them, or a module that cannot be found or read, falls back to
importing it; when it is already imported, its tables are used as they are.
"""

import ast
import os
import sys
from importlib.util import find_spec

from .errors import ConfigError

DQFLAGS = "stdatamodels.jwst.datamodels.dqflags"


def _evaluate(node: ast.expr, tables: dict[str, dict[str, int]]) -> int:
    """The value of one entry of a table: an integer expression, or another table's entry."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow | ast.LShift | ast.BitOr):
        left, right = _evaluate(node.left, tables), _evaluate(node.right, tables)
        if isinstance(node.op, ast.Pow):
            return left**right
        return left << right if isinstance(node.op, ast.LShift) else left | right
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and isinstance(node.slice, ast.Constant)
    ):
        return tables[node.value.id][node.slice.value]
    raise ValueError(f"unexpected expression in {DQFLAGS}: {ast.dump(node)}")


def _from_source() -> dict[str, dict[str, int]]:
    """``pixel`` and ``group`` of the dqflags module, read from its source file."""
    spec = find_spec(DQFLAGS.split(".")[0])  # a top-level name: nothing is imported
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{DQFLAGS} not found")
    path = os.path.join(spec.submodule_search_locations[0], "jwst", "datamodels", "dqflags.py")
    with open(path, "rb") as fh:
        tree = ast.parse(fh.read(), path)
    tables: dict[str, dict[str, int]] = {}
    for stmt in tree.body:
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id in ("pixel", "group")
        ):
            continue
        name = stmt.targets[0].id
        if not isinstance(stmt.value, ast.Dict):
            raise ValueError(f"{path}: {name} is not a dict display")
        table = {}
        for key, value in zip(stmt.value.keys, stmt.value.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise ValueError(f"{path}: a key of {name} is not a string")
            table[key.value] = _evaluate(value, tables)
        tables[name] = table
    if set(tables) != {"pixel", "group"}:
        raise ValueError(f"{path}: no pixel and group tables")
    return tables


def _tables() -> dict[str, dict[str, int]]:
    module = sys.modules.get(DQFLAGS)
    if module is None:
        try:
            return _from_source()
        except (ImportError, OSError, SyntaxError, ValueError, KeyError, TypeError):
            import importlib

            module = importlib.import_module(DQFLAGS)
    return {"pixel": dict(module.pixel), "group": dict(module.group)}


_TABLES = _tables()
#: ``dqflags.pixel`` and ``dqflags.group``: jwst's flag names and bit values.
PIXEL: dict[str, int] = _TABLES["pixel"]
GROUP: dict[str, int] = _TABLES["group"]

SATURATED_GROUP = int(GROUP["SATURATED"])
NO_SAT_CHECK = int(PIXEL["NO_SAT_CHECK"])


def parse_flags(spec: str | int) -> int:
    """Turn ``"DO_NOT_USE,PERSISTENCE"`` (or an integer) into a pixel DQ value.

    Parameters
    ----------
    spec : str or int
        Comma-separated names from ``stdatamodels.jwst.datamodels.dqflags.pixel``,
        or a positive integer bit mask.

    Returns
    -------
    int
        The bitwise OR of the named flags.

    Raises
    ------
    ConfigError
        If a name is not a jwst pixel DQ flag, or the result is zero.
    """
    if isinstance(spec, int):
        value = spec
    else:
        value = 0
        for raw in str(spec).split(","):
            name = raw.strip().upper()
            if not name:
                continue
            if name.isdigit():
                value |= int(name)
                continue
            if name not in PIXEL:
                known = ", ".join(sorted(PIXEL))
                raise ConfigError(f"--flags: {name!r} is not a jwst pixel DQ flag (known: {known})")
            value |= int(PIXEL[name])
    if value <= 0 or value >= 2**32:
        raise ConfigError(f"--flags: {spec!r} gives no usable 32-bit flag value")
    return value


def flag_names(value: int) -> str:
    """Return the jwst names of the bits set in ``value``, comma-separated."""
    names = [name for name, bit in PIXEL.items() if bit and value & bit == bit]
    return ",".join(names)
