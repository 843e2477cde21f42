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

# One run: the slowest rank's ms to its first collective.
once() { T0=$(date +%s%3N) "$@" 2>/dev/null | awk '/first-collective/ { if ($NF > m) m = $NF } END { print m }'; }
# Median (min-max) of the numbers on stdin.
stats() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] " (" a[1] "-" a[NR] ")" }'; }

export T0
NAMES=('ringrun, ringwire' 'mpirun, ringwire' 'srun, ringwire' 'mpirun, plain MPI program (C)'
  'mpirun, ringwire, setsid -w per rank' 'srun, ringwire, setsid -w per rank')
echo "load: $(uptime | sed 's/.*load average: //')"
printf '| %-32s | %3s | %-40s |\n' launcher np 'ms to first collective, median (min-max)'
for np in ${*:-2 8}; do
  CMDS=(
    "node packages/run/dist/cli.js -np $np node $JS"
    "mpirun $ROOTFLAG --oversubscribe -x RINGWIRE_TOKEN -x T0 -np $np node $JS"
    "srun -n $np node $JS"
    "mpirun $ROOTFLAG --oversubscribe -x T0 -np $np $BIN"
    # ringrun starts each worker in a session of its own, so with the kernel's CFS autogroups each
    # gets its own share of a busy CPU; these two rows do the same under mpirun and srun.
    "mpirun $ROOTFLAG --oversubscribe -x RINGWIRE_TOKEN -x T0 -np $np setsid -w node $JS"
    "srun -n $np setsid -w node $JS"
  )
  # Interleaved (rep 1 of each launcher, then rep 2, ...), so that load changes hit all alike.
  declare -A ms=()
  for rep in $(seq "$REPS"); do
    for i in "${!CMDS[@]}"; do ms[$i]+="$(once ${CMDS[$i]}) "; done
  done
  for i in "${!CMDS[@]}"; do
    printf '| %-32s | %3s | %-40s |\n' "${NAMES[$i]}" "$np" "$(tr ' ' '\n' <<<"${ms[$i]}" | grep . | stats)"
  done
  unset ms
done
echo "load after: $(uptime | sed 's/.*load average: //')"
