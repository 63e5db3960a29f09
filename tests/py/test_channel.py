"""corelet.Channel: rendezvous and buffered, close, timeouts, balance,
async iteration, identity of the values handed over."""

import pytest

import corelet


def run(main, *args):
    return corelet.run(main, *args)


def test_rendezvous_send_waits_for_its_receiver():
    log = []

    def sender(ch):
        log.append("send start")
        yield ch.send("x")
        log.append("send done")

    def main():
        ch = corelet.Channel()
        t = corelet.spawn(sender, ch)
        yield  # the sender runs and parks
        assert ch.balance == 1 and log == ["send start"]
        v = yield ch.recv()
        log.append(f"got {v}")
        yield t.join()

    run(main)
    assert log == ["send start", "got x", "send done"]


def test_receivers_waiting_make_the_balance_negative():
    def receiver(ch):
        return (yield ch.recv())

    def main():
        ch = corelet.Channel()
        ts = [corelet.spawn(receiver, ch) for _ in range(3)]
        yield
        assert ch.balance == -3
        for i in range(3):
            yield ch.send(i)
        results = []
        for t in ts:
            results.append((yield t.join()))
        assert ch.balance == 0
        return results

    assert run(main) == [0, 1, 2]  # receivers are served in the order they came


def test_buffered_channel_sends_without_waiting_until_full():
    def main():
        ch = corelet.Channel(2)
        yield ch.send(1)
        yield ch.send(2)
        assert len(ch) == 2 and ch.capacity == 2
        assert ch.send_nowait(3) is False  # full: not sent
        with pytest.raises(TimeoutError):
            yield ch.send(3, timeout=0.01)
        assert [(yield ch.recv()), (yield ch.recv())] == [1, 2]

    run(main)


def test_a_waiting_sender_refills_the_buffer_in_order():
    def sender(ch):
        for i in range(5):
            yield ch.send(i)

    def main():
        ch = corelet.Channel(1)
        t = corelet.spawn(sender, ch)
        got = []
        for _ in range(5):
            got.append((yield ch.recv()))
        yield t.join()
        return got

    assert run(main) == [0, 1, 2, 3, 4]


def test_values_are_handed_over_not_copied():
    marker = object()

    def main():
        ch = corelet.Channel(1)
        yield ch.send(marker)
        return (yield ch.recv())

    assert run(main) is marker


def test_close_wakes_senders_and_receivers_drain_then_see_closed():
    def blocked_sender(ch):
        try:
            yield ch.send("never taken")
        except corelet.ChannelClosed:
            return "closed"

    def main():
        ch = corelet.Channel(1)
        yield ch.send("buffered")
        t = corelet.spawn(blocked_sender, ch)
        yield
        ch.close()
        assert ch.closed
        assert (yield t.join()) == "closed"
        assert (yield ch.recv()) == "buffered"  # what was buffered is still delivered
        with pytest.raises(corelet.ChannelClosed):
            yield ch.recv()
        with pytest.raises(corelet.ChannelClosed):
            yield ch.send(1)
        with pytest.raises(corelet.ChannelClosed):
            ch.send_nowait(1)
        with pytest.raises(corelet.ChannelClosed):
            ch.recv_nowait()

    run(main)


def test_close_wakes_a_waiting_receiver():
    def receiver(ch):
        with pytest.raises(corelet.ChannelClosed):
            yield ch.recv()
        return "woken"

    def main():
        ch = corelet.Channel()
        t = corelet.spawn(receiver, ch)
        yield
        ch.close()
        return (yield t.join())

    assert run(main) == "woken"


def test_async_for_ends_when_the_channel_is_closed():
    async def producer(ch):
        for i in range(4):
            await ch.send(i)
        ch.close()

    async def main():
        ch = corelet.Channel()
        corelet.spawn(producer, ch)
        return [v async for v in ch]

    assert run(main) == [0, 1, 2, 3]


def test_plain_iteration_says_how_to_iterate():
    with pytest.raises(TypeError, match="async for"):
        iter(corelet.Channel())


def test_recv_timeout_and_nowait():
    def main():
        ch = corelet.Channel()
        with pytest.raises(TimeoutError):
            yield ch.recv(timeout=0.01)
        with pytest.raises(TimeoutError):
            yield ch.recv(timeout=0)
        with pytest.raises(ValueError, match="no value is ready"):
            ch.recv_nowait()
        assert ch.balance == 0  # the timed-out receiver left no waiter behind

    run(main)


