"""Starting the processes under test: the nginx upstream, `egress gateway run` /
`egress sidecar run` with Istio YAML in a directory, and Envoy with a static config from
bench/envoy. Addresses are fixed private loopback addresses, one per process."""

import os
import shutil
import string
import subprocess
import urllib.request

from .procs import BenchError, http_status, port_open, wait_until

UPSTREAM = "127.0.70.1"  # nginx: 80, 443, stub_status on STUB_PORT
EGRESS_GW = "127.0.70.2"  # egress gateway: 8080, 8443, health 15021
ENVOY_GW = "127.0.70.3"  # Envoy gateway: 8080, 8443, admin ENVOY_ADMIN
EGRESS_SIDECAR = "127.0.70.4"  # egress sidecar: explicit proxy 15001, health 15021
ENVOY_SIDECAR = "127.0.70.5"  # Envoy sidecar: explicit proxy 15001, admin ENVOY_ADMIN
EGRESS_SCALE = "127.0.70.6"  # egress gateway of the config-scale scenario
EGRESS_WILDCARD = "127.0.70.7"  # egress gateway of scenario 2's DYNAMIC_DNS (wildcard) row
STUB_PORT = 8081
ENVOY_ADMIN = 15000

GATEWAY_FLAGS = [
    "--namespace",
    "aks-istio-egress",
    "--labels",
    "istio=asm-egress-test,app=asm-egress-test",
    "--service-account",
    "asm-egress-test",
    "--drain-grace",
    "1",
]

# What the client sidecar of scenario 4 needs beyond the seed's YAML: the gateway's Kubernetes
# Service (the DestinationRule's host) and one ready gateway Pod behind it.
GATEWAY_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: asm-egress-test, namespace: aks-istio-egress}}
spec:
  selector: {{istio: asm-egress-test}}
  ports:
  - {{name: http2, port: 80, targetPort: 8080}}
  - {{name: https, port: 443, targetPort: 8443}}
---
apiVersion: v1
kind: Pod
metadata:
  name: asm-egress-test-0
  namespace: aks-istio-egress
  labels: {{istio: asm-egress-test, app: asm-egress-test}}
spec:
  serviceAccountName: asm-egress-test
  containers: [{{name: istio-proxy, image: egress}}]
status:
  phase: Running
  podIP: {gateway_ip}
  conditions: [{{type: Ready, status: "True"}}]
"""


class Stack:
    """Starts and stops the processes of a scenario through the bench's process registry."""

    def __init__(self, procs, work, bench_dir, egress_bin, envoy_bin, certs, workers):
        self.procs = procs
        self.work = work
        self.bench_dir = bench_dir
        self.egress_bin = egress_bin
        self.envoy_bin = envoy_bin
        self.certs = certs
        self.workers = workers

    # -- upstream ---------------------------------------------------------------------------

    def start_upstream(self, conf):
        proc = self.procs.start(
            "nginx", ["nginx", "-c", conf, "-e", os.path.join(self.work, "nginx-error.log")]
        )
        wait_until("nginx", lambda: http_status(f"http://{UPSTREAM}:{STUB_PORT}/") == 200, proc=proc)
        return proc

    def stub(self):
        """nginx's (accepted connections, requests) counters; the query itself counts once."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{UPSTREAM}:{STUB_PORT}/", timeout=5) as resp:
            lines = resp.read().decode().splitlines()
        accepts, _handled, requests = (int(x) for x in lines[2].split())
        return accepts, requests

    # -- egress -----------------------------------------------------------------------------

    def config_dir(self, name, files):
        """A fresh --config directory holding `files` (name -> YAML text)."""
        path = os.path.join(self.work, f"config-{name}")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        for fname, text in files.items():
            with open(os.path.join(path, fname), "w") as f:
                f.write(text)
        return path

    def egress_yaml(self, name):
        with open(os.path.join(self.bench_dir, "egress", name)) as f:
            return f.read()

    def _egress_env(self):
        # `egress` builds a tokio multi-thread runtime with no worker flag; tokio reads
        # TOKIO_WORKER_THREADS.
        return {"TOKIO_WORKER_THREADS": str(self.workers), "RUST_LOG": "warn"}

    def egress_apply(self, store, text=None, path=None):
        """`egress --store STORE apply -f PATH` (or the YAML `text` on standard input)."""
        argv = [self.egress_bin, "--store", store, "apply", "-f", path or "-"]
        res = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise BenchError(f"egress apply failed: {res.stderr[-2000:]}")

    def start_egress_gateway(self, name, config, ip, mesh_ca=False, wait=True, store=None):
        source = ["--config", config] if config else ["--store", store]
        argv = [
            self.egress_bin,
            "gateway",
            "run",
            *source,
            "--listen-address",
            ip,
            "--host",
            f"edition.cnn.com={UPSTREAM}",
            "--extra-roots",
            self.certs["upstream-ca"][0],
            *GATEWAY_FLAGS,
        ]
        if mesh_ca:
            argv += ["--ca-cert", self.certs["mesh-ca"][0], "--ca-key", self.certs["mesh-ca"][1]]
        proc = self.procs.start(name, argv, env=self._egress_env())
        if wait:
            wait_until(
                f"{name} ready", lambda: http_status(f"http://{ip}:15021/healthz/ready") == 200, proc=proc
            )
        return proc

    def start_egress_sidecar(self, name, config, ip, gateway_ip):
        argv = [
            self.egress_bin,
            "sidecar",
            "run",
            "--config",
            config,
            "--listen-address",
            ip,
            "--proxy-port",
            "15001",
            "--namespace",
            "aks-istio-egress",
            "--labels",
            "app=curl",
            "--service-account",
            "curl",
            "--host",
            f"asm-egress-test.aks-istio-egress.svc.cluster.local={gateway_ip}",
            "--ca-cert",
            self.certs["mesh-ca"][0],
            "--ca-key",
            self.certs["mesh-ca"][1],
            "--drain-grace",
            "1",
        ]
        proc = self.procs.start(name, argv, env=self._egress_env())
        wait_until(f"{name} listening", lambda: port_open(ip, 15001), proc=proc)
        return proc

    # -- Envoy ------------------------------------------------------------------------------

    def start_envoy(self, name, template, ip, **values):
        with open(os.path.join(self.bench_dir, "envoy", template)) as f:
            text = string.Template(f.read()).substitute(
                PROXY_IP=ip, ADMIN_PORT=ENVOY_ADMIN, UPSTREAM_IP=UPSTREAM, **values
            )
        conf = os.path.join(self.work, f"{name}.yaml")
        with open(conf, "w") as f:
            f.write(text)
        argv = [
            self.envoy_bin,
            "-c",
            conf,
            "--concurrency",
            str(self.workers),
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ]
        proc = self.procs.start(name, argv)
        wait_until(f"{name} ready", lambda: http_status(f"http://{ip}:{ENVOY_ADMIN}/ready") == 200, proc=proc)
        return proc

    def envoy_values(self):
        """Certificate paths the Envoy templates name."""
        return {
            "UPSTREAM_CA": self.certs["upstream-ca"][0],
            "MESH_CA": self.certs["mesh-ca"][0],
            "WORKLOAD_CERT": self.certs["workload"][0],
            "WORKLOAD_KEY": self.certs["workload"][1],
            "GATEWAY_CERT": self.certs["gateway"][0],
            "GATEWAY_KEY": self.certs["gateway"][1],
        }
