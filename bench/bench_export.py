#!/usr/bin/python3
"""PIT export benchmark: `freshet export pit` (the C CLI) against pandas merge_asof, same data, same run.

    /usr/bin/python3 bench/bench_export.py --entities 200000 --versions 10 --labels 1000000,5000000

1. Starts a Release freshetd (--build-dir, default build/release) on an ephemeral port with its data
   in a temporary directory (async durability: the load is not what is measured), applies two views
   (`v1`, `v2`) of one entity (`user_id`) with 20 double features each and a ttl, and loads
   --entities entities x ~--versions versions per view (event times over --span-days) through the
   Python client.
2. For every label count in --labels: writes a labels CSV (user_id, event_timestamp in µs, label),
   runs `freshet export pit --features v1,v2 --format csv` (output to /dev/null, or --output-dir)
   under /usr/bin/time -v, and records wall time, rows/s, the CLI's peak RSS and the server's peak
   anonymous memory (VmHWM/RssAnon from /proc, i.e. not counting the LMDB map's file pages).
3. Runs pandas merge_asof(direction="backward", tolerance=ttl, allow_exact_matches=True) per view on
   the same data and labels in a subprocess (so its peak RSS is its own): time of the joins alone
   and peak RSS (ru_maxrss) before and after.
4. With --python N: times the Python client's export_pit (labels DataFrame → DataFrame) on N
   labels against the same store, once per --python-connections value (default 2).
5. Spot-checks correctness: exports --check-labels labels to a file with the CLI and compares every
   value with merge_asof's.

Prints one JSON object per line (phase "load", "export", "pandas", "python_export", "check"). Never run by tests.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

SEC = 1_000_000
DAY = 86400 * SEC


def emit(obj):
    obj["loadavg_1m"] = round(os.getloadavg()[0], 2)  # this machine is shared: note contention
    print(json.dumps(obj), flush=True)


def proc_cpu_s(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0])  # kB
    except OSError:
        pass
    return out


def reset_hwm(pid):
    """Resets the kernel's peak RSS counter of pid (VmHWM), so each export gets its own peak."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---- data (deterministic from the seed, so the pandas worker can regenerate it) ----

