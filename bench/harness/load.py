"""The load generators (wrk, h2load, curl), bounded in time and count, and their figures.

Every run is wrapped in `timeout`, so a load generator that misbehaves (h2load's timing mode
never ends when the server closes connections, for instance) cannot run on.
"""

import os
import re
import signal
import statistics
import subprocess

from .procs import BenchError

# Grace on top of a run's own duration before `timeout` ends it.
SLACK = 30


def _run(argv, limit):
    """Runs `argv` under `timeout`, in its own process group: when the bench is interrupted,
    the whole group (timeout and the load generator) is killed, not only `timeout`."""
    cmd = ["timeout", "-k", "5", str(int(limit)), *argv]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    if proc.returncode == 124:
        raise BenchError(f"{argv[0]} did not finish within {limit:.0f}s: {' '.join(argv)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def wrk(url, secs, conns=64, headers=(), script=None):
    """Closed-loop saturation: `wrk -t1 -cCONNS -dSECS`. Returns rps and error count."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
    argv.append(url)
    res = _run(argv, secs + SLACK)
    out = res.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if res.returncode != 0 or not m:
        raise BenchError(f"wrk failed ({res.returncode}): {' '.join(argv)}\n{out}\n{res.stderr}")
    total = re.search(r"(\d+) requests in", out)
    errors = 0
    m_non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m_non2xx:
        errors += int(m_non2xx.group(1))
    m_sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m_sock:
        # Read errors are how wrk counts a server closing a keep-alive connection; count the rest.
        errors += int(m_sock.group(1)) + int(m_sock.group(3)) + int(m_sock.group(4))
    return {
        "rps": float(m.group(1)),
        "requests": int(total.group(1)) if total else 0,
        "errors": errors,
    }


def _percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def h2load_fixed_rate(url, connect_to, secs, logfile, clients=4, rps_per_client=250, headers=()):
    """Open loop at a fixed rate: `h2load --h1 -cCLIENTS --rps N -D SECS`, latency percentiles
    from the per-request log (ms)."""
    argv = [
        "h2load",
        "--h1",
        f"-c{clients}",
        f"--rps={rps_per_client}",
        "-D",
        str(secs),
        f"--log-file={logfile}",
    ]
    if connect_to:
        argv.append(f"--connect-to={connect_to}")
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    if os.path.exists(logfile):
        os.unlink(logfile)
    res = _run(argv, secs + SLACK)
    out = res.stdout
    m = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        out,
    )
    if res.returncode != 0 or not m:
        raise BenchError(f"h2load failed ({res.returncode}): {' '.join(argv)}\n{out}\n{res.stderr}")
    lat = []
    bad = 0
    with open(logfile) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            if not parts[1].startswith("2"):
                bad += 1
            lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    status = re.search(r"status codes: (\d+) 2xx", out)
    done = int(m.group(3))
    ok_2xx = int(status.group(1)) if status else 0
    return {
        "requests": done,
        "errors": int(m.group(5)) + int(m.group(6)) + int(m.group(7)) + (done - ok_2xx) + bad,
        "p50": _percentile(lat, 50),
        "p90": _percentile(lat, 90),
        "p99": _percentile(lat, 99),
        "samples": len(lat),
    }


def h2load_handshakes(url, connect_to, total, clients):
    """New TLS connection per request: `Connection: close` makes h2load reconnect after every
    response, so `total` requests cost `total` full TLS handshakes (the server keeps no session
    cache and issues no tickets). Returns handshakes (requests) per second."""
    argv = [
        "h2load",
        "--h1",
        f"-c{clients}",
        f"-n{total}",
        "-H",
        "Connection: close",
        f"--connect-to={connect_to}",
        url,
    ]
    res = _run(argv, 120)
    out = res.stdout
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    if res.returncode != 0 or not m or not r:
        raise BenchError(f"h2load failed ({res.returncode}): {' '.join(argv)}\n{out}\n{res.stderr}")
    return {
        "hs_per_s": float(m.group(3)),
        "requests": int(r.group(4)),
        "errors": total - int(r.group(4)),
    }


def curl_bulk(url, connect_to, cacert, transfers):
    """Downloads `url` `transfers` times with curl (one TLS connection each); MB/s (10^6 B/s)
    of each, from curl's own timing (connect and handshake included)."""
    speeds = []
    for _ in range(transfers):
        argv = [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "--cacert",
            cacert,
            "--connect-to",
            connect_to,
            "-w",
            "%{http_code} %{size_download} %{time_total}",
            url,
        ]
        res = _run(argv, 120)
        parts = res.stdout.split()
        if res.returncode != 0 or len(parts) != 3 or parts[0] != "200":
            raise BenchError(f"curl failed ({res.returncode}): {' '.join(argv)}\n{res.stdout}{res.stderr}")
        speeds.append(int(parts[1]) / float(parts[2]) / 1e6)
    return {"mb_per_s": statistics.median(speeds), "bytes": int(parts[1])}


def curl_ok(url, connect_to=None, cacert=None, proxy=None, host=None):
    """(status, body length) of one request, or (0, 0) when it failed."""
    argv = [
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        "-m",
        "5",
    ]
    if proxy:
        argv = [
            "curl",
            "-sS",
            "-x",
            proxy,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            "-m",
            "5",
        ]
    if connect_to:
        argv += ["--connect-to", connect_to]
    if cacert:
        argv += ["--cacert", cacert]
    if host:
        argv += ["-H", f"Host: {host}"]
    argv.append(url)
    res = _run(argv, 15)
    parts = res.stdout.split()
    if res.returncode != 0 or len(parts) != 2:
        return (0, 0)
    return (int(parts[0]), int(parts[1]))
