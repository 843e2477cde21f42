#!/usr/bin/env bash
# Start-up time from the launcher to the first collective (all ranks done), median of REPS runs:
# ringrun, mpirun and srun starting ringwire, and mpirun starting a plain C MPI program.
#   bench/engines/startup.sh [NP...]        (default: 2 8; needs Slurm up and Open MPI; root)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-5}
BIN=$(mktemp -d)/first-collective
trap 'rm -rf "$(dirname "$BIN")"' EXIT
mpicc -O2 -o "$BIN" bench/engines/first-collective.c
export RINGWIRE_TOKEN=bench-startup
ROOTFLAG=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root || true)
JS=bench/engines/first-collective.mjs

# Runs the command REPS times; prints the median of (the slowest rank's ms).
median() {
  local runs=()
  for _ in $(seq "$REPS"); do
    export T0=$(date +%s%3N)
    runs+=("$("$@" 2>/dev/null | awk '/first-collective/ { if ($NF > m) m = $NF } END { print m }')")
  done
  printf '%s\n' "${runs[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] " (" a[1] "-" a[NR] ")" }'
}

echo "load: $(uptime | sed 's/.*load average: //')"
printf '| %-40s | %5s | %s |\n' launcher np 'ms to first collective, median (min-max)'
for np1 in ${*:-2 8}; do
  {
    printf '| %-40s | %5s | %s |\n' 'ringrun, ringwire' "$np1" "$(median node packages/run/dist/cli.js -np "$np1" node $JS)"
    printf '| %-40s | %5s | %s |\n' 'mpirun, ringwire' "$np1" "$(median mpirun $ROOTFLAG --oversubscribe -x RINGWIRE_TOKEN -x T0 -np "$np1" node $JS)"
    printf '| %-40s | %5s | %s |\n' 'srun, ringwire' "$np1" "$(median srun -n "$np1" node $JS)"
    printf '| %-40s | %5s | %s |\n' 'mpirun, plain MPI program (C)' "$np1" "$(median mpirun $ROOTFLAG --oversubscribe -x T0 -np "$np1" "$BIN")"
  }
done
echo "load after: $(uptime | sed 's/.*load average: //')"
