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
