"""Errors with one-line messages that name the file and the problem."""


class MiripersistError(Exception):
    """A run failed; the message is one line meant for the user (exit code 1)."""

    exit_code = 1


class InputError(MiripersistError):
    """An input file cannot be used: the message names the file and the problem."""

    @classmethod
    def listing(cls, problems: list[str]) -> "InputError":
        """One error for several bad inputs: a line each."""
        if len(problems) == 1:
            return cls(problems[0])
        return cls(f"{len(problems)} inputs cannot be used:\n" + "\n".join(problems))


class ConfigError(MiripersistError):
    """The command line or the configuration is wrong (exit code 2)."""

    exit_code = 2


def brief(text: object, limit: int = 160) -> str:
    """Another library's message in one line: whitespace collapsed, cut at a word.

    Parameters
    ----------
    text : object
        The message (an exception's ``str`` is taken).
    limit : int
        Most characters kept; a longer message ends at the last whole word, then "...".
    """
    words = " ".join(str(text).split())
    if len(words) <= limit:
        return words
    cut = words[:limit].rsplit(" ", 1)[0] if " " in words[:limit] else words[:limit]
    return cut.rstrip(" ,;:") + " ..."
