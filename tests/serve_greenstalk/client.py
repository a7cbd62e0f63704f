"""Drives `pulpo serve` with greenstalk, an independent beanstalkd client from PyPI.

Usage: python client.py HOST:PORT | unix:/path. Exits non-zero, with the failed check on
stderr, if any answer is not the one beanstalkd gives; prints "ok" when all passed.
"""

import sys

import greenstalk


def connect(address, **kwargs):
    if address.startswith("unix:"):
        return greenstalk.Client(address[len("unix:"):], **kwargs)
    host, port = address.rsplit(":", 1)
    return greenstalk.Client((host, int(port)), **kwargs)


def expect_error(kind, call, *args):
    try:
        call(*args)
    except kind:
        return
    raise AssertionError(f"{call.__name__}{args} did not raise {kind.__name__}")


def main(address):
    # Tubes: use, watch, ignore, list.
    with connect(address, use="emails", watch=["emails", "other"]) as c:
        assert c.using() == "emails", c.using()
        assert sorted(c.watching()) == ["emails", "other"], c.watching()
        assert c.ignore("other") == 1
        expect_error(greenstalk.NotIgnoredError, c.ignore, "emails")
        assert "emails" in c.tubes() and "default" in c.tubes(), c.tubes()

        # put, peek*, stats-job, reserve, delete.
        first = c.put("hello", priority=10, ttr=30)
        assert c.peek_ready().body == "hello"
        stats = c.stats_job(first)
        assert (stats["tube"], stats["state"], stats["pri"], stats["ttr"]) == (
            "emails", "ready", 10, 30), stats
        job = c.reserve(timeout=5)
        assert (job.id, job.body) == (first, "hello")
        assert c.stats_job(job)["state"] == "reserved"
        c.touch(job)
        c.delete(job)
        expect_error(greenstalk.NotFoundError, c.peek, first)
        expect_error(greenstalk.TimedOutError, c.reserve, 0)

        # release with a delay, peek-delayed, kick-job.
        second = c.put("again")
        job = c.reserve(timeout=5)
        c.release(job, priority=5, delay=100)
        assert c.peek_delayed().id == second
        assert c.stats_job(second)["state"] == "delayed"
        c.kick_job(second)
        assert c.stats_job(second)["state"] == "ready"

        # bury, peek-buried, kick.
        job = c.reserve(timeout=5)
        c.bury(job, priority=7)
        assert c.peek_buried().id == second
        assert c.stats_job(second)["buries"] == 1
        assert c.kick(10) == 1
        assert c.peek_ready().id == second

        # reserve-job, then another connection cannot touch it.
        job = c.reserve_job(second)
        with connect(address, use="emails", watch="emails") as other:
            expect_error(greenstalk.NotFoundError, other.delete, second)
            expect_error(greenstalk.TimedOutError, other.reserve, 0)
        c.delete(job)

        # Binary bodies round-trip byte for byte.
        with connect(address, encoding=None, use="bytes", watch="bytes") as raw:
            body = bytes(range(256)) + b"\r\n\0"
            raw.put(body)
            job = raw.reserve(timeout=5)
            assert job.body == body
            raw.delete(job)

        # stats and stats-tube.
        tube = c.stats_tube("emails")
        assert tube["name"] == "emails" and tube["current-jobs-ready"] == 0, tube
        assert tube["total-jobs"] == 2 and tube["current-using"] == 1, tube
        expect_error(greenstalk.NotFoundError, c.stats_tube, "nope")
        stats = c.stats()
        assert stats["current-connections"] >= 1 and stats["cmd-put"] >= 3, stats
        assert stats["total-jobs"] >= 3, stats
        c.pause_tube("emails", 1)
        expect_error(greenstalk.JobTooBigError, c.put, "x" * (stats["max-job-size"] + 1))
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
