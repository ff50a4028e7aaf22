"""The suite's own guard (tests/conftest.py `no_thread_left_busy`): a spinning thread started
by a module is named; one that was there before the module is not looked at again."""

from __future__ import annotations

import threading

from tests.conftest import busy_threads


def test_a_spinning_thread_is_named_unless_it_was_there_before():
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    before = frozenset(t.ident for t in threading.enumerate())
    spinner = threading.Thread(target=spin, name="spinner", daemon=True)
    spinner.start()
    try:
        # share 0.05: the spinner needs 5% of a core in 0.3 s, even on a busy host
        assert "spinner" in busy_threads(window_s=0.3, share=0.05)
        excluded = frozenset({spinner.ident})
        assert "spinner" not in busy_threads(window_s=0.3, share=0.05, exclude=excluded)
        assert busy_threads(exclude=before | {spinner.ident}) == []
    finally:
        stop.set()
        spinner.join()


def test_an_idle_thread_is_not_busy():
    stop = threading.Event()
    idle = threading.Thread(target=stop.wait, name="idle", daemon=True)
    idle.start()
    try:
        assert busy_threads(window_s=0.2) == []
    finally:
        stop.set()
        idle.join()
