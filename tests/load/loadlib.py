#!/usr/bin/env python3
"""Helpers of the load bed (tests/load/run.sh, soak.sh): process-tree CPU and memory from
/proc, and the figures of one SIPp step from its -trace_stat and -trace_rtt files.

  loadlib.py ticks PID           user+system clock ticks of PID and all its descendants
  loadlib.py rss PID             resident memory (kB) of PID and all its descendants
  loadlib.py idle PID SECS MAX   wait (at most MAX s) until the tree used < 2 % CPU for SECS s
  loadlib.py step DIR RATE SECS CALLS TICKS CLEAN_P99_MS
                                 one line of key=value figures for the step in DIR
"""

import glob
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def ticks(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        # utime, stime, cutime, cstime are fields 14-17 (1-based); fields[0] is field 3.
        total += sum(int(x) for x in fields[11:15])
    return total


def rss(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def idle(pid, secs, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        a = ticks(pid)
        time.sleep(secs)
        if (ticks(pid) - a) / HZ < 0.02 * secs:
            return 0
    return 1


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def step(d, rate, secs, calls, dticks, p99_max):
    rate, secs, calls, dticks, p99_max = int(rate), float(secs), int(calls), int(dticks), float(p99_max)
    ok = failed = retrans = 0
    stats = glob.glob(os.path.join(d, "*_.csv")) + glob.glob(os.path.join(d, "stat.csv"))
    if stats:
        with open(stats[0]) as f:
            rows = [r.rstrip(";\n").split(";") for r in f if r.strip()]
        head, last = rows[0], rows[-1]
        col = {name: i for i, name in enumerate(head)}
        if len(rows) > 1:
            ok = int(last[col["SuccessfulCall(C)"]])
            failed = int(last[col["FailedCall(C)"]])
            retrans = int(last[col["Retransmissions(C)"]])
    times, rtts = [], []
    for path in glob.glob(os.path.join(d, "*_rtt.csv")):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(";")
                if len(parts) < 2:
                    continue
                try:
                    t, r = float(parts[0]), float(parts[1])
                except ValueError:
                    continue
                times.append(t)
                rtts.append(r)
    rtts.sort()
    unfinished = max(0, calls - ok - failed)
    if len(times) > 1:
        span = (max(times) - min(times)) / 1000.0
        achieved = (len(times) - 1) / span if span > 0 else float("nan")
    else:
        achieved = 0.0
    p50, p99 = pct(rtts, 0.50), pct(rtts, 0.99)
    cpu_us = dticks * 1e6 / HZ / ok if ok else float("nan")
    clean = failed == 0 and unfinished == 0 and achieved >= 0.95 * rate and p99 <= p99_max
    print(
        f"target={rate} achieved={achieved:.0f} ok={ok} failed={failed} unfinished={unfinished} "
        f"retrans={retrans} p50_ms={p50:.2f} p99_ms={p99:.2f} cpu_us_per_call={cpu_us:.0f} "
        f"clean={'yes' if clean else 'no'}"
    )


def main(argv):
    cmd = argv[1]
    if cmd == "ticks":
        print(ticks(int(argv[2])))
    elif cmd == "rss":
        print(rss(int(argv[2])))
    elif cmd == "idle":
        return idle(int(argv[2]), float(argv[3]), float(argv[4]))
    elif cmd == "step":
        step(*argv[2:8])
    else:
        print(__doc__, file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
