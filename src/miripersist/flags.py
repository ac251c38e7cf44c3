"""DQ flag names as jwst spells them, turned into pixel DQ bit values."""

from stdatamodels.jwst.datamodels import dqflags

from .errors import ConfigError

SATURATED_GROUP = int(dqflags.group["SATURATED"])
NO_SAT_CHECK = int(dqflags.pixel["NO_SAT_CHECK"])


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
            if name not in dqflags.pixel:
                known = ", ".join(sorted(dqflags.pixel))
                raise ConfigError(f"--flags: {name!r} is not a jwst pixel DQ flag (known: {known})")
            value |= int(dqflags.pixel[name])
    if value <= 0 or value >= 2**32:
        raise ConfigError(f"--flags: {spec!r} gives no usable 32-bit flag value")
    return value


def flag_names(value: int) -> str:
    """Return the jwst names of the bits set in ``value``, comma-separated."""
    names = [name for name, bit in dqflags.pixel.items() if bit and value & bit == bit]
    return ",".join(names)
