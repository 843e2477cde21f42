#!/usr/bin/env bash
# Same-run comparison of the core all-reduce (shared memory between same-host peers, and TCP only
# with RINGWIRE_SHM=0) with Gloo and Open MPI (TCP and shared memory),
# interleaved per repetition. Usage: bench/core/compare.sh [worlds] [reps]   (needs a build,
# python3-torch, openmpi-bin, libopenmpi-dev). Prints CSV lines: peer,world,bytes,time_us,busbw.
set -u
cd "$(dirname "$0")/../.."
WORLDS=${1:-"2 4"}; REPS=${2:-2}; SIZES=4096,67108864,268435456
PEERS=../shared/peers; BIN=${TMPDIR:-/tmp}/ringwire-peers; mkdir -p "$BIN"
[ -x "$BIN/mpi_allreduce" ] || mpicc -O2 -o "$BIN/mpi_allreduce" "$PEERS/mpi_allreduce.c"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca pml ob1)
for rep in $(seq 1 "$REPS"); do
  for w in $WORLDS; do
    SIZES=$SIZES node bench/core/sweep.mjs "$w" | awk -v w="$w" '{gsub(/ us/,"",$2); print "ringwire," w "," $1 "," $2 "," $5}'
    RINGWIRE_SHM=0 SIZES=$SIZES node bench/core/sweep.mjs "$w" | awk -v w="$w" '{gsub(/ us/,"",$2); print "ringwire-tcp," w "," $1 "," $2 "," $5}'
    /usr/bin/python3 "$PEERS/gloo_allreduce.py" --world "$w" --sizes 4K,64M,256M 2>/dev/null | awk -F, -v w="$w" 'NR>1 {print "gloo," w "," $3 "," $5 "," $9}'
    "${MPIRUN[@]}" -np "$w" --mca btl tcp,self --mca btl_tcp_if_include lo "$BIN/mpi_allreduce" --label mpi-tcp --sizes 4K,64M,256M 2>/dev/null | awk -F, 'NR>1 {print $1 "," $2 "," $3 "," $5 "," $9}'
    "${MPIRUN[@]}" -np "$w" --mca btl vader,self "$BIN/mpi_allreduce" --label mpi-sm --sizes 4K,64M,256M 2>/dev/null | awk -F, 'NR>1 {print $1 "," $2 "," $3 "," $5 "," $9}'
  done
done
