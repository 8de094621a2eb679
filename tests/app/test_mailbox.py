"""Mailbox (drop-oldest) and Channel (lossless, bounded): counting, blocking, closing."""
import threading
import time

import pytest

from app.live.mailbox import Channel, Closed, Mailbox, wait_any


def _in_thread(fn):
    """Run `fn` in a thread; returns (thread, box) where box["result"/"error"] is filled."""
    out = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as exc:  # the test inspects what the call raised
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def test_mailbox_keeps_newest_and_counts_drops():
    box = Mailbox(1)
    assert box.put(1) == 0
    assert box.put(2) == 1
    assert box.put(3) == 1
    assert box.dropped == 2 and box.put_count == 3
    assert box.get_nowait() == 3
    assert box.get_nowait() is None
    assert box.get_count == 1


def test_mailbox_with_n_slots_drops_only_beyond_capacity():
    box = Mailbox(3)
    for i in range(7):
        box.put(i)
    assert box.dropped == 4
    assert [box.get_nowait() for _ in range(3)] == [4, 5, 6]
    assert box.peek() is None


def test_get_times_out_with_none():
    box = Mailbox(1)
    t0 = time.monotonic()
    assert box.get(timeout=0.05) is None
    assert 0.04 <= time.monotonic() - t0 < 1.0


def test_close_wakes_a_blocked_reader_with_closed():
    box = Mailbox(1)
    t, out = _in_thread(lambda: box.get())
    time.sleep(0.05)
    assert t.is_alive()
    box.close()
    t.join(1.0)
    assert not t.is_alive()
    assert isinstance(out.get("error"), Closed)


def test_readers_drain_before_closed_unless_discarded():
    box = Channel(4)
    box.put("a")
    box.put("b")
    box.close()
    assert list(box) == ["a", "b"]
    with pytest.raises(Closed):
        box.get_nowait()
    with pytest.raises(Closed):
        box.put("c")

    box2 = Channel(4)
    box2.put("a")
    box2.close(discard=True)
    assert box2.dropped == 1
    with pytest.raises(Closed):
        box2.get(timeout=0.1)


def test_channel_is_lossless_and_blocks_the_writer_when_full():
    ch = Channel(2)
    assert ch.put(1) and ch.put(2)
    assert ch.put(3, timeout=0.05) is False  # full: timed out, nothing dropped
    assert ch.dropped == 0
    t, out = _in_thread(lambda: ch.put(3))
    time.sleep(0.05)
    assert t.is_alive()  # still waiting for room
    assert ch.get() == 1
    t.join(1.0)
    assert out.get("result") is True
    assert [ch.get_nowait(), ch.get_nowait()] == [2, 3]


def test_close_wakes_a_blocked_writer_with_closed():
    ch = Channel(1)
    ch.put(1)
    t, out = _in_thread(lambda: ch.put(2))
    time.sleep(0.05)
    ch.close()
    t.join(1.0)
    assert not t.is_alive()
    assert isinstance(out.get("error"), Closed)


def test_lossless_channel_delivers_everything_in_order_across_threads():
    ch = Channel(3)
    n = 500

    def produce():
        for i in range(n):
            ch.put(i)
        ch.close()

    t, _ = _in_thread(produce)
    got = list(ch)
    t.join(1.0)
    assert got == list(range(n))
    assert ch.dropped == 0


def test_wait_any_wakes_on_any_box_sharing_the_condition():
    cond = threading.Condition()
    a, b = Mailbox(1, cond), Channel(2, cond)
    assert wait_any([a, b], cond, timeout=0.02) is False
    threading.Timer(0.05, lambda: b.put("x")).start()
    t0 = time.monotonic()
    assert wait_any([a, b], cond, timeout=2.0) is True
    assert time.monotonic() - t0 < 1.0
    assert b.get_nowait() == "x"
    a.close()
    assert wait_any([a, b], cond, timeout=0.5) is True  # closed counts as ready


def test_none_is_refused():
    with pytest.raises(ValueError):
        Mailbox().put(None)
    with pytest.raises(ValueError):
        Channel().put(None)