def gen_view(seed, view_no, entities, versions, t0, span, nfeat):
    rng = np.random.default_rng([seed, view_no])
    counts = rng.integers(max(1, versions // 2), versions + versions // 2 + 1, entities)
    ent = np.repeat(np.arange(entities, dtype=np.int64), counts)
    ts = t0 + rng.integers(0, span, len(ent))
    vals = rng.random((len(ent), nfeat)).round(6)
    return ent, ts, vals


def gen_labels(seed, n, entities, t0, span, ttl):
    rng = np.random.default_rng([seed, 99, n])
    ent = rng.integers(0, entities, n)
    ts = t0 + rng.integers(0, span + ttl, n)
    return ent, ts


def write_labels_csv(path, ent, ts):
    df = pd.DataFrame({"user_id": ent, "event_timestamp": ts, "label": ts % 2})
    df.to_csv(path, index=False)


# ---- the pandas side (a subprocess) ----

def pandas_worker(a):
    t_start = time.monotonic()
    views = []
    for v in (1, 2):
        ent, ts, vals = gen_view(a.seed, v, a.entities, a.versions, a.t0, a.span, a.features)
        df = pd.DataFrame(vals, columns=[f"v{v}:f{k}" for k in range(a.features)])
        df.insert(0, "event_ts", ts)
        df.insert(0, "user_id", ent)
        views.append(df.sort_values("event_ts", kind="stable"))
    lent, lts = gen_labels(a.seed, a.worker_labels, a.entities, a.t0, a.span, a.ttl)
    labels = pd.DataFrame({"user_id": lent, "event_timestamp": lts, "label": lts % 2})
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_load = time.monotonic() - t_start
    t0 = time.monotonic()
    out = labels.reset_index().sort_values("event_timestamp", kind="stable")
    for df in views:
        out = pd.merge_asof(out, df, left_on="event_timestamp", right_on="event_ts", by="user_id",
                            direction="backward", tolerance=a.ttl, allow_exact_matches=True)
        out = out.drop(columns="event_ts")
    out = out.sort_values("index").drop(columns="index").reset_index(drop=True)
    t_join = time.monotonic() - t0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = {"phase": "pandas", "labels": a.worker_labels, "join_s": round(t_join, 3),
           "rows_per_s": round(a.worker_labels / t_join), "load_s": round(t_load, 3),
           "peak_rss_mb": round(rss_peak / 1024, 1),
           "rss_after_data_mb": round(rss_loaded / 1024, 1),
           "join_extra_rss_mb": round((rss_peak - rss_loaded) / 1024, 1)}
    if a.compare:
        got = pd.read_csv(a.compare)
        cols = [c for c in out.columns if c.startswith("v")]
        exp = out[cols].to_numpy()
        have = got[cols].to_numpy(dtype=np.float64)
        same = (exp == have) | (np.isnan(exp) & np.isnan(have))
        res = {"phase": "check", "labels": a.worker_labels, "values": int(same.size),
               "mismatches": int((~same).sum()),
               "present": int((~np.isnan(exp)).sum()),
               "rows_equal": bool((got["user_id"].to_numpy() == labels["user_id"].to_numpy()).all())}
    emit(res)


# ---- the main run ----

def start_server(build, data, map_mb, max_entities=10000):
    p = subprocess.Popen([os.path.join(build, "freshetd"), "--data", data, "--listen",
                          "127.0.0.1:0", "--durability", "async", "--map-size-mb", str(map_mb),
                          "--max-entities", str(max_entities), "--log-level", "warn"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    if not line.startswith("listening "):
        p.kill()
        raise SystemExit(f"freshetd did not start: {line!r}")
    return p, line.split()[1]


def time_cli(cli, addr, labels_csv, out, fmt, nfeat, connections=2, chunk=10000):
    # explicit view:feature names: with bare view names the CLI's CSV header lists the views,
    # not their features (reported bug), which would break the correctness check
    features = ",".join(f"v{v}:f{k}" for v in (1, 2) for k in range(nfeat))
    cmd = [cli, "--server", addr, "export", "pit", "--labels", labels_csv, "--features", features,
           "--format", fmt, "--connections", str(connections), "--chunk", str(chunk)]
    if out:
        cmd += ["-o", out]
    timev = os.path.exists("/usr/bin/time")
    if timev:
        cmd = ["/usr/bin/time", "-v"] + cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    with open(os.devnull, "wb") as devnull:
        p = subprocess.run(cmd, stdout=devnull, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"export failed ({p.returncode}): {p.stderr[-2000:]}")
    peak_kb = None
    summary = ""
    cpu_s = 0.0
    for line in p.stderr.splitlines():
        if "Maximum resident set size" in line:
            peak_kb = int(line.split(":")[1])
        if "User time (seconds)" in line or "System time (seconds)" in line:
            cpu_s += float(line.split(":")[1])
        if line.startswith("export pit"):
            summary = line
    if peak_kb is None:  # no /usr/bin/time: the largest child so far (an upper bound)
        peak_kb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return wall, peak_kb, summary, (cpu_s if timev else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--versions", type=int, default=10, help="mean versions per entity and view")
    ap.add_argument("--features", type=int, default=20, help="double features per view")
    ap.add_argument("--labels", default="1000000,5000000", help="comma-separated label counts")
    ap.add_argument("--span-days", type=float, default=10.0)
    ap.add_argument("--ttl-days", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--format", default="csv", choices=["csv", "jsonl", "msgpack"])
    ap.add_argument("--connections", type=int, default=2, help="freshet export pit --connections")
    ap.add_argument("--chunk", default="10000",
                    help="comma-separated freshet export pit --chunk values, each timed in turn "
                         "(freshetd's max_entities is raised to the largest)")
    ap.add_argument("--output-dir", help="write export files here instead of /dev/null")
    ap.add_argument("--check-labels", type=int, default=20000, help="0: skip the correctness check")
    ap.add_argument("--no-pandas", action="store_true")
    ap.add_argument("--python", type=int, default=0,
                    help="also time the Python client's export_pit on this many labels")
    ap.add_argument("--python-connections", default="2",
                    help="comma-separated export_pit(connections=...) values, run in this order")
    ap.add_argument("--workdir", help="keep data here (default: a temporary directory, removed)")
    # internal: the pandas subprocess
    ap.add_argument("--pandas-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-labels", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--compare", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.span = int(a.span_days * DAY)
    a.ttl = int(a.ttl_days * DAY)
    if a.pandas_worker:
        return pandas_worker(a)

    import freshet
    build = os.path.abspath(a.build_dir)
    work = a.workdir or tempfile.mkdtemp(prefix="freshet-bench-")
    os.makedirs(work, exist_ok=True)
    rows_est = 2 * a.entities * a.versions
    map_mb = max(1024, int(rows_est * (a.features * 9 + 80) * 2.5 / 2 ** 20))
    chunks = [int(x) for x in a.chunk.split(",") if x]
    server, addr = start_server(build, os.path.join(work, "data"), map_mb, max(chunks))
    try:
        c = freshet.Client.from_addr(addr, timeout=600)
        now = c.status()["server_time_us"]
        a.t0 = (now - int(a.span_days * DAY) - DAY) // SEC * SEC
        if a.workdir:  # what a later run against the kept store needs to make matching labels
            with open(os.path.join(work, "bench_export.json"), "w") as f:
                json.dump({"t0": a.t0, "address": addr, **{k: getattr(a, k) for k in
                           ("entities", "versions", "features", "seed", "span", "ttl")}}, f)
        feats = [{"name": f"f{k}", "type": "double"} for k in range(a.features)]
        c.apply({"entities": [{"name": "user", "join_key": "user_id"}],
                 "views": [{"name": f"v{v}", "entity": "user", "ttl": int(a.ttl_days * 86400),
                            "retention": 0, "features": feats} for v in (1, 2)]})
        t0 = time.monotonic()
        total = 0
        for v in (1, 2):
            ent, ts, vals = gen_view(a.seed, v, a.entities, a.versions, a.t0, a.span, a.features)
            step = 100_000
            for i in range(0, len(ent), step):
                df = pd.DataFrame(vals[i:i + step], columns=[f"f{k}" for k in range(a.features)])
                df.insert(0, "event_timestamp", ts[i:i + step])
                df.insert(0, "user_id", ent[i:i + step])
                r = c.put(f"v{v}", df)
                total += r["rows_written"] + r["unchanged"]
            del ent, ts, vals
        load_s = time.monotonic() - t0
        st = c.status()
        emit({"phase": "load", "entities": a.entities, "versions_mean": a.versions,
              "views": 2, "features_per_view": a.features, "rows": total,
              "seconds": round(load_s, 1), "rows_per_s": round(total / load_s),
              "map_used_mb": round(st["map_used"] / 2 ** 20, 1),
              "server": proc_status(server.pid)})
        c.close()
        cli = os.path.join(build, "freshet")
        counts = [int(x) for x in a.labels.split(",") if x]
        for n in counts:
            lab = os.path.join(work, f"labels_{n}.csv")
            write_labels_csv(lab, *gen_labels(a.seed, n, a.entities, a.t0, a.span, a.ttl))
            out = os.path.join(a.output_dir, f"export_{n}.{a.format}") if a.output_dir else None
            for chunk in chunks:
                hwm_reset = reset_hwm(server.pid)
                before = proc_status(server.pid)
                scpu0 = proc_cpu_s(server.pid)
                wall, peak_kb, summary, cli_cpu = time_cli(cli, addr, lab, out, a.format,
                                                           a.features, a.connections, chunk)
                scpu1 = proc_cpu_s(server.pid)
                after = proc_status(server.pid)
                # CPU per label on each side: what bounds rows/s on a machine with few cores
                cpu = {"server_cpu_us_per_label": round((scpu1 - scpu0) * 1e6 / n, 2)
                       if scpu0 is not None and scpu1 is not None else None,
                       "cli_cpu_us_per_label": round(cli_cpu * 1e6 / n, 2) if cli_cpu is not None
                       else None}
                emit({"phase": "export", "labels": n, "seconds": round(wall, 3),
                      "rows_per_s": round(n / wall), "cli_peak_rss_mb": round(peak_kb / 1024, 1),
                      "server_rss_anon_mb_before": round(before.get("RssAnon", 0) / 1024, 1),
                      "server_rss_anon_mb_after": round(after.get("RssAnon", 0) / 1024, 1),
                      "server_peak_rss_mb": round(after.get("VmHWM", 0) / 1024, 1),
                      "server_peak_reset": hwm_reset, "format": a.format, "connections": a.connections,
                      "chunk": chunk,
                      "labels_csv_mb": round(os.path.getsize(lab) / 2 ** 20, 1),
                      **cpu, "cli_summary": summary})
            if not a.no_pandas:
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--pandas-worker",
                                    "--worker-labels", str(n), "--t0", str(a.t0),
                                    "--entities", str(a.entities), "--versions", str(a.versions),
                                    "--features", str(a.features), "--span-days", str(a.span_days),
                                    "--ttl-days", str(a.ttl_days), "--seed", str(a.seed)],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    emit({"phase": "pandas", "labels": n, "error": p.stderr[-2000:]})
                else:
                    print(p.stdout.strip().splitlines()[-1], flush=True)
            if not a.workdir:  # with --workdir the labels stay beside the data for later runs
                os.unlink(lab)
        if a.python:
            # the Python client's export_pit into a DataFrame, same store, same kind of labels
            n = a.python
            ent, ts = gen_labels(a.seed, n, a.entities, a.t0, a.span, a.ttl)
            labels = pd.DataFrame({"user_id": ent, "event_timestamp": ts, "label": ts % 2})
            for conns in [int(x) for x in a.python_connections.split(",")]:
                c = freshet.Client.from_addr(addr, timeout=600)
                t0 = time.monotonic()
                df = c.export_pit(labels, ["v1", "v2"], connections=conns)
                wall = time.monotonic() - t0
                c.close()
                emit({"phase": "python_export", "labels": n, "connections": conns,
                      "seconds": round(wall, 3), "rows_per_s": round(n / wall),
                      "columns": df.shape[1], "statuses": df.attrs["statuses"]})
                del df
            del labels
        if a.check_labels:
            n = a.check_labels
            lab = os.path.join(work, f"labels_{n}.csv")
            out = os.path.join(work, f"check_{n}.csv")
            write_labels_csv(lab, *gen_labels(a.seed, n, a.entities, a.t0, a.span, a.ttl))
            time_cli(cli, addr, lab, out, "csv", a.features)
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--pandas-worker",
                                "--worker-labels", str(n), "--t0", str(a.t0),
                                "--entities", str(a.entities), "--versions", str(a.versions),
                                "--features", str(a.features), "--span-days", str(a.span_days),
                                "--ttl-days", str(a.ttl_days), "--seed", str(a.seed),
                                "--compare", out], capture_output=True, text=True)
            print(p.stdout.strip().splitlines()[-1] if p.returncode == 0 else
                  json.dumps({"phase": "check", "error": p.stderr[-2000:]}), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
