#!/usr/bin/env python3
"""ringbench's Gloo peer: one rank of the same sweep ringbench runs, with torch.distributed (Gloo).

ringbench starts W copies (--rank 0..W-1) and reads rank 0's stdout. Method as ringbench's own
ranks: per size, warm-up, a barrier, timed back-to-back iterations (each rank times each
iteration itself), then separate untimed correctness runs, then an all-gather of every rank's
times. Rank 0 prints one line per size:
  RINGBENCH {"t": "row", "bytes", "count", "times_us" (per iteration, max over ranks), "wrong",
             "rss_peak_MiB" [per rank], "rss_base_MiB" [per rank]}
or {"t": "row", "bytes", "count", "error"} when Gloo cannot run that case.
The test data are the formulas of bench/src/pattern.ts (small integers, exact in every dtype).
"""
import argparse
import json
import os
import resource
import sys
import time

PERIOD = 7


def input_value(op, r, n, i):
    k = (i + r) % PERIOD
    if op == "prod":
        return 2 if k == 0 else 1
    if op == "mean":
        return 1 + (i % PERIOD) + (r if r < n - 1 else -((n - 1) * (n - 2)) // 2)
    return 1 + k


def reduced_value(op, n, i):
    if op == "mean":
        return 1 + (i % PERIOD)
    vals = [input_value(op, r, n, i) for r in range(n)]
    if op == "sum":
        return sum(vals)
    if op == "prod":
        out = 1
        for v in vals:
            out *= v
        return out
    return min(vals) if op == "min" else max(vals)


def expected_output(coll, op, n, root, i, per_rank):
    if coll in ("allreduce", "reducescatter"):
        return reduced_value(op, n, i)
    if coll == "broadcast":
        return input_value("sum", root, n, i)
    return input_value("sum", i // per_rank, n, i)


MEAN_TOL = {"float64": 1e-12, "float32": 1e-6, "float16": 2e-3, "bfloat16": 1.6e-2}


def rss_now_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--addr", default="127.0.0.1", help="rank 0's address (the TCP store's)")
    ap.add_argument("--config", required=True, help="JSON: collective, sizes, iters, warmup, checks, dtype, op, root")
    a = ap.parse_args()
    cfg = json.loads(a.config)

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # one core per rank, like ringwire's ranks
    dist.init_process_group("gloo", init_method="tcp://%s:%d" % (a.addr, a.port), rank=a.rank, world_size=a.world)
    rank, n = a.rank, a.world
    coll, op, root = cfg["collective"], cfg["op"], cfg["root"]
    dtype = getattr(torch, cfg["dtype"])
    elem = torch.tensor([], dtype=dtype).element_size()
    reduce_op = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT,
                 "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op]
    base_rss = rss_now_mib()

    def emit(obj):
        if rank == 0:
            sys.stdout.write("RINGBENCH " + json.dumps(obj) + "\n")
            sys.stdout.flush()

    def tiled(values, count):
        # The pattern repeats every 7 elements: build 7 values and tile them.
        base = torch.tensor(values, dtype=torch.float64).to(dtype)
        reps = -(-count // PERIOD)
        return base.repeat(reps)[:count].clone()

    def count_wrong(out, offset, want_at):
        want = tiled([want_at(offset + k) for k in range(PERIOD)], out.numel())
        if op == "mean" and cfg["dtype"] in MEAN_TOL:
            got, exp = out.double(), want.double()
            bad = ~((got - exp).abs() <= MEAN_TOL[cfg["dtype"]] * exp.abs().clamp(min=1))
            return int(bad.sum())
        return int((out != want).sum())

    emit({"t": "start", "np": n, "torch": torch.__version__})
    for nbytes in cfg["sizes"]:
        count = nbytes // elem
        per = count // n
        x = torch.zeros(per if coll == "allgather" else count, dtype=dtype)
        outs = [torch.empty(per, dtype=dtype) for _ in range(n)] if coll == "allgather" else None
        rs_in = list(x.split(per)) if coll == "reducescatter" else None
        rs_out = torch.empty(per, dtype=dtype) if coll == "reducescatter" else None

        def step():
            if coll == "allreduce":
                dist.all_reduce(x, op=reduce_op)
                if op == "mean":
                    x.div_(n)
            elif coll == "broadcast":
                dist.broadcast(x, src=root)
            elif coll == "allgather":
                dist.all_gather(outs, x)
            else:
                dist.reduce_scatter(rs_out, rs_in, op=reduce_op)
                if op == "mean":
                    rs_out.div_(n)

        try:
            for _ in range(cfg["warmup"]):
                step()
        except (RuntimeError, ValueError) as e:  # e.g. no reduce_scatter or no bfloat16 in this Gloo
            emit({"t": "row", "bytes": nbytes, "count": count, "error": "Gloo (torch %s): %s" % (torch.__version__, str(e).splitlines()[0])})
            continue
        times = torch.zeros(cfg["iters"], dtype=torch.float64)
        dist.barrier()
        for i in range(cfg["iters"]):
            t0 = time.perf_counter()
            step()
            times[i] = (time.perf_counter() - t0) * 1e6
        # Peak memory of the timed runs, before the checks' own temporaries.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        wrong = 0
        for _ in range(cfg["checks"]):
            if coll == "allreduce":
                x.copy_(tiled([input_value(op, rank, n, k) for k in range(PERIOD)], count))
                step()
                outputs, offsets = [x], [0]
            elif coll == "broadcast":
                if rank == root:
                    x.copy_(tiled([input_value("sum", rank, n, k) for k in range(PERIOD)], count))
                else:
                    x.zero_()
                step()
                outputs, offsets = [x], [0]
            elif coll == "allgather":
                x.copy_(tiled([input_value("sum", rank, n, rank * per + k) for k in range(PERIOD)], per))
                step()
                outputs, offsets = outs, [r * per for r in range(n)]
            else:
                x.copy_(tiled([input_value(op, rank, n, k) for k in range(PERIOD)], count))
                step()
                outputs, offsets = [rs_out], [rank * per]
            if os.environ.get("RINGBENCH_CORRUPT_RANK") == str(rank):
                outputs[0].view(-1)[0] += 1
            for o, off in zip(outputs, offsets):
                wrong += count_wrong(o, off, lambda i: expected_output(coll, op, n, root, i, per))

        mine = torch.cat([torch.tensor([wrong, peak, base_rss], dtype=torch.float64), times])
        every = [torch.empty_like(mine) for _ in range(n)]
        dist.all_gather(every, mine)
        if rank == 0:
            stack = torch.stack(every)
            emit({"t": "row", "bytes": nbytes, "count": count, "times_us": stack[:, 3:].max(dim=0).values.tolist(),
                  "wrong": int(stack[:, 0].sum()), "rss_peak_MiB": stack[:, 1].tolist(), "rss_base_MiB": stack[:, 2].tolist()})
        del x, outs, rs_in, rs_out
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
