"""The five scenarios. Each returns a dict: its title, its rows of per-repeat samples per path
(`direct`, `egress`, `envoy`), and notes. Paths are measured in turn within each repeat, so a
change in the machine's background load touches all three alike."""

import os
import statistics
import time

from . import load
from .procs import BenchError, http_status, wait_until
from .stack import EGRESS_GW, EGRESS_SCALE, EGRESS_WILDCARD, EGRESS_SIDECAR, ENVOY_GW, ENVOY_SIDECAR, GATEWAY_SERVICE, UPSTREAM

HOST = "edition.cnn.com"


def _cpu(procs):
    return sum(p.cpu_seconds() for p in procs)


def _hwm_mib(procs):
    return sum(p.status_kb("VmHWM") for p in procs) / 1024.0


def _check(path, status_len):
    if status_len != (200, 1024):
        raise BenchError(f"{path}: expected 200 with 1024 bytes, got {status_len}")


class Keepalive:
    """Scenarios 1, 3 and 4: HTTP/1.1 keep-alive, 1 KiB responses. `paths` maps a path name to
    (wrk URL, wrk headers, wrk script, h2load URL, h2load --connect-to or None, processes)."""

    def __init__(self, stack, settings, paths):
        self.stack = stack
        self.s = settings
        self.paths = paths
        self.samples = {p: [] for p in paths}
        self.upstream = {p: [0, 0] for p in paths}  # new upstream connections, requests

    def measure(self, path):
        wrk_url, headers, script, h2_url, connect_to, procs = self.paths[path]
        s = self.s
        a0, r0 = self.stack.stub()
        load.wrk(wrk_url, s.warmup, headers=headers, script=script)
        c0 = _cpu(procs)
        w = load.wrk(wrk_url, s.wrk_secs, headers=headers, script=script)
        c1 = _cpu(procs)
        row = {"rps": w["rps"], "errors": w["errors"]}
        if procs:
            row["cpu_sat"] = (c1 - c0) / (w["requests"] / 1000.0)
        if h2_url:
            logfile = os.path.join(self.stack.work, "h2load-requests.log")
            h = load.h2load_fixed_rate(h2_url, connect_to, s.h2_secs, logfile)
            c2 = _cpu(procs)
            row.update(p50=h["p50"], p90=h["p90"], p99=h["p99"])
            row["errors"] += h["errors"]
            if procs:
                row["cpu_fixed"] = (c2 - c1) / (h["requests"] / 1000.0)
        if procs:
            row["rss"] = _hwm_mib(procs)
        a1, r1 = self.stack.stub()
        # Each stub query is one connection and one request of its own.
        self.upstream[path][0] += a1 - a0 - 1
        self.upstream[path][1] += r1 - r0 - 1
        self.samples[path].append(row)

    def run(self):
        for _ in range(self.s.repeats):
            for path in self.paths:
                self.measure(path)
        return self.samples


def _keepalive_paths_http(egress, envoy):
    hdr = [f"Host: {HOST}"]
    url = f"http://{HOST}/1k"
    return {
        "direct": (f"http://{UPSTREAM}:80/1k", hdr, None, url, f"{UPSTREAM}:80", []),
        "egress": (f"http://{EGRESS_GW}:8080/1k", hdr, None, url, f"{EGRESS_GW}:8080", [egress]),
        "envoy": (f"http://{ENVOY_GW}:8080/1k", hdr, None, url, f"{ENVOY_GW}:8080", [envoy]),
    }


def scenario_http(stack, settings):
    """1. HTTP/1.1 routed by Host, keep-alive, 1 KiB."""
    cfg = stack.config_dir("http", {"seed-http.yaml": stack.egress_yaml("http.yaml")})
    egress = stack.start_egress_gateway("egress-http", cfg, EGRESS_GW)
    envoy = stack.start_envoy("envoy-http", "http.yaml", ENVOY_GW)
    try:
        for ip, port in ((UPSTREAM, 80), (EGRESS_GW, 8080), (ENVOY_GW, 8080)):
            _check(f"{ip}:{port}", load.curl_ok(f"http://{ip}:{port}/1k", host=HOST))
        samples = Keepalive(stack, settings, _keepalive_paths_http(egress, envoy)).run()
    finally:
        stack.procs.stop(egress)
        stack.procs.stop(envoy)
    return {"id": 1, "title": "HTTP/1.1 routed by Host, keep-alive, 1 KiB responses", "samples": samples}


# Handshake measurements per path and repeat are split into this many alternating rounds.
HANDSHAKE_ROUNDS = 4


