#!/usr/bin/env python3
"""bench/fsync_latency.py — what one fsync costs on this disk: the floor under
every write batch of the Redis store with `appendfsync always`, where Redis
appends a batch to its AOF and fsyncs it before it answers.

Appends COUNT records of BYTES bytes to a file in DIR (a fresh temporary
directory by default, on the filesystem that holds /tmp, where the benchmarks
start Redis) and fsyncs after each, as Redis does after each event-loop pass
that wrote. Prints the latency percentiles of the fsyncs in microseconds.

    bench/fsync_latency.py                  # 3000 fsyncs of 300-byte records
    bench/fsync_latency.py --count 10000 --dir /var/lib/redis

Bounded by COUNT; the file is removed at the end.
"""
import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="fsyncs to time (at most 1,000,000)")
    parser.add_argument("--bytes", type=int, default=300, help="bytes appended before each fsync")
    parser.add_argument("--dir", default=None, help="directory for the file (default: a temporary one)")
    args = parser.parse_args()
    if not 1 <= args.count <= 1_000_000:
        parser.error("--count must be between 1 and 1000000")
    if not 1 <= args.bytes <= 1 << 20:
        parser.error("--bytes must be between 1 and 1048576")

    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        path = os.path.join(work, "appendonly.aof")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        record = b"x" * args.bytes
        micros = []
        try:
            for _ in range(args.count):
                os.write(fd, record)
                start = time.perf_counter_ns()
                os.fsync(fd)
                micros.append((time.perf_counter_ns() - start) / 1000)
        finally:
            os.close(fd)
    micros.sort()

    def at(share: float) -> float:
        return micros[min(len(micros) - 1, int(share * len(micros)))]

    print(f"{args.count} fsyncs of {args.bytes}-byte appends in {args.dir or tempfile.gettempdir()}:")
    print("p50 {:.0f} us, p90 {:.0f} us, p99 {:.0f} us, p99.9 {:.0f} us, max {:.0f} us".format(
        at(0.50), at(0.90), at(0.99), at(0.999), micros[-1]))
    print("share over 1 ms: {:.2%}".format(sum(1 for m in micros if m > 1000) / len(micros)))


if __name__ == "__main__":
    main()
