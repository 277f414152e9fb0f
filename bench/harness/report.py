"""The results as Markdown: one table per scenario (median and min-max over the repeats, and
the egress figure as a ratio to Envoy's and to the direct path's), then the issue's goals,
each met or missed."""

import math
import statistics

# (key, label, unit format, ratio to direct is meaningful, lower is better)
KEEPALIVE_ROWS = [
    ("rps", "saturated req/s (wrk -t1 -c64, closed loop)", "{:,.0f}", True, False),
    ("p50", "p50 latency at 1,000 req/s (ms)", "{:.3f}", True, True),
    ("p90", "p90 latency at 1,000 req/s (ms)", "{:.3f}", True, True),
    ("p99", "p99 latency at 1,000 req/s (ms)", "{:.3f}", True, True),
    ("cpu_fixed", "proxy CPU s per 1,000 req at 1,000 req/s", "{:.3f}", False, True),
    ("cpu_sat", "proxy CPU s per 1,000 req at saturation", "{:.3f}", False, True),
    ("rss", "proxy peak RSS, VmHWM (MiB)", "{:.1f}", False, True),
    ("errors", "failed or non-2xx requests", "{:.0f}", False, True),
]
PASSTHROUGH_ROWS = [
    ("hs", "full TLS handshakes/s (new connection per request)", "{:,.0f}", True, False),
    ("cpu_hs", "proxy CPU s per 1,000 handshakes", "{:.3f}", False, True),
    ("mbps", "100 MB transfer (MB/s, curl)", "{:,.0f}", True, False),
    ("cpu_gb", "proxy CPU s per GB transferred", "{:.3f}", False, True),
    ("rss", "proxy peak RSS, VmHWM (MiB)", "{:.1f}", False, True),
    ("errors", "failed requests", "{:.0f}", False, True),
]


def _values(samples, path, key):
    return [r[key] for r in samples.get(path, []) if key in r and not math.isnan(r[key])]


def _med(samples, path, key):
    v = _values(samples, path, key)
    return statistics.median(v) if v else None


