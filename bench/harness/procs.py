"""Processes the bench starts, and what /proc says about them.

Every process is started through `Procs.start`, which records it; `Procs.stop_all` (run from
the entry point's `finally` and signal handlers) sends SIGTERM to each by its own pid, waits a
bounded time, then SIGKILLs what is left. Nothing here ever signals a process it did not start.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Proc:
    """One started process: its Popen, its name and where its output went."""

    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self):
        """utime + stime of the process (all its threads), in seconds."""
        with open(f"/proc/{self.pid}/stat") as f:
            # The command name (field 2) may contain spaces: split after its closing paren.
            fields = f.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat(5); fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def tree_cpu_seconds(self):
        """cpu_seconds of the process and of its live children (nginx's workers)."""
        total = self.cpu_seconds()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def status_kb(self, key):
        """A `kB` line of /proc/PID/status (VmHWM, VmRSS), in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def threads(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        return 0


class Procs:
    """The registry of everything the bench started."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.running = []

    def start(self, name, argv, env=None, cwd=None):
        log_path = os.path.join(self.logdir, f"{name}.log")
        log = open(log_path, "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        log.close()
        proc = Proc(name, popen, log_path)
        self.running.append(proc)
        return proc

    def stop(self, proc, grace=5.0):
        if proc in self.running:
            self.running.remove(proc)
        if proc.popen.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.popen.wait(timeout=5)

    def stop_all(self):
        for proc in list(reversed(self.running)):
            self.stop(proc)


class BenchError(Exception):
    """A step of the bench failed; the message says which and why."""


def wait_until(what, check, timeout=30.0, proc=None, interval=0.05):
    """Poll `check()` until it is true, or fail after `timeout` (or when `proc` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited while waiting for {what}:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tail = proc.log_tail() if proc is not None else ""
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(interval)


def port_open(ip, port):
    with socket.create_connection((ip, port), timeout=1):
        return True


def http_status(url, host=None, timeout=2.0):
    """Status of a GET (no proxies from the environment; errors as 0)."""
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return 0