def scenario_passthrough(stack, settings):
    """2. TLS passthrough by SNI: full handshakes per second, and bulk throughput."""
    cfg = stack.config_dir("passthrough", {"seed-https.yaml": stack.egress_yaml("passthrough.yaml")})
    egress = stack.start_egress_gateway("egress-passthrough", cfg, EGRESS_GW)
    envoy = stack.start_envoy("envoy-passthrough", "passthrough.yaml", ENVOY_GW)
    wcfg = stack.config_dir(
        "passthrough-wildcard", {"wildcard.yaml": stack.egress_yaml("passthrough-wildcard.yaml")}
    )
    wildcard = stack.start_egress_gateway("egress-passthrough-wildcard", wcfg, EGRESS_WILDCARD)
    ca = stack.certs["upstream-ca"][0]
    targets = {
        "direct": (f"{UPSTREAM}:443", []),
        "egress": (f"{EGRESS_GW}:8443", [egress]),
        "envoy": (f"{ENVOY_GW}:8443", [envoy]),
        # Not a column of the table: compared with "egress" in a note below.
        "wildcard": (f"{EGRESS_WILDCARD}:8443", [wildcard]),
    }
    samples = {p: [] for p in targets}
    s = settings
    try:
        for path, (addr, _) in targets.items():
            ip, port = addr.split(":")
            _check(path, load.curl_ok(f"https://{HOST}/1k", connect_to=f"{HOST}:443:{ip}:{port}", cacert=ca))
        url = f"https://{HOST}/1k"
        for path, (addr, _) in targets.items():
            load.h2load_handshakes(url, addr, max(200, s.handshakes // 10), s.handshake_clients)
        for repeat in range(s.repeats):
            # Handshake runs alternate between the paths in rounds, each round in a rotated
            # order, so that no path is always measured after the same one (TIME_WAIT build-up
            # and the machine's load fall on all of them alike).
            order = list(targets.items())
            rounds = HANDSHAKE_ROUNDS
            done = {p: {"requests": 0, "seconds": 0.0, "errors": 0, "cpu": 0.0} for p in targets}
            for r in range(rounds):
                k = (repeat * rounds + r) % len(order)
                for path, (addr, procs) in order[k:] + order[:k]:
                    c0 = _cpu(procs)
                    hs = load.h2load_handshakes(url, addr, s.handshakes // rounds, s.handshake_clients)
                    c1 = _cpu(procs)
                    d = done[path]
                    d["requests"] += hs["requests"]
                    d["seconds"] += hs["requests"] / hs["hs_per_s"] if hs["hs_per_s"] else 0.0
                    d["errors"] += hs["errors"]
                    d["cpu"] += c1 - c0
            rows = {}
            for path, (_, procs) in targets.items():
                d = done[path]
                rows[path] = {
                    "hs": d["requests"] / d["seconds"] if d["seconds"] else 0.0,
                    "errors": d["errors"],
                }
                if procs:
                    rows[path]["cpu_hs"] = d["cpu"] / (d["requests"] / 1000.0)
            # Bulk transfers alternate between the paths, one at a time, so that a change in
            # the machine's load falls on all of them.
            speeds = {p: [] for p in targets}
            cpu = {p: 0.0 for p in targets}
            sizes = 0
            for _ in range(s.bulk_transfers):
                for path, (addr, procs) in targets.items():
                    ip, port = addr.split(":")
                    c0 = _cpu(procs)
                    bulk = load.curl_bulk(f"https://{HOST}/100m", f"{HOST}:443:{ip}:{port}", ca, 1)
                    cpu[path] += _cpu(procs) - c0
                    speeds[path].append(bulk["mb_per_s"])
                    sizes = bulk["bytes"]
            for path, (_, procs) in targets.items():
                rows[path]["mbps"] = statistics.median(speeds[path])
                if procs:
                    rows[path]["cpu_gb"] = cpu[path] / (s.bulk_transfers * sizes / 1e9)
                    rows[path]["rss"] = _hwm_mib(procs)
                samples[path].append(rows[path])
    finally:
        stack.procs.stop(egress)
        stack.procs.stop(envoy)
        stack.procs.stop(wildcard)
    notes = []
    exact = [r["hs"] for r in samples["egress"]]
    wild = [r["hs"] for r in samples["wildcard"]]
    if exact and wild:
        e, w = statistics.median(exact), statistics.median(wild)
        cpu_e = statistics.median([r["cpu_hs"] for r in samples["egress"]])
        cpu_w = statistics.median([r["cpu_hs"] for r in samples["wildcard"]])
        notes.append(
            f"Wildcard (DYNAMIC_DNS `*.cnn.com`, the name resolved per connection from the SNI) vs "
            f"exact host, egress: {w:,.0f} vs {e:,.0f} handshakes/s ({w / e:.2f}x), "
            f"CPU {cpu_w:.3f} vs {cpu_e:.3f} s per 1,000 handshakes; 100 MB transfer "
            f"{statistics.median([r['mbps'] for r in samples['wildcard']]):,.0f} vs "
            f"{statistics.median([r['mbps'] for r in samples['egress']]):,.0f} MB/s."
        )
    return {
        "id": 2,
        "title": "TLS passthrough by SNI: new connection per request, and a 100 MB transfer",
        "samples": samples,
        "notes": [
            f"Handshakes: h2load --h1 -c{s.handshake_clients} -n{s.handshakes} with `Connection: close`, "
            "so every request is a new TCP connection and a full TLS 1.3 handshake with the upstream "
            "(the proxy only peeks at the SNI). Bulk: curl downloads 100 MB (10^8 bytes) over one "
            "connection; the paths take turns, one transfer at a time; MB/s is 10^6 bytes/s."
        ]
        + notes,
    }


def scenario_originate(stack, settings):
    """3. TLS origination at the gateway, upstream connections reused."""
    cfg = stack.config_dir("originate", {"originate.yaml": stack.egress_yaml("originate.yaml")})
    egress = stack.start_egress_gateway("egress-originate", cfg, EGRESS_GW)
    envoy = stack.start_envoy("envoy-originate", "originate.yaml", ENVOY_GW, **stack.envoy_values())
    hdr = [f"Host: {HOST}"]
    paths = {
        # Direct: the client itself speaks TLS to the upstream (its own keep-alive connections).
        "direct": (f"https://{UPSTREAM}:443/1k", hdr, None, f"https://{HOST}/1k", f"{UPSTREAM}:443", []),
        "egress": (
            f"http://{EGRESS_GW}:8080/1k",
            hdr,
            None,
            f"http://{HOST}/1k",
            f"{EGRESS_GW}:8080",
            [egress],
        ),
        "envoy": (f"http://{ENVOY_GW}:8080/1k", hdr, None, f"http://{HOST}/1k", f"{ENVOY_GW}:8080", [envoy]),
    }
    try:
        ca = stack.certs["upstream-ca"][0]
        _check(
            "direct", load.curl_ok(f"https://{HOST}/1k", connect_to=f"{HOST}:443:{UPSTREAM}:443", cacert=ca)
        )
        for ip in (EGRESS_GW, ENVOY_GW):
            _check(ip, load.curl_ok(f"http://{ip}:8080/1k", host=HOST))
        k = Keepalive(stack, settings, paths)
        samples = k.run()
    finally:
        stack.procs.stop(egress)
        stack.procs.stop(envoy)
    return {
        "id": 3,
        "title": "TLS origination at the gateway (HTTP in, HTTPS to the upstream over reused connections)",
        "samples": samples,
        "upstream": k.upstream,
        "notes": [
            "Direct is the client speaking TLS to the upstream itself over its own keep-alive "
            "connections; through a proxy the client speaks plaintext HTTP and the proxy originates TLS."
        ],
    }


def scenario_mesh(stack, settings):
    """4. The seed's full path: sidecar -> mesh mTLS -> gateway -> TLS origination."""
    cfg = stack.config_dir(
        "mesh",
        {
            "seed-origination.yaml": stack.egress_yaml("mesh.yaml"),
            "gateway-service.yaml": GATEWAY_SERVICE.format(gateway_ip=EGRESS_GW),
        },
    )
    egress_gw = stack.start_egress_gateway("egress-mesh-gateway", cfg, EGRESS_GW, mesh_ca=True)
    egress_sc = stack.start_egress_sidecar("egress-mesh-sidecar", cfg, EGRESS_SIDECAR, EGRESS_GW)
    values = dict(stack.envoy_values(), GATEWAY_IP=ENVOY_GW)
    envoy_gw = stack.start_envoy("envoy-mesh-gateway", "mesh-gateway.yaml", ENVOY_GW, **values)
    envoy_sc = stack.start_envoy("envoy-mesh-sidecar", "mesh-sidecar.yaml", ENVOY_SIDECAR, **values)
    # An explicit proxy gets absolute-form requests: wrk sends them from a script.
    script = os.path.join(stack.work, "explicit-proxy.lua")
    with open(script, "w") as f:
        f.write(f'wrk.path = "http://{HOST}/1k"\nwrk.headers["Host"] = "{HOST}"\n')
    hdr = [f"Host: {HOST}"]
    paths = {
        "direct": (f"https://{UPSTREAM}:443/1k", hdr, None, None, None, []),
        "egress": (f"http://{EGRESS_SIDECAR}:15001/", [], script, None, None, [egress_sc, egress_gw]),
        "envoy": (f"http://{ENVOY_SIDECAR}:15001/", [], script, None, None, [envoy_sc, envoy_gw]),
    }
    try:
        for ip in (EGRESS_SIDECAR, ENVOY_SIDECAR):
            _check(ip, load.curl_ok(f"http://{HOST}/1k", proxy=f"http://{ip}:15001"))
        k = Keepalive(stack, settings, paths)
        samples = k.run()
    finally:
        for p in (envoy_sc, envoy_gw, egress_sc, egress_gw):
            stack.procs.stop(p)
    return {
        "id": 4,
        "title": "The seed's full path: client -> sidecar (explicit proxy) -> mesh mTLS -> gateway -> TLS origination",
        "samples": samples,
        "upstream": k.upstream,
        "notes": [
            "Proxy figures are the sidecar and the gateway together (CPU summed, peak RSS summed). "
            "Direct is the client speaking TLS to the upstream itself. No fixed-rate latency: h2load "
            "cannot send the absolute-form requests an explicit proxy takes (wrk sends them from a "
            "script)."
        ],
    }


SCALE_GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: aks-istio-egress}
spec:
  selector: {istio: asm-egress-test}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.bench.example"]
"""

SCALE_ENTRY = """\
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i}, namespace: aks-istio-egress}}
spec:
  hosts: [svc-{i}.bench.example]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {upstream}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{i}, namespace: aks-istio-egress}}
