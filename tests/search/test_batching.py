"""Micro-batching of query embeddings (search/batching.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from search.batching import QueryBatcher


class SlowEmbedder:
    """Maps a text to a one-hot-ish vector of its length; each call takes ``seconds``."""

    def __init__(self, seconds: float = 0.05):
        self.seconds = seconds
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.threads.add(threading.get_ident())
        if any(t == "bad" for t in texts):
            raise ValueError("no vector for 'bad'")
        time.sleep(self.seconds)
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_model_calls_and_get_their_own_rows():
    model = SlowEmbedder()

    async def main():
        batcher = QueryBatcher(model, max_batch=32, max_wait_ms=5)
        await batcher.start()
        texts = [["a" * n] for n in range(1, 17)] + [["xx", "yyy"]]
        results = await asyncio.gather(*(batcher.embed(t) for t in texts))
        await batcher.stop()
        return texts, results, batcher

    texts, results, batcher = _run(main())
    for request, vectors in zip(texts, results, strict=True):
        assert vectors.shape == (len(request), 2)
        assert vectors[:, 0].tolist() == [len(t) for t in request]
    assert batcher.texts == 18
    assert batcher.batches <= 2 < 17  # 17 requests, at most two model calls
    assert len(model.threads) == 1  # one model thread


def test_batches_never_exceed_max_batch_and_keep_arrival_order():
    model = SlowEmbedder(0.01)

    async def main():
        batcher = QueryBatcher(model, max_batch=4, max_wait_ms=5)
        await batcher.start()
        results = await asyncio.gather(*(batcher.embed([f"q{i:02d}", "z" * i]) for i in range(10)))
        await batcher.stop()
        return results

    results = _run(main())
    assert all(len(call) <= 4 for call in model.calls)
    flat = [t for call in model.calls for t in call]
    assert flat == [t for i in range(10) for t in (f"q{i:02d}", "z" * i)]
    assert [r[1, 0] for r in results] == list(range(10))


def test_max_batch_one_embeds_each_request_alone():
    model = SlowEmbedder(0.01)

    async def main():
        batcher = QueryBatcher(model, max_batch=1, max_wait_ms=0)
        await batcher.start()
        await asyncio.gather(*(batcher.embed([str(i)]) for i in range(5)))
        await batcher.stop()

    _run(main())
    assert [len(c) for c in model.calls] == [1] * 5


def test_a_bad_query_fails_only_its_own_request():
    model = SlowEmbedder(0.01)

    async def main():
        batcher = QueryBatcher(model, max_batch=8, max_wait_ms=20)
        await batcher.start()
        results = await asyncio.gather(
            batcher.embed(["good"]), batcher.embed(["bad"]), batcher.embed(["fine"]), return_exceptions=True
        )
        await batcher.stop()
        return results

    good, bad, fine = _run(main())
    assert good[0, 0] == 4 and fine[0, 0] == 4
    assert isinstance(bad, ValueError)


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        QueryBatcher(SlowEmbedder(), max_batch=0)


def test_a_lone_client_never_waits_for_company():
    model = SlowEmbedder(0.0)

    async def main():
        # A wait for company would take a minute: five requests one after another take far less.
        batcher = QueryBatcher(model, max_batch=32, max_wait_ms=60_000)
        await batcher.start()
        started = time.perf_counter()
        for i in range(5):
            await batcher.embed([str(i)])
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return elapsed

    assert _run(main()) < 30


def test_under_concurrent_load_stragglers_join_the_batch():
    model = SlowEmbedder(0.0)

    async def main():
        # A full batch (4) goes at once; the window is long, so that on a loaded machine the
        # stragglers still arrive within it.
        batcher = QueryBatcher(model, max_batch=4, max_wait_ms=30_000)
        await batcher.start()
        await asyncio.gather(*(batcher.embed([f"a{i}"]) for i in range(4)))  # clients arrive together

        async def late(i):
            await asyncio.sleep(0.02 * i)  # the next round comes back spread over 60 ms
            return await batcher.embed([f"b{i}"])

        await asyncio.gather(*(late(i) for i in range(4)))
        await batcher.stop()

    _run(main())
    assert [len(c) for c in model.calls] == [4, 4]
