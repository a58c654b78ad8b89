"""CPU seconds by process kind while a command runs: where a sweep's CPU goes, Ray's included.

Runs COMMAND, polls every process on the machine that started after it (5 times a second), and
prints each kind's CPU seconds (user + system) and process count: Ray worker processes by the
title Ray gives them (`ray::TrainController`, `ray::RayTrainWorker`, ...), others by the program
they run. Also prints the whole machine's busy CPU seconds over the same time, from /proc/stat
(Linux only), and this monitor's own. Limits: a process that ends between two polls loses at
most its last 0.2 s; processes started before the command (an existing cluster's idle Ray
workers) are left out, and any other process started meanwhile on the machine is counted; a
Ray worker that runs several tasks is counted under its first task's title. The polling itself
costs CPU, so run the benchmark being explained without it to time it.

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
    """user + nice + system + irq + softirq over all CPUs (not steal, which is another VM's,
    nor guest, which user already counts)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def kind(command: str) -> str:
    """A process's kind: Ray's title for its workers ('ray::ImplicitFunc'), else its program:
    the first .py file it runs (Ray's agents, the dashboard, jobs/sweep.py) or executable."""
    if command.startswith("ray::"):
        return command.split()[0].split(".")[0]
    words = command.split()
    scripts = [w for w in words if w.endswith(".py")]
    return os.path.basename(scripts[0] if scripts else words[0])


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
                if (proc.info["create_time"] or 0) < started or proc.info["pid"] == os.getpid():
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
    try:  # from the command's start on, in psutil's clock (time.time()'s differs by up to 1 s)
        started = psutil.Process(child.pid).create_time()
    except psutil.Error:  # it has already ended
        started = time.time()
    seen = watch(child, started)
    busy = machine_busy_seconds() - busy_before
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for name, cpu in seen.values():
        totals[name or "(ended before its first poll)"][0] += 1
        totals[name or "(ended before its first poll)"][1] += cpu
    per = args.per
    own = sum(psutil.Process().cpu_times()[:2])
    print(f"\nexit code {child.returncode}; CPU seconds" + (f" per {per:g}" if per != 1 else ""))
    print(f"{busy / per:9.2f}  whole machine (busy, from /proc/stat)")
    print(f"{own / per:9.2f}  this monitor (in the machine's figure, not in the rows below)")
    for name, (count, cpu) in sorted(totals.items(), key=lambda item: -item[1][1]):
        if cpu / per >= 0.05:
            print(f"{cpu / per:9.2f}  {name}  ({count / per:g} processes)")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
