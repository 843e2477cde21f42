/*
 * ringbench's Open MPI peer: the same sweep ringbench runs, with MPI collectives.
 *
 *   mpicc -O2 -o mpi_bench mpi_bench.c      (ringbench compare does this into a cache folder)
 *   mpirun -np N ./mpi_bench COLLECTIVE DTYPE OP ROOT ITERS WARMUP CHECKS SIZE[,SIZE...]
 *
 * COLLECTIVE: allreduce (MPI_IN_PLACE) | broadcast | allgather | reducescatter
 * (MPI_Reduce_scatter_block); DTYPE: float32 float64 int32 uint8; OP: sum prod min max mean
 * (mean = MPI_SUM, then a division, timed). Method as ringbench's own ranks: per size, warm-up,
 * a barrier, timed back-to-back iterations (each rank times each iteration with MPI_Wtime),
 * separate untimed correctness runs, then the per-rank figures are gathered on rank 0, which
 * prints one line per size:
 *   RINGBENCH {"t":"row","bytes":B,"count":C,"times_us":[max over ranks per iteration],
 *              "wrong":W,"rss_peak_MiB":[per rank],"rss_base_MiB":[per rank]}
 * The test data are the formulas of bench/src/pattern.ts (small integers, exact in every type).
 */
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define PERIOD 7
enum { F32, F64, I32, U8 };
enum { SUM, PROD, MIN, MAX, MEAN };
enum { ALLREDUCE, BROADCAST, ALLGATHER, REDUCESCATTER };

static int dt, op, coll, rank, n, root;
static size_t esz;
static MPI_Datatype mdt;
static MPI_Op mop;

static int pick(const char *s, const char *const *names, int count, const char *what) {
    for (int i = 0; i < count; i++)
        if (!strcmp(s, names[i])) return i;
    if (rank == 0) fprintf(stderr, "mpi_bench: unsupported %s: %s\n", what, s);
    MPI_Abort(MPI_COMM_WORLD, 2);
    return -1;
}

static double get(const void *b, size_t i) {
    switch (dt) {
        case F32: return ((const float *)b)[i];
        case F64: return ((const double *)b)[i];
        case I32: return ((const int *)b)[i];
        default: return ((const unsigned char *)b)[i];
    }
}

static void put(void *b, size_t i, double v) {
    switch (dt) {
        case F32: ((float *)b)[i] = (float)v; break;
        case F64: ((double *)b)[i] = v; break;
        case I32: ((int *)b)[i] = (int)v; break;
        default: ((unsigned char *)b)[i] = (unsigned char)v;
    }
}

static double input_value(int o, int r, long long i) {
    int k = (int)((i + r) % PERIOD);
    if (o == PROD) return k == 0 ? 2 : 1;
    if (o == MEAN) return 1 + (double)(i % PERIOD) + (r < n - 1 ? r : -((n - 1) * (n - 2)) / 2);
    return 1 + k;
}

static double reduced_value(long long i) {
    if (op == MEAN) return 1 + (double)(i % PERIOD);
    double acc = input_value(op, 0, i);
    for (int r = 1; r < n; r++) {
        double v = input_value(op, r, i);
        acc = op == SUM ? acc + v : op == PROD ? acc * v : op == MIN ? fmin(acc, v) : fmax(acc, v);
    }
    return acc;
}

static double expected_output(long long i, long long per) {
    if (coll == ALLREDUCE || coll == REDUCESCATTER) return reduced_value(i);
    if (coll == BROADCAST) return input_value(SUM, root, i);
    return input_value(SUM, (int)(i / per), i);
}

/* Rank r's input for global elements offset..offset+count: 7 values, then doubling copies. */
static void fill(void *b, size_t count, int o, int r, long long offset) {
    size_t m = count < PERIOD ? count : PERIOD;
    for (size_t j = 0; j < m; j++) put(b, j, input_value(o, r, offset + (long long)j));
    for (size_t len = m; len < count; len *= 2)
        memcpy((char *)b + len * esz, b, (len < count - len ? len : count - len) * esz);
}

static long long count_wrong(const void *b, size_t count, long long offset, long long per) {
    double want[PERIOD];
    for (int k = 0; k < PERIOD; k++) want[k] = expected_output(offset + k, per);
    double tol = op == MEAN ? (dt == F64 ? 1e-12 : 1e-6) : 0;
    long long wrong = 0;
    for (size_t i = 0, k = 0; i < count; i++, k = k == PERIOD - 1 ? 0 : k + 1) {
        double got = get(b, i), w = want[k];
        if (!(fabs(got - w) <= tol * (fabs(w) > 1 ? fabs(w) : 1))) wrong++;
    }
    return wrong;
}

