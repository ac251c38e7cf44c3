"""The ``stpipe.steps`` entry point: what stpipe's ``strun`` can find here."""


def get_steps() -> list[tuple[str, str, bool]]:
    """Step classes this package provides: (class path, alias, is a pipeline)."""
    return [("miripersist.step.PersistenceMaskStep", "persistence_mask", False)]
