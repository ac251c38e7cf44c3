"""DQ flag names as jwst spells them, turned into pixel DQ bit values.

The tables are stdatamodels' ``dqflags.pixel`` and ``dqflags.group``, written out: importing
that module imports the whole datamodels package, asdf and astropy.nddata (0.5-0.9 s, a
third of a small run). A test checks them equal to stdatamodels' own, entry for entry and in
order, so a release that changes a bit fails the suite rather than a run.
"""

from .errors import ConfigError

#: ``stdatamodels.jwst.datamodels.dqflags.pixel``: jwst's pixel DQ names and bits, in its order.
PIXEL: dict[str, int] = {
    "GOOD": 0,
    "DO_NOT_USE": 1 << 0,
    "SATURATED": 1 << 1,
    "JUMP_DET": 1 << 2,
    "DROPOUT": 1 << 3,
    "OUTLIER": 1 << 4,
    "PERSISTENCE": 1 << 5,
    "AD_FLOOR": 1 << 6,
    "CHARGELOSS": 1 << 7,
    "RESERVED": 1 << 8,
    "NON_SCIENCE": 1 << 9,
    "DEAD": 1 << 10,
    "HOT": 1 << 11,
    "WARM": 1 << 12,
    "LOW_QE": 1 << 13,
    "RC": 1 << 14,
    "TELEGRAPH": 1 << 15,
    "NONLINEAR": 1 << 16,
    "BAD_REF_PIXEL": 1 << 17,
    "NO_FLAT_FIELD": 1 << 18,
    "NO_GAIN_VALUE": 1 << 19,
    "NO_LIN_CORR": 1 << 20,
    "NO_SAT_CHECK": 1 << 21,
    "UNRELIABLE_BIAS": 1 << 22,
    "UNRELIABLE_DARK": 1 << 23,
    "UNRELIABLE_SLOPE": 1 << 24,
    "UNRELIABLE_FLAT": 1 << 25,
    "OPEN": 1 << 26,
    "ADJ_OPEN": 1 << 27,
    "FLUX_ESTIMATED": 1 << 28,
    "MSA_FAILED_OPEN": 1 << 29,
    "OTHER_BAD_PIXEL": 1 << 30,
    "REFERENCE_PIXEL": 1 << 31,
}
#: ``stdatamodels.jwst.datamodels.dqflags.group``: jwst's group DQ names and bits.
GROUP: dict[str, int] = {
    "GOOD": 0,
    "DO_NOT_USE": 1 << 0,
    "SATURATED": 1 << 1,
    "JUMP_DET": 1 << 2,
    "DROPOUT": 1 << 3,
    "PERSISTENCE": 1 << 5,
    "AD_FLOOR": 1 << 6,
    "CHARGELOSS": 1 << 7,
}

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
