#!/usr/bin/env bash
# TLS's cost on a shaped link: two network-namespace hosts joined by one veth pair limited by
# `tc ... tbf` on both ends, one rank each, ringwire all-reduce of BYTES float32 bytes, with and
# without TLS, interleaved (A/B per round) so that the load of a shared machine hits both alike.
# Usage (root): bench/tls-cost.sh [rate=1gbit] [bytes=67108864] [rounds=3] [reps=3]
# Prints one line per run and a summary: tls-cost link=.. bytes=.. plain=.. tls=.. ratio=..
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1gbit}
BYTES=${2:-67108864}
ROUNDS=${3:-3}
REPS=${4:-3}
FIXTURE=packages/core/test/fixtures/tls-job.mjs
A=rwtlsb$$a
B=rwtlsb$$b
DIR=$(mktemp -d /tmp/ringwire-tls-cost-XXXXXX)
cleanup() {
  for ns in $A $B; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT
ip netns add $A
ip netns add $B
ip link add eth0 netns $A type veth peer name eth0 netns $B
i=1
for ns in $A $B; do
  ip -n $ns addr add 10.77.17.$i/24 dev eth0
  ip -n $ns link set eth0 up
  ip -n $ns link set lo up
  # burst: a few ms worth at the rate, so tbf does not throttle below it.
  ip netns exec $ns tc qdisc replace dev eth0 root tbf rate "$RATE" burst 1mb latency 50ms
  i=$((i + 1))
done
# A job CA and member certificate (the same code as ringrun --tls).
node --input-type=module -e "
import { makeCa, issueCert } from '@ringwire/run';
const ca = makeCa('$DIR', 'ca'); issueCert('$DIR', ca, 'member');"
TLS_ENV=(RINGWIRE_TLS_CERT=$DIR/member.pem RINGWIRE_TLS_KEY=$DIR/member.key RINGWIRE_TLS_CA=$DIR/ca.pem)

run() { # $1 = plain|tls: one job, prints the busbw of each timed all-reduce
  local extra=(RINGWIRE_SHM=0) job="bench-$1-$RANDOM" url
  if [ "$1" = tls ]; then extra+=("${TLS_ENV[@]}"); fi
  env "${extra[@]}" RW_SECRET=bench ip netns exec $A node $FIXTURE rdzv 10.77.17.1 >"$DIR/rdzv.out" 2>/dev/null &
  local rdzv=$!
  for _ in $(seq 100); do grep -q listening "$DIR/rdzv.out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$DIR/rdzv.out")
  local pids=() ns
  for r in 0 1; do
    ns=$A
    [ $r = 1 ] && ns=$B
    env "${extra[@]}" RINGWIRE_RANK=$r RINGWIRE_SIZE=2 RINGWIRE_RENDEZVOUS="$url" RINGWIRE_JOB_ID=$job \
      RINGWIRE_TOKEN=bench RW_BYTES=$BYTES RW_REPS=$REPS ip netns exec $ns node $FIXTURE bench >"$DIR/rank$r.out" &
    pids+=($!)
  done
  wait "${pids[@]}" || echo "rank failed: $(cat "$DIR"/rank*.out)" >&2
  kill $rdzv 2>/dev/null || true
  wait $rdzv 2>/dev/null || true
  sed -n 's/.*"busbw":\([0-9.e-]*\).*/\1/p' "$DIR/rank0.out"
}

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg) (a machine shared with other jobs)"
: >"$DIR/plain.all"
: >"$DIR/tls.all"
for round in $(seq "$ROUNDS"); do
  for mode in plain tls; do
    vals=$(run $mode | tr '\n' ' ')
    echo "round=$round mode=$mode busbw_GBps=[ $vals] load=$(cut -d' ' -f1 /proc/loadavg)"
    for v in $vals; do echo "$v" >>"$DIR/$mode.all"; done
  done
done
median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
p=$(median "$DIR/plain.all")
t=$(median "$DIR/tls.all")
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tls-cost link=$RATE bytes=$BYTES plain=$(printf %.4f "$p") tls=$(printf %.4f "$t") ratio=$(awk "BEGIN{printf \"%.3f\", $t/$p}")"
