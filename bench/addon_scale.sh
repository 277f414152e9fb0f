#!/usr/bin/env bash
# The add-on at its limit: enable 500 egress gateways with `egress mesh enable-egress-gateway`
# (one process per command, as a user would run them), check that the 501st is refused, then
# start `egress up -d` (which returns once its first pass has converged: every gateway Pod
# Running with its gateway serving) and report the times and the resident memory of `egress up`
# holding them. Everything stays on loopback (pod IPs 127.1.0.0/16, egress IPs 127.0.10.0/24).
#
#   bench/addon_scale.sh            # N=500
#   N=50 bench/addon_scale.sh       # a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
cargo build --release --bin egress >/dev/null 2>&1 || cargo build --release --bin egress
E=${CARGO_TARGET_DIR:-$PWD/target}/release/egress

WORK=$(mktemp -d)
export EGRESS_STORE=$WORK/store
trap '"$E" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b - a}'; }

"$E" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: aks-istio-egress}
---
apiVersion: egressgateway.kubernetes.azure.com/v1alpha1
kind: StaticGatewayConfiguration
metadata: {name: istio-egress-sgc, namespace: aks-istio-egress}
spec: {gatewayNodepoolName: istioegresspool, provisionPublicIps: true}
EOF

t0=$(now)
for i in $(seq 1 "$N"); do
  "$E" mesh enable-egress-gateway --istio-egressgateway-name "gw-$i" \
    --gateway-configuration-name istio-egress-sgc --no-wait -o none
done
t1=$(now)
enable_total=$(secs "$t0" "$t1")
t2=$(now)
"$E" mesh enable-egress-gateway --istio-egressgateway-name gw-extra \
  --gateway-configuration-name istio-egress-sgc --no-wait -o none 2>"$WORK/refused" && refused=no || refused=yes
t3=$(now)
last_enable=$(secs "$t2" "$t3")

t4=$(now)
"$E" up -d >/dev/null
t5=$(now)
up_total=$(secs "$t4" "$t5")
pid=$(cat "$EGRESS_STORE/run/up.pid")
rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
hwm_kb=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
threads=$(awk '/Threads/{print $2}' "/proc/$pid/status")
pods=$("$E" get pods -A 2>/dev/null | grep -c ' Running ' || true)
t6=$(now)
"$E" down >/dev/null
t7=$(now)
down_total=$(secs "$t6" "$t7")

out=$(cat <<EOF
addon scale, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$N gateways (2 pods each)
  enable $N gateways (one egress mesh process each)   ${enable_total}s  ($(awk -v t="$enable_total" -v n="$N" 'BEGIN{printf "%.1f", 1000*t/n}') ms per command)
  enable gateway $((N + 1)) (refused: $refused)            ${last_enable}s
      $(head -c 200 "$WORK/refused")
  egress up -d until every gateway pod runs            ${up_total}s
  pods Running                                         $pods
  egress up resident memory                            $((rss_kb / 1024)) MiB (peak $((hwm_kb / 1024)) MiB, $threads threads)
  egress down (drain and exit)                         ${down_total}s
EOF
)
echo "$out"
mkdir -p bench/results
echo "$out" > "bench/results/addon-scale-$(date -u +%Y%m%dT%H%M).txt"