static void scale(void *b, size_t count) {
    if (dt == F32) for (size_t i = 0; i < count; i++) ((float *)b)[i] /= (float)n;
    else if (dt == F64) for (size_t i = 0; i < count; i++) ((double *)b)[i] /= n;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static double rss_now_mib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * sysconf(_SC_PAGESIZE) / 1048576.0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (argc != 9) {
        if (rank == 0) fprintf(stderr, "usage: mpi_bench COLLECTIVE DTYPE OP ROOT ITERS WARMUP CHECKS SIZES\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    static const char *const colls[] = {"allreduce", "broadcast", "allgather", "reducescatter"};
    static const char *const dts[] = {"float32", "float64", "int32", "uint8"};
    static const char *const ops[] = {"sum", "prod", "min", "max", "mean"};
    coll = pick(argv[1], colls, 4, "collective");
    dt = pick(argv[2], dts, 4, "dtype (Open MPI has no float16/bfloat16 type)");
    op = pick(argv[3], ops, 5, "op");
    root = atoi(argv[4]);
    int iters = atoi(argv[5]), warmup = atoi(argv[6]), checks = atoi(argv[7]);
    const MPI_Datatype mdts[] = {MPI_FLOAT, MPI_DOUBLE, MPI_INT32_T, MPI_UINT8_T};
    const size_t eszs[] = {4, 8, 4, 1};
    const MPI_Op mops[] = {MPI_SUM, MPI_PROD, MPI_MIN, MPI_MAX, MPI_SUM};
    mdt = mdts[dt];
    esz = eszs[dt];
    mop = mops[op];
    const char *corrupt = getenv("RINGBENCH_CORRUPT_RANK");
    double base_rss = rss_now_mib();

    char *sizes = strdup(argv[8]), *save = NULL;
    for (char *tok = strtok_r(sizes, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long long bytes = atoll(tok), count = bytes / (long long)esz, per = count / n;
        if (coll == ALLGATHER || coll == REDUCESCATTER) count = per * n; /* ringbench sends multiples of n */
        if (count > INT_MAX) {
            if (rank == 0) printf("RINGBENCH {\"t\":\"row\",\"bytes\":%lld,\"count\":%lld,\"error\":\"more than INT_MAX elements\"}\n", bytes, count), fflush(stdout);
            continue;
        }
        size_t xcount = coll == ALLGATHER ? (size_t)per : (size_t)count;
        size_t ocount = coll == ALLGATHER ? (size_t)count : coll == REDUCESCATTER ? (size_t)per : 0;
        char *x = calloc(xcount ? xcount : 1, esz), *out = ocount ? calloc(ocount, esz) : NULL;
        double *stats = calloc(3 + (size_t)iters, sizeof(double)), *all = NULL;
        if (!x || (ocount && !out) || !stats) {
            fprintf(stderr, "mpi_bench: rank %d: out of memory at %lld bytes\n", rank, bytes);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        for (int it = -warmup; it < iters + checks; it++) {
            int check = it >= iters;
            if (it == 0) MPI_Barrier(MPI_COMM_WORLD);
            if (it == iters) stats[1] = peak_rss_mib(); /* the timed runs' peak, before the checks */
            if (check) { /* untimed: fill with the test pattern */
                if (coll == BROADCAST) {
                    if (rank == root) fill(x, xcount, SUM, rank, 0);
                    else memset(x, 0, xcount * esz);
                } else {
                    fill(x, xcount, coll == ALLGATHER ? SUM : op, rank, coll == ALLGATHER ? rank * per : 0);
                }
            }
            double t0 = MPI_Wtime();
            switch (coll) {
                case ALLREDUCE:
                    MPI_Allreduce(MPI_IN_PLACE, x, (int)count, mdt, mop, MPI_COMM_WORLD);
                    if (op == MEAN) scale(x, xcount);
                    break;
                case BROADCAST: MPI_Bcast(x, (int)count, mdt, root, MPI_COMM_WORLD); break;
                case ALLGATHER: MPI_Allgather(x, (int)per, mdt, out, (int)per, mdt, MPI_COMM_WORLD); break;
                default:
                    MPI_Reduce_scatter_block(x, out, (int)per, mdt, mop, MPI_COMM_WORLD);
                    if (op == MEAN) scale(out, ocount);
            }
            double t1 = MPI_Wtime();
            if (it >= 0 && !check) stats[3 + it] = (t1 - t0) * 1e6;
            if (check) {
                char *res = coll == ALLREDUCE || coll == BROADCAST ? x : out;
                size_t rcount = coll == ALLREDUCE || coll == BROADCAST ? xcount : ocount;
                if (corrupt && atoi(corrupt) == rank) res[esz - 1] ^= 0x40;
                if (coll == ALLGATHER) /* the pattern is periodic within each rank's segment only */
                    for (int r = 0; r < n; r++) stats[0] += (double)count_wrong(res + (size_t)(r * per) * esz, (size_t)per, r * per, per);
                else
                    stats[0] += (double)count_wrong(res, rcount, coll == REDUCESCATTER ? rank * per : 0, per);
            }
        }
        if (checks == 0) stats[1] = peak_rss_mib();
        stats[2] = base_rss;
        int w = 3 + iters;
        if (rank == 0) all = malloc((size_t)n * w * sizeof(double));
        MPI_Gather(stats, w, MPI_DOUBLE, all, w, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (rank == 0) {
            double wrong = 0;
            for (int r = 0; r < n; r++) wrong += all[r * w];
            printf("RINGBENCH {\"t\":\"row\",\"bytes\":%lld,\"count\":%lld,\"wrong\":%.0f,\"times_us\":[", bytes, count, wrong);
            for (int i = 0; i < iters; i++) {
                double m = 0;
                for (int r = 0; r < n; r++) m = fmax(m, all[r * w + 3 + i]);
                printf("%s%.3f", i ? "," : "", m);
            }
            printf("],\"rss_peak_MiB\":[");
            for (int r = 0; r < n; r++) printf("%s%.1f", r ? "," : "", all[r * w + 1]);
            printf("],\"rss_base_MiB\":[");
            for (int r = 0; r < n; r++) printf("%s%.1f", r ? "," : "", all[r * w + 2]);
            printf("]}\n");
            fflush(stdout);
            free(all);
        }
        free(x);
        free(out);
        free(stats);
    }
    free(sizes);
    MPI_Finalize();
    return 0;
}