def test_a_send_timing_out_keeps_its_value_and_may_be_retried():
    def main():
        ch = corelet.Channel()
        op = ch.send("kept")
        with pytest.raises(TimeoutError):
            yield ch.send("lost?", timeout=0.001)

        def receiver():
            return (yield ch.recv())

        r = corelet.spawn(receiver)
        yield
        yield op
        assert (yield r.join()) == "kept"
        with pytest.raises(corelet.UsageError, match="already used"):
            yield op

    run(main)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        corelet.Channel(-1)
    with pytest.raises(ValueError):
        corelet.Channel().recv(timeout=-1)


def test_a_cancelled_receiver_loses_no_value():
    def receiver(ch):
        yield ch.recv()

    def main():
        ch = corelet.Channel(1)
        r = corelet.spawn(receiver, ch)
        yield
        r.cancel()
        yield ch.send("v")  # the cancelled receiver is no longer waiting: buffered
        with pytest.raises(corelet.Cancelled):
            yield r.join()
        return (yield ch.recv())

    assert run(main) == "v"


def test_ping_pong_many_messages_between_two_tasklets():
    n = 20_000

    def pong(inbox, outbox):
        while True:
            try:
                v = yield inbox.recv()
            except corelet.ChannelClosed:
                return
            yield outbox.send(v + 1)

    def main():
        a, b = corelet.Channel(), corelet.Channel()
        t = corelet.spawn(pong, a, b)
        v = 0
        for _ in range(n):
            yield a.send(v)
            v = yield b.recv()
        a.close()
        yield t.join()
        return v

    assert run(main) == n


# ---- select -------------------------------------------------------------------


def test_select_takes_the_case_that_is_ready():
    def main():
        a, b = corelet.Channel(1), corelet.Channel(1)
        yield b.send("from b")
        i, v = yield corelet.select([a.recv(), b.recv()])
        assert (i, v) == (1, "from b")
        i, v = yield corelet.select([a.send("x"), b.recv(timeout=5)])
        assert (i, v) == (0, None) and len(a) == 1

    run(main)


def test_select_waits_on_all_cases_and_only_one_takes_effect():
    def sender(ch, v):
        yield ch.send(v)

    def main():
        a, b = corelet.Channel(), corelet.Channel()
        sel = corelet.spawn(lambda: (yield corelet.select([a.recv(), b.recv()])))
        yield
        assert a.balance == -1 and b.balance == -1  # waiting on both
        yield b.send("b wins")
        assert a.balance == 0  # its other case was withdrawn
        assert (yield sel.join()) == (1, "b wins")
        late = corelet.spawn(sender, a, "later")
        yield
        assert a.balance == 1  # nobody took it: the select's recv on a is gone
        assert (yield a.recv()) == "later"
        yield late.join()

    run(main)


def test_select_spreads_over_cases_ready_together():
    def main():
        a, b = corelet.Channel(100), corelet.Channel(100)
        for i in range(100):
            yield a.send(i)
            yield b.send(i)
        picks = [0, 0]
        for _ in range(100):
            i, _v = yield corelet.select([a.recv(), b.recv()])
            picks[i] += 1
        return picks

    picks = run(main)
    assert picks[0] > 20 and picks[1] > 20  # neither case starves


def test_select_timeout_closed_and_bad_cases():
    def main():
        a = corelet.Channel()
        with pytest.raises(TimeoutError):
            yield corelet.select([a.recv()], timeout=0.01)
        with pytest.raises(TimeoutError):
            yield corelet.select([a.recv()], timeout=0)
        a.close()
        with pytest.raises(corelet.ChannelClosed):
            yield corelet.select([a.recv()])
        with pytest.raises(TypeError, match="channel operations"):
            corelet.select([corelet.sleep(1)])
        with pytest.raises(ValueError, match="no cases"):
            corelet.select([])

    run(main)


def test_select_is_cancellable():
    def main():
        a = corelet.Channel()
        t = corelet.spawn(lambda: (yield corelet.select([a.recv(), a.recv()])))
        yield
        t.cancel()
        with pytest.raises(corelet.Cancelled):
            yield t.join()
        assert a.balance == 0

    run(main)
