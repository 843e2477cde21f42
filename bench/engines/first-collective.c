/* The same as first-collective.mjs for a plain MPI program: MPI_Init, one MPI_Allreduce of one
 * float, then the milliseconds since $T0. Build: mpicc -O2 -o /tmp/first-collective first-collective.c */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  float x = 1, y;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Allreduce(&x, &y, 1, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  struct timeval tv;
  gettimeofday(&tv, NULL);
  long long now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
  printf("first-collective rank %d %lld\n", rank, now - atoll(getenv("T0")));
  MPI_Finalize();
  return 0;
}