def _cell(samples, path, key, fmt):
    v = _values(samples, path, key)
    if not v:
        return "-"
    med = fmt.format(statistics.median(v))
    if len(v) == 1 or min(v) == max(v):
        return med
    return f"{med} ({fmt.format(min(v))}–{fmt.format(max(v))})"


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def _table(result, rows):
    s = result["samples"]
    out = [
        "| metric | direct | egress | Envoy 1.40 | egress ÷ Envoy | egress ÷ direct |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label, fmt, vs_direct, _ in rows:
        if not any(_values(s, p, key) for p in s):
            continue
        e, v, d = _med(s, "egress", key), _med(s, "envoy", key), _med(s, "direct", key)
        ratio_envoy = _ratio(e, v) if key != "errors" else "-"
        ratio_direct = _ratio(e, d) if vs_direct else "-"
        out.append(
            f"| {label} | {_cell(s, 'direct', key, fmt)} | {_cell(s, 'egress', key, fmt)} | "
            f"{_cell(s, 'envoy', key, fmt)} | {ratio_envoy} | {ratio_direct} |"
        )
    return out


def _upstream_lines(result):
    up = result.get("upstream")
    if not up:
        return []
    out = [
        "",
        "Upstream TLS connections, counted by nginx over the whole scenario (no session cache, "
        "no tickets: each connection is exactly one full handshake):",
        "",
        "| path | upstream TLS connections (= handshakes) | requests | requests per upstream connection |",
        "|---|---:|---:|---:|",
    ]
    for path in ("direct", "egress", "envoy"):
        conns, reqs = up.get(path, (0, 0))
        per = f"{reqs / conns:,.0f}" if conns > 0 else "-"
        out.append(f"| {path} | {conns:,} | {reqs:,} | {per} |")
    return out


def _scale_lines(result):
    out = [
        "| applied through | pairs | YAML | apply command took | last host served, after the apply | RSS before | "
        "RSS after | peak RSS | CPU at rest afterwards |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    how = {"dir": "file written into --config", "store": "`egress apply -f` (store)"}
    for r in result["scale"]:
        apply_s = f"{r['apply_s']:.2f} s" if r["apply_s"] is not None else "-"
        out.append(
            f"| {how[r['source']]} | {r['n']:,} | {r['bytes'] / 1e6:.1f} MB | {apply_s} | "
            f"{r['serving_s']:.2f} s | {r['rss_before']:.1f} MiB | {r['rss_idle']:.1f} MiB | "
            f"{r['hwm']:.1f} MiB | {r['idle_cpu']:.2f} cores |"
        )
    return out


def render_scenario(result):
    lines = [f"### {result['id']}. {result['title']}", ""]
    if "skipped" in result:
        return lines + [f"Not run: {result['skipped']}", ""]
    if "scale" in result:
        return lines + _scale_lines(result) + [""]
    rows = PASSTHROUGH_ROWS if result["id"] == 2 else KEEPALIVE_ROWS
    lines += _table(result, rows)
    lines += _upstream_lines(result)
    for note in result.get("notes", []):
        lines += ["", note]
    return lines + [""]


def _goal(lines, text, ok, detail):
    mark = "met" if ok else "missed"
    if ok is None:
        mark = "not measured"
    lines.append(f"| {text} | {detail} | {mark} |")


def goals(results):
    """The issue's goals, judged on the medians of this run."""
    by_id = {r["id"]: r for r in results if "skipped" not in r}
    lines = ["| goal | this run | |", "|---|---|---|"]
    if 1 in by_id:
        s = by_id[1]["samples"]
        e, v = (lambda k: _med(s, "egress", k)), (lambda k: _med(s, "envoy", k))
        for key, text, want, higher in (
            ("rps", "1: saturated req/s ≥ 1.5x Envoy", 1.5, True),
            ("cpu_fixed", "1: CPU per 1k req ≤ 0.5x Envoy", 0.5, False),
            ("p99", "1: p99 at 1,000 req/s ≤ Envoy", 1.0, False),
            ("rss", "1: peak RSS ≤ 0.25x Envoy", 0.25, False),
        ):
            if e(key) is None or not v(key):
                _goal(lines, text, None, "-")
                continue
            r = e(key) / v(key)
            _goal(lines, text, r >= want if higher else r <= want, f"{r:.2f}x")
    if 2 in by_id:
        s = by_id[2]["samples"]
        e, d, v = _med(s, "egress", "mbps"), _med(s, "direct", "mbps"), _med(s, "envoy", "mbps")
        _goal(
            lines,
            "2: bulk MB/s within 10% of direct",
            e >= 0.9 * d,
            f"{e / d:.2f}x direct ({v / d:.2f}x for Envoy)",
        )
        e, v = _med(s, "egress", "hs"), _med(s, "envoy", "hs")
        _goal(lines, "2: handshakes/s ≥ Envoy", e >= v, f"{e / v:.2f}x")
    for sid in (3, 4):
        if sid not in by_id:
            continue
        s = by_id[sid]["samples"]
        e, v = _med(s, "egress", "rps"), _med(s, "envoy", "rps")
        _goal(lines, f"{sid}: saturated req/s ≥ 1.3x Envoy", e >= 1.3 * v, f"{e / v:.2f}x")
        conns, reqs = by_id[sid]["upstream"]["egress"]
        per = reqs / conns if conns else float("inf")
        _goal(
            lines,
            f"{sid}: ≤ 1 upstream TLS handshake per upstream connection (connections reused)",
            conns > 0 and per > 1,
            f"1 handshake per connection, {per:,.0f} requests per connection",
        )
    if 5 in by_id:
        for r in by_id[5]["scale"]:
            if r["n"] >= 10000:
                via = "--config" if r["source"] == "dir" else "store"
                _goal(
                    lines,
                    f"5: {r['n']:,} ServiceEntries serving < 1 s after apply ({via})",
                    r["serving_s"] < 1.0,
                    f"{r['serving_s']:.2f} s",
                )
                _goal(
                    lines,
                    f"5: {r['n']:,} ServiceEntries < 100 MB RSS ({via})",
                    r["rss_idle"] < 100 * 1e6 / 2**20,
                    f"{r['rss_idle']:.1f} MiB",
                )
    return lines


def ratios_summary(results):
    """One line per scenario with the headline ratios (the --short output)."""
    out = []
    for r in results:
        if "samples" not in r:
            continue
        s = r["samples"]
        keys = ("hs", "mbps", "cpu_hs") if r["id"] == 2 else ("rps", "p99", "cpu_fixed", "rss")
        parts = []
        for k in keys:
            e, v, d = _med(s, "egress", k), _med(s, "envoy", k), _med(s, "direct", k)
            if e is None:
                continue
            part = f"{k} {_ratio(e, v)} Envoy"
            if d is not None and k not in ("cpu_fixed", "cpu_hs", "rss"):
                part += f", {_ratio(e, d)} direct"
            parts.append(part)
        out.append(f"scenario {r['id']}: " + "; ".join(parts))
    return out
