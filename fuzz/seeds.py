#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the repository's own test data
and Istio's conformance manifests (given as the first argument, optional). Run once; the
results are committed. Re-running overwrites seeds of the same name and adds none twice."""

import hashlib
import pathlib
import re
import ssl
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def strings_in(path, pattern):
    text = (ROOT / path).read_text()
    out = []
    for m in re.finditer(pattern, text, re.M):
        s = m.group(1)
        try:
            out.append(bytes(s, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8"))
        except (UnicodeDecodeError, UnicodeEncodeError):
            out.append(s)
    return out


def yaml_seeds(conformance):
    files = [p for p in ROOT.glob("bench/egress/*.yaml")] + list(ROOT.glob("samples/*.yaml"))
    if conformance:
        files += list(pathlib.Path(conformance).rglob("*.yaml"))
    for f in files:
        text = f.read_text()
        put("yaml_decode", text)
        for doc in text.split("\n---"):
            if doc.strip():
                put("yaml_decode", doc.strip() + "\n")
    http = (ROOT / "fuzz/fuzz_targets/http_head.rs").read_text()
    put("yaml_decode", http.split('r#"', 1)[1].split('"#', 1)[0])


def client_hellos():
    names = ["edition.cnn.com", "EXAMPLE.org", "a.b.c.d.e.f.example", "xn--bcher-kva.example", None]
    alpns = [None, ["h2", "http/1.1"], ["istio-peer-exchange", "istio"]]
    for name in names:
        for alpn in alpns:
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.maximum_version = version
                if alpn:
                    ctx.set_alpn_protocols(alpn)
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                conn = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
                try:
                    conn.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                hello = outgoing.read()
                put("sni_client_hello", hello)
    # The same hello split over two records, and a truncated one.
    body = hello[5:]
    half = len(body) // 2
    split = b"\x16\x03\x01" + struct.pack(">H", half) + body[:half]
    split += b"\x16\x03\x01" + struct.pack(">H", len(body) - half) + body[half:]
    put("sni_client_hello", split)
    put("sni_client_hello", hello[: len(hello) // 2])
    put("sni_client_hello", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def hpack_literal(name, value):
    # Literal header field without indexing, new name, no Huffman.
    def s(b):
        assert len(b) < 127
        return bytes([len(b)]) + b
    return b"\x00" + s(name) + s(value)


def h2_request(headers, body=b""):
    block = b"".join(hpack_literal(n.encode(), v.encode()) for n, v in headers)
    frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    frames += struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0)  # SETTINGS
    flags = 0x4 | (0x1 if not body else 0)
    frames += struct.pack(">I", len(block))[1:] + b"\x01" + bytes([flags]) + struct.pack(">I", 1) + block
    if body:
        frames += struct.pack(">I", len(body))[1:] + b"\x00\x01" + struct.pack(">I", 1) + body
    return frames


def http_seeds():
    paths = ["/", "/admin", "/admin/x", "/%61dmin", "/adm%69n/x", "/x/%2e%2e/admin", "/%2e/admin",
             "//admin", "/admin%2fx", "/\\admin", "/public/%2e%2e/admin", "/public/..%2fadmin",
             "/old", "/LEGACY/a", "/api/v2/items?x=1", "/x?q=1", "/a/./b/../c"]
    for p in paths:
        put("http_head", b"\x00GET " + p.encode() + b" HTTP/1.1\r\nHost: edition.cnn.com\r\n\r\n")
    put("http_head", b"\x00GET /x HTTP/1.1\r\nHost: h\r\nx-route: a--b\r\nx-drop: 1\r\nx-block: yes\r\n"
        b"x-envoy-original-path: /politics\r\nuser-agent: fuzz\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n")
    put("http_head", b"\x00DELETE /x HTTP/1.1\r\nHost: a.blocked.example\r\n\r\n")
    put("http_head", b"\x00POST /api/v1/x HTTP/1.1\r\nHost: edition.cnn.com\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\n\r\n5\r\nhello\r\nzz\r\n")
    put("http_head", b"\x00POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: keep-alive, x-hop\r\n"
        b"x-hop: 1\r\n\r\nabcGET /y HTTP/1.0\r\n\r\n")
    put("http_head", b"\x01GET /x HTTP/1.1\r\nHost: other.example\r\n\r\n")
    put("http_head", b"\x01GET http://edition.cnn.com/admin HTTP/1.1\r\nHost: edition.cnn.com\r\n\r\n")
    put("http_head", b"\x00CONNECT edition.cnn.com:443 HTTP/1.1\r\nHost: edition.cnn.com:443\r\n\r\n")
    base = [(":method", "GET"), (":scheme", "http"), (":authority", "edition.cnn.com")]
    put("http_head", b"\x00" + h2_request(base + [(":path", "/admin/%2e%2e/x")]))
    put("http_head", b"\x00" + h2_request(base + [(":path", "/api/v1/a"), ("x-route", "ab")]))
    put("http_head", b"\x01" + h2_request([(":method", "POST"), (":scheme", "https"),
                                          (":authority", "edition.cnn.com"), (":path", "/p")], b"body"))


def text_seeds():
    fmt = (ROOT / "crates/proxy/src/accesslog/format.rs").read_text()
    default_text = fmt.split("DEFAULT_TEXT_FORMAT: &str = \"", 1)[1].split("\";", 1)[0]
    default_text = re.sub(r"\\\n\s*", "", default_text).replace('\\"', '"').replace("\\n", "\n")
    put("accesslog_format", b"\x00" + default_text.encode())
    keys = re.findall(r'\(\s*"([a-z_]+)",\s*"(%[^"]*%)"', fmt)
    import json
    put("accesslog_format", b"\x01" + json.dumps(dict(keys)).encode())
    for f in ["%REQ(:PATH):5% %RESP(CONTENT-TYPE)% %%", "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%\n",
              "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_HOST% %RESPONSE_FLAGS%",
              "plain text\n", "%REQ(USER-AGENT):3%|%REQ(X-UTF8):2%|%ROUTE_NAME:7%"]:
        put("accesslog_format", b"\x00" + f.encode())
    put("accesslog_format", b'\x01{"a":"%REQ(:AUTHORITY)%","n":"%RESPONSE_CODE%","t":"x %BYTES_SENT%"}')
    for s in strings_in("crates/printers/src/selector/tests.rs", r'"([^"\\]*(?:\\.[^"\\]*)*)"'):
        if len(s) < 200:
            put("label_selector", s)
    for s in strings_in("crates/printers/src/jsonpath/tests.rs", r'"((?:[^"\\]|\\.)*\{(?:[^"\\]|\\.)*)"'):
        put("jsonpath", s)
    for s in strings_in("crates/model/src/validate/telemetry/cel.rs", r'^\s+"((?:[^"\\]|\\.)*)",$'):
        put("cel", s)
    for e in ["response.code >= 400 && request.headers['x-a'] == 'b'", "size(request.url_path) > 3u",
              "connection.mtls ? 1 : 2.0", "[1, 2][0] in {1: 2}"]:
        put("cel", e)


if __name__ == "__main__":
    yaml_seeds(sys.argv[1] if len(sys.argv) > 1 else None)
    client_hellos()
    http_seeds()
    text_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(d.name, len(list(d.iterdir())))
