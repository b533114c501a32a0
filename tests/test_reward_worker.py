"""The reward worker's timers: a swallowed request timer is a timeout; a step's own limit is not."""

from __future__ import annotations

import textwrap

import pytest

from mirage.rewards import worker

ROLE = textwrap.dedent('''
    from mirage.rewards import worker

    def spin_swallowed():
        try:
            while True:
                pass
        except BaseException:  # upstream style: catches the request's own timer
            return "verdict"

    def bounded_step():
        try:
            with worker.time_limit(0.05):
                while True:
                    pass
        except worker.SoftTimeout:
            pass  # the step's own limit, handled by its caller: the request goes on
        return "answer"

    def handlers():
        return {"spin_swallowed": spin_swallowed, "bounded_step": bounded_step}
''')


@pytest.fixture
def child(tmp_path, monkeypatch):
    (tmp_path / "timer_role.py").write_text(ROLE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    w = worker.Worker("timer_role:handlers", None)
    yield w
    w.close()


@pytest.mark.timeout(120)
def test_a_swallowed_request_timer_is_a_timeout_and_a_handled_step_limit_is_not(child):
    with pytest.raises(worker.WorkerTimeout, match="timed out"):
        child.call("spin_swallowed", {}, timeout=0.3)
    for _ in range(3):  # the flag is reset per request, and a step limit inside one never leaks out
        assert child.call("bounded_step", {}, timeout=5.0) == "answer"
    with pytest.raises(worker.WorkerTimeout):
        child.call("spin_swallowed", {}, timeout=0.3)
