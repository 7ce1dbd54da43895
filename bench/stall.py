#!/usr/bin/env python3
"""Stalled-transfer tools for scripts/bench (Python 3 standard library only).

  stall.py origin --port P --body FILE --send BYTES [--match S] --status FILE
      An HTTP/1.1 origin that answers every request with "200", the length
      of FILE as Content-Length, and then only the first BYTES of FILE: the
      rest never comes. Connections stay open until the peer closes them.
      A HEAD gets the headers only (and stays open too).

  stall.py hold --port P --path PATH --count N --status FILE
      Opens N connections to 127.0.0.1:P, sends "GET PATH" on each, reads
      whatever arrives and never closes them, until SIGTERM or SIGINT.

Both write one JSON line of counters to their --status file (replaced
atomically, at most every 50 ms, when something changed) so the bench can
poll them. Both listen or connect on 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import os
import resource
import signal
import sys


class Status:
    """Counters written to a file, at most every 50 ms, only on change."""

    def __init__(self, path, **counters):
        self.path = path
        self.counters = dict(counters)
        self.dirty = True

    def add(self, name, n=1):
        self.counters[name] += n
        self.dirty = True

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(self.counters) + "\n")
        os.replace(tmp, self.path)
        self.dirty = False

    async def run(self):
        while True:
            if self.dirty:
                self.write()
            await asyncio.sleep(0.05)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def until_signalled():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# ---- origin --------------------------------------------------------------

async def origin(args):
    with open(args.body, "rb") as f:
        body = f.read()
    first = body[: args.send]
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/pdf\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode()
    status = Status(args.status, connections=0, open=0, requests=0,
                    stalled=0, matched=0)
    match = args.match.encode()

    async def serve(reader, writer):
        status.add("connections")
        status.add("open")
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            status.add("requests")
            writer.write(head)
            if not request.startswith(b"HEAD "):
                writer.write(first)
            await writer.drain()
            status.add("stalled")
            if match in request.split(b"\r\n", 1)[0]:
                status.add("matched")
            # Stall: keep the connection, send nothing more, until the
            # peer closes it (read returns b"") or the tool is stopped.
            while await reader.read(65536):
                pass
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            status.add("open", -1)
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", args.port,
                                        backlog=4096)
    writer_task = asyncio.create_task(status.run())
    async with server:
        await until_signalled()
    writer_task.cancel()
    status.write()


# ---- hold ----------------------------------------------------------------

async def hold(args):
    status = Status(args.status, connected=0, failed=0, open=0,
                    bytes=0, closed_by_server=0)
    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Accept: application/pdf\r\n\r\n").encode()
    writers = []

    async def one():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1",
                                                           args.port)
        except OSError:
            status.add("failed")
            return
        writers.append(writer)
        status.add("connected")
        status.add("open")
        try:
            writer.write(request)
            await writer.drain()
            while True:
                data = await reader.read(65536)
                if not data:
                    status.add("closed_by_server")
                    break
                status.add("bytes", len(data))
        except ConnectionError:
            status.add("closed_by_server")
        finally:
            status.add("open", -1)

    writer_task = asyncio.create_task(status.run())
    # Connect in batches so the listen backlog never overflows.
    tasks = []
    for i in range(args.count):
        tasks.append(asyncio.create_task(one()))
        if i % 100 == 99:
            await asyncio.sleep(0.01)
    await until_signalled()
    for w in writers:
        w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    writer_task.cancel()
    status.write()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("origin", help="serve headers + part of a body, stall")
    o.add_argument("--port", type=int, required=True)
    o.add_argument("--body", required=True)
    o.add_argument("--send", type=int, default=65536)
    o.add_argument("--match", default="",
                   help="count requests whose request line holds this")
    o.add_argument("--status", required=True)
    h = sub.add_parser("hold", help="open N downloads and keep them open")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--path", required=True)
    h.add_argument("--count", type=int, default=1000)
    h.add_argument("--status", required=True)
    args = p.parse_args()
    raise_nofile()
    asyncio.run(origin(args) if args.cmd == "origin" else hold(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