spec:
  hosts: [svc-{i}.bench.example]
  gateways: [istio-egressgateway]
  http:
  - route:
    - destination: {{host: svc-{i}.bench.example, port: {{number: 80}}}}
"""


SCALE_NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata: {name: aks-istio-egress}
---
"""


def _scale_once(stack, n, idle_secs, source):
    """Apply `n` pairs in one step and time until the gateway serves the last host. `source`:
    `dir` (one atomic file write into --config) or `store` (`egress apply -f` into the
    embedded store the gateway follows)."""
    name = f"scale-{source}-{n}"
    store = os.path.join(stack.work, f"store-{name}")
    if source == "dir":
        cfg = stack.config_dir(name, {"gateway.yaml": SCALE_GATEWAY})
        proc = stack.start_egress_gateway(f"egress-{name}", cfg, EGRESS_SCALE)
    else:
        stack.egress_apply(store, SCALE_NAMESPACE + SCALE_GATEWAY)
        proc = stack.start_egress_gateway(f"egress-{name}", None, EGRESS_SCALE, store=store)
    try:
        rss_before = proc.status_kb("VmRSS") / 1024.0
        text = "".join(SCALE_ENTRY.format(i=i, upstream=UPSTREAM) for i in range(n))
        tmp = os.path.join(stack.work, f"{name}.yaml")
        with open(tmp, "w") as f:
            f.write(text)
        last = f"svc-{n - 1}.bench.example"
        url = f"http://{EGRESS_SCALE}:8080/1k"
        if http_status(url, host=last) == 200:
            raise BenchError("the last host is served before it was applied")
        t0 = time.monotonic()
        apply_s = None
        if source == "dir":
            os.rename(tmp, os.path.join(cfg, "services.yaml"))  # the apply: one atomic write
        else:
            stack.egress_apply(store, path=tmp)  # one transaction, committed when it returns
            apply_s = time.monotonic() - t0
        t_applied = time.monotonic()
        wait_until(
            f"{last} served",
            lambda: http_status(url, host=last, timeout=5) == 200,
            timeout=300,
            proc=proc,
            interval=0.005,
        )
        serving = time.monotonic() - t_applied
        if http_status(url, host="svc-0.bench.example") != 200:
            raise BenchError("svc-0 is not served")
        # CPU while nothing changes: what keeping the configuration current costs at rest.
        c0 = proc.cpu_seconds()
        time.sleep(idle_secs)
        idle = (proc.cpu_seconds() - c0) / idle_secs
        return {
            "n": n,
            "source": source,
            "serving_s": serving,
            "apply_s": apply_s,
            "rss_before": rss_before,
            "rss_idle": proc.status_kb("VmRSS") / 1024.0,
            "hwm": proc.status_kb("VmHWM") / 1024.0,
            "idle_cpu": idle,
            "bytes": len(text),
        }
    finally:
        stack.procs.stop(proc)


def scenario_scale(stack, settings):
    """5. Config scale: N ServiceEntries + VirtualServices written into --config (egress only)."""
    rows = [
        _scale_once(stack, n, settings.idle_secs, source)
        for source in ("dir", "store")
        for n in settings.scale_sizes
    ]
    return {
        "id": 5,
        "title": "Configuration scale: ServiceEntry + VirtualService pairs applied in one step (egress only)",
        "scale": rows,
    }
