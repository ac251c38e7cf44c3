"""The sink's contract: a block is stored before its files, marked written only after them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from miripersist.sink import Flight, Handover
from miripersist.store import StoreUpdate


class Recording:
    """A store that records what is done to it, in order."""

    def __init__(self, broken: bool = False) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()
        self.broken = broken

    def say(self, *event) -> None:
        with self.lock:
            self.events.append(event)

    def block(self, update: StoreUpdate) -> None:
        if self.broken:
            raise RuntimeError("store unwritable")
        self.say("update", update.start, tuple(update.unwritten))

    def written(self, indices: list[int]) -> None:
        self.say("marked", tuple(indices))


def _make(store: Recording):
    def make(writes):
        paths = [write() for write in writes]
        store.say("files", tuple(paths))
        return paths

    return make


def _update(start: int, unwritten: list[int]) -> StoreUpdate:
    image = np.zeros((1, 2, 2), bool)
    return StoreUpdate(start, image, image, np.zeros(1), np.zeros(1), unwritten, [""])


def _write(output):
    """Outputs here are the path a write returns (None: the file already held it)."""
    if isinstance(output, Exception):
        raise output
    return output


def test_store_update_then_files_then_marks():
    store, counts = Recording(), {"written": 0, "whole": 0}
    flight = Flight(lambda lazy: [x * 10 for x in lazy], _make(store), store, _write, counts)
    with flight:
        flight.launch([1, 2])
        assert flight.settle() == [10, 20]
        flight.launch([3], Handover(_update(0, [0]), ["a.fits", None], [0, 1]))
        assert flight.settle() == [30]
    assert store.events == [("marked", ()), ("update", 0, (0,)), ("files", ("a.fits", None)),
                            ("marked", (0, 1))]  # fmt: skip
    assert counts == {"written": 1, "whole": 1}


def test_a_failed_write_marks_nothing():
    store, counts = Recording(), {"written": 0, "whole": 0}
    flight = Flight(lambda lazy: lazy, _make(store), store, _write, counts)
    with flight:
        flight.launch([], Handover(_update(0, [0]), [OSError(28, "No space left on device")], [0]))
        with pytest.raises(OSError, match="No space"):
            flight.settle()
    assert ("update", 0, (0,)) in store.events
    assert not any(event[0] == "marked" and event[1] for event in store.events)
    assert counts == {"written": 0, "whole": 0}


def test_a_failed_update_writes_no_file():
    store, counts = Recording(broken=True), {"written": 0, "whole": 0}
    flight = Flight(lambda lazy: lazy, _make(store), store, _write, counts)
    with flight:
        flight.launch([], Handover(_update(0, [0]), ["a.fits"], [0]))
        with pytest.raises(RuntimeError, match="unwritable"):
            flight.settle()
    assert store.events == []
