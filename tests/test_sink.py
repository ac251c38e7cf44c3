"""The sink's contract: a block is stored before its files, marked written only after them."""

from __future__ import annotations

import threading

import pytest

from miripersist.sink import Flight


class Recording:
    """A store that records what is done to it, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def say(self, *event) -> None:
        with self.lock:
            self.events.append(event)

    def written(self, indices: list[int]) -> None:
        self.say("marked", tuple(indices))


def _make(store: Recording):
    def make(writes):
        paths = [write() for write in writes]
        store.say("files", tuple(paths))
        return paths

    return make


def test_store_update_then_files_then_marks(tmp_path):
    store, counts = Recording(), {"written": 0, "whole": 0}
    flight = Flight(lambda lazy: [x * 10 for x in lazy], _make(store), store, counts)
    with flight:
        flight.launch([1, 2], None, [], [])
        assert flight.settle() == [10, 20]
        writes = [lambda: "a.fits", lambda: None]  # None: the file already held it
        flight.launch([3], lambda: store.say("update", 0), writes, [0, 1])
        assert store.events[-1:] != [("marked", (0, 1))]  # not before settle
        assert flight.settle() == [30]
    assert store.events == [("marked", ()), ("update", 0), ("files", ("a.fits", None)),
                            ("marked", (0, 1))]  # fmt: skip
    assert counts == {"written": 1, "whole": 1}


def test_a_failed_write_marks_nothing():
    store, counts = Recording(), {"written": 0, "whole": 0}

    def broken():
        raise OSError(28, "No space left on device")

    flight = Flight(lambda lazy: lazy, _make(store), store, counts)
    with flight:
        flight.launch([], lambda: store.say("update", 0), [broken], [0])
        with pytest.raises(OSError, match="No space"):
            flight.settle()
    assert ("update", 0) in store.events
    assert not any(event[0] == "marked" and event[1] for event in store.events)
    assert counts == {"written": 0, "whole": 0}


def test_a_failed_update_writes_no_file():
    store, counts = Recording(), {"written": 0, "whole": 0}

    def update():
        raise RuntimeError("store unwritable")

    flight = Flight(lambda lazy: lazy, _make(store), store, counts)
    with flight:
        flight.launch([], update, [lambda: "a.fits"], [0])
        with pytest.raises(RuntimeError, match="unwritable"):
            flight.settle()
    assert store.events == []
