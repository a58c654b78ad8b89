"""CPU seconds by process kind while a command runs: where a sweep's CPU goes, Ray's included.

Runs COMMAND, polls every process on the machine that started after it (5 times a second), and
prints each kind's CPU seconds (user + system) and process count: Ray worker processes by the
title Ray gives them (`ray::TrainController`, `ray::RayTrainWorker`, ...), others by command
line. A process that ends between two polls loses at most its last 0.2 s. Also prints the whole
machine's busy CPU seconds over the same time, from /proc/stat (Linux only).

    python bench/process_cpu.py [--per N] -- python bench/startup.py --trials 8 --cpus 1

--per N divides every figure by N (e.g. the number of trials).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time

import psutil

POLL_S = 0.2


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields) - idle - iowait) / 100  # clock ticks (USER_HZ = 100 on Linux)


def kind(command: str) -> str:
    """A process's kind: Ray's title for its workers ('ray::ImplicitFunc'), else its command."""
    if command.startswith("ray::"):
        return command.split()[0].split(".")[0]
    return command[:70]


def _settled(name: str) -> bool:
    """Whether a process's kind is final: a Ray worker titled by its actor or task. (A Ray
    worker starts as a plain python command, then idles as `ray::IDLE` until given work.)"""
    return name.startswith("ray::") and name != "ray::IDLE"


def watch(child: subprocess.Popen, started: float) -> dict[tuple, tuple[str, float]]:
    """CPU seconds last seen per process, and its kind (see _settled)."""
    seen: dict[tuple, tuple[str, float]] = {}
    while child.poll() is None:
        for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
            try:
                if proc.info["create_time"] < started or proc.info["pid"] == os.getpid():
                    continue
                times = proc.cpu_times()
                command = " ".join(proc.info["cmdline"] or [])
            except psutil.Error:
                continue
            key = (proc.info["pid"], proc.info["create_time"])
            old = seen.get(key, ("", 0.0))[0]
            name = old if _settled(old) else (kind(command) if command else old)
            seen[key] = (name, times.user + times.system)
        time.sleep(POLL_S)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per", type=float, default=1.0, help="divide the figures by this")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    busy_before = machine_busy_seconds()
    child = subprocess.Popen(command)
    # Processes created from the command's start on, in psutil's clock (not time.time()'s: it
    # counts from a boot time rounded to the second).
    seen = watch(child, psutil.Process(child.pid).create_time())
    busy = machine_busy_seconds() - busy_before
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for name, cpu in seen.values():
        totals[name or "(ended before its first poll)"][0] += 1
        totals[name or "(ended before its first poll)"][1] += cpu
    per = args.per
    print(f"\nexit code {child.returncode}; CPU seconds" + (f" per {per:g}" if per != 1 else ""))
    print(f"{busy / per:9.2f}  whole machine (busy, from /proc/stat)")
    for name, (count, cpu) in sorted(totals.items(), key=lambda item: -item[1][1]):
        if cpu / per >= 0.05:
            print(f"{cpu / per:9.2f}  {name}  ({count / per:g} processes)")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
