"""Facts about the machine a run happened on: cores, CPU model, load, and what else was using
the cores while the bench ran (sampled from /proc, nothing is changed)."""

import os
import subprocess
import time

from .procs import CLK_TCK


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _proc_ticks():
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        name = data[data.find("(") + 1 : data.rfind(")")]
        fields = data.rsplit(")", 1)[1].split()
        ticks[int(pid)] = (name, int(fields[11]) + int(fields[12]))
    return ticks


def busy_others(window=2.0, exclude=()):
    """The processes that used the most CPU over `window` seconds, as (cores, name), and the
    total cores they used."""
    before = _proc_ticks()
    time.sleep(window)
    after = _proc_ticks()
    by_name = {}
    for pid, (name, t1) in after.items():
        if pid in exclude or pid == os.getpid():
            continue
        t0 = before.get(pid, (name, t1))[1]
        used = (t1 - t0) / CLK_TCK / window
        if used > 0:
            by_name[name] = by_name.get(name, 0.0) + used
    top = sorted(((v, k) for k, v in by_name.items()), reverse=True)[:5]
    return top, sum(by_name.values())


def busy_seconds():
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def own_seconds():
    """CPU seconds of this process and of the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def git_revision(repo):
    def git(*args):
        res = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return res.stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        rev += " (with uncommitted changes)"
    return rev
