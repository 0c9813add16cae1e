#!/usr/bin/env python3
"""Holds many idle HTTP keep-alive connections to a server.

usage: idle_connections.py HOST PORT COUNT [PARALLEL]

Opens COUNT connections (at most PARALLEL in progress at once), sends one GET / on each and reads the whole
response, then keeps them all open and prints "open COUNT SECONDS". Then it reads commands from stdin, one a line:
  again   sends one more GET / on every connection, reads every response, prints "served COUNT SECONDS"
  close   closes every connection and exits, printing "closed COUNT"
Any failure prints "error: ..." and exits 1.
"""
import resource
import selectors
import socket
import sys
import time

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
parallel = int(sys.argv[4]) if len(sys.argv) > 4 else 200
request = f"GET / HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain\r\n\r\n".encode()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = count + 64
if soft < need:
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))


def fail(message):
    print(f"error: {message}", flush=True)
    sys.exit(1)


def response_complete(data):
    """Length of a complete response at the start of data, or 0."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return 0
    head = data[:end].decode("latin-1")
    if not head.startswith("HTTP/1.1 200 "):
        fail(f"unexpected response head: {head[:80]!r}")
    length = None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        fail("response without Content-Length")
    total = end + 4 + length
    return total if len(data) >= total else 0


def round_trip(sockets, connect, deadline_seconds):
    """Sends one request on each socket (connecting first when asked) and reads each response."""
    sel = selectors.DefaultSelector()
    pending = list(sockets)
    buffers = {}
    active = 0
    done = 0
    start = time.monotonic()
    while done < len(sockets):
        while pending and active < parallel:
            s = pending.pop()
            if connect:
                s.setblocking(False)
                err = s.connect_ex((host, port))
                if err not in (0, 115):  # EINPROGRESS
                    fail(f"connect: errno {err}")
                sel.register(s, selectors.EVENT_WRITE)
            else:
                s.sendall(request)
                sel.register(s, selectors.EVENT_READ)
            buffers[s] = b""
            active += 1
        if time.monotonic() - start > deadline_seconds:
            fail(f"only {done} of {len(sockets)} answered within {deadline_seconds} s")
        for key, events in sel.select(timeout=1.0):
            s = key.fileobj
            if events & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    fail(f"connect failed: errno {err}")
                s.sendall(request)
                sel.modify(s, selectors.EVENT_READ)
                continue
            chunk = s.recv(65536)
            if not chunk:
                fail("connection closed by the server")
            buffers[s] += chunk
            n = response_complete(buffers[s])
            if n:
                if n != len(buffers[s]):
                    fail("more bytes than one response")
                sel.unregister(s)
                del buffers[s]
                active -= 1
                done += 1
    sel.close()
    return time.monotonic() - start


sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
seconds = round_trip(sockets, connect=True, deadline_seconds=120)
print(f"open {count} {seconds:.2f}", flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "again":
        seconds = round_trip(sockets, connect=False, deadline_seconds=120)
        print(f"served {count} {seconds:.2f}", flush=True)
    elif command == "close":
        for s in sockets:
            s.close()
        print(f"closed {count}", flush=True)
        break
