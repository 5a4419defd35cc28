"""Workload: a function of two ints called N times; prints the loop's own time in seconds.

    python tiny_calls.py [CALLS]

The benchmark hooks __main__:f: the cost per call of each listener, and the
peak memory of the recording outputs over millions of calls.
"""

import sys
import time


def f(a, b):
    return a + b


def run(n):
    for i in range(n):
        f(i, 2)


calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
began = time.perf_counter()
run(calls)
print(time.perf_counter() - began)
