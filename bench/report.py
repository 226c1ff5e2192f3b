#!/usr/bin/env python3
"""Aggregates bench/run.sh measurements (one JSON line per measurement) into
bench/results/latest.json and prints a table: medians over the reps, min..max spread, ratios to
Redis and the DESIGN.md targets (met or missed)."""
import argparse, datetime, json, os, platform, statistics, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("results")
ap.add_argument("out")
ap.add_argument("--entities", type=int)
ap.add_argument("--reps", type=int)
ap.add_argument("--secs", type=float)
ap.add_argument("--quick", type=int)
ap.add_argument("--threads", type=int)
ap.add_argument("--command")
a = ap.parse_args()

lines = [json.loads(l) for l in open(a.results) if l.strip()]


def flat(m, prefix=""):
    out = {}
    for k, v in m.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix + k] = v
        else:
            out[prefix + k] = v
    return out


groups = {}
order = []
for l in lines:
    key = (l["workload"], l["side"])
    if key not in groups:
        groups[key] = []
        order.append(key)
    m = flat(l["m"])
    if l["workload"] == "mixed_4r1w":  # headline numbers: readers while the writer runs
        for k in list(m):
            if k.startswith("with_writer."):
                m[k[len("with_writer."):]] = m[k]
            if k.startswith("read_only."):
                m["read_only_" + k[len("read_only."):]] = m[k]
        m = {k: v for k, v in m.items() if not k.startswith(("with_writer.", "read_only."))}
    groups[key].append((l, m))

workloads = {}
for key in order:
    wl, side = key
    runs = groups[key]
    keys = [k for k in runs[0][1]]
    obj = {}
    spread = {}
    for k in keys:
        vals = [m[k] for _, m in runs if k in m]
        if all(isinstance(v, (int, float)) for v in vals):
            med = statistics.median(vals)
            obj[k] = round(med, 1) if isinstance(med, float) else med
            if len(vals) > 1:
                spread[k] = [min(vals), max(vals)]
        else:
            obj[k] = vals[0]
    if "read_only_p99_us" in obj and obj.get("p99_us"):
        ratios = [m["p99_us"] / m["read_only_p99_us"] for _, m in runs if m.get("read_only_p99_us")]
        obj["p99_vs_read_only"] = round(statistics.median(ratios), 2)
    obj["runs"] = len(runs)
    obj["persistence"] = runs[0][0]["persistence"]
    if spread:
        obj["spread"] = spread
    workloads.setdefault(wl, {})[side] = obj


def get(wl, side, k):
    return workloads.get(wl, {}).get(side, {}).get(k)


def cpu_model():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def redis_version():
    try:
        return subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


targets = []


def target(name, ok, detail):
    if ok is None:
        targets.append({"target": name, "met": None, "detail": "not measured"})
    else:
        targets.append({"target": name, "met": bool(ok), "detail": detail})


def fmt(x, nd=0):
    return "-" if x is None else (f"{x:,.{nd}f}" if isinstance(x, (int, float)) else str(x))


fb = workloads.get("batch100x50_1c", {})
f50, f99 = get("batch100x50_1c", "freshet", "p50_us"), get("batch100x50_1c", "freshet", "p99_us")
r50, r99 = get("batch100x50_1c", "redis_blob", "p50_us"), get("batch100x50_1c", "redis_blob", "p99_us")
if None not in (f50, f99, r50, r99):
    target("batch100x50_1c: p50 and p99 <= Redis MGET's, p99 <= 400 us",
           f50 <= r50 and f99 <= r99 and f99 <= 400,
           f"p50 {f50:.0f} vs {r50:.0f} us (x{f50 / r50:.2f}), p99 {f99:.0f} vs {r99:.0f} us (x{f99 / r99:.2f})")
fr = get("batch100x50_4c", "freshet", "rows_per_s")
rb = max([x for x in (get("batch100x50_4c", "redis_blob", "rows_per_s"), get("batch100x50_4c", "redis_hash", "rows_per_s")) if x] or [0])
if fr and rb:
    target("batch100x50_4c: rows/s >= 1.3x Redis best layout", fr >= 1.3 * rb, f"{fr:,.0f} vs {rb:,.0f} rows/s (x{fr / rb:.2f})")
s50, s99, fl50 = get("single_1c", "freshet", "p50_us"), get("single_1c", "freshet", "p99_us"), get("floor_small_1c", "echo", "p50_us")
if None not in (s50, s99, fl50):
    target("single_1c: p50 <= 1.5x floor p50, p99 <= 200 us", s50 <= 1.5 * fl50 and s99 <= 200,
           f"p50 {s50:.0f} vs floor {fl50:.0f} us (x{s50 / fl50:.2f}), p99 {s99:.0f} us")
fi = get("ingest_sync", "freshet", "rows_per_s")
ri = max([x for x in (get("ingest_sync", "redis_blob", "rows_per_s"), get("ingest_sync", "redis_hash", "rows_per_s")) if x] or [0])
if fi:
    target("ingest_sync: >= 200k rows/s and >= Redis appendfsync always", fi >= 200000 and fi >= ri,
           f"{fi:,.0f} rows/s vs Redis always {ri:,.0f} (x{fi / ri if ri else 0:.2f})")
fa, ra = get("ingest_async", "freshet", "rows_per_s"), get("ingest_async", "redis_blob_nopersist", "rows_per_s")
if fa and ra:
    target("ingest_async: >= Redis pipelined SET without persistence", fa >= ra, f"{fa:,.0f} vs {ra:,.0f} rows/s (x{fa / ra:.2f})")
mr = get("mixed_4r1w", "freshet", "p99_vs_read_only")
if mr is not None:
    target("mixed_4r1w: reader p99 with writer <= 1.5x read-only", mr <= 1.5,
           f"p99 {get('mixed_4r1w', 'freshet', 'p99_us'):.0f} vs {get('mixed_4r1w', 'freshet', 'read_only_p99_us'):.0f} us read-only (x{mr:.2f})")
fd, rh = get("footprint", "freshet", "bytes"), get("footprint", "redis_hash", "bytes")
if fd and rh:
    target("footprint: disk latest-only <= Redis hash used_memory", fd <= rh, f"{fd / 1e6:,.1f} MB vs {rh / 1e6:,.1f} MB (x{fd / rh:.2f})")
fc, rbm = get("footprint", "freshet_compacted", "bytes"), get("footprint", "redis_blob", "bytes")
if fc and rbm:
    target("footprint: after a compacting backup <= Redis blob used_memory", fc <= rbm, f"{fc / 1e6:,.1f} MB vs {rbm / 1e6:,.1f} MB (x{fc / rbm:.2f})")

doc = {
    "machine": {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "redis": redis_version(),
        "freshetd_threads": a.threads,
    },
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "command": a.command,
    "config": {"entities": a.entities, "features": 50, "feature_type": "float32", "reps": a.reps,
               "secs_per_measurement": a.secs, "quick": bool(a.quick),
               "transport": "TCP loopback for every side (libfreshet, hiredis, echo)"},
    "workloads": [dict(name=wl, **sides) for wl, sides in workloads.items()],
    "targets": targets,
}
with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)

# ---- table ----
print(f"\nFreshet vs Redis — {a.entities:,} entities x 50 float32, median of {a.reps} runs (min..max), "
      f"{doc['machine']['cpu']}, {doc['machine']['nproc']} cores, {doc['date']}")
hdr = f"{'workload':22} {'side':22} {'p50 us':>9} {'p99 us':>9} {'p999 us':>9} {'rows/s':>11} {'p99 spread':>17} {'rows/s spread':>21}"
print(hdr)
print("-" * len(hdr))
for wl, sides in workloads.items():
    for side, o in sides.items():
        if side == "sizes":
            continue
        if "bytes" in o:
            print(f"{wl:22} {side:22} {'bytes':>9} {fmt(o['bytes']):>31}   ({o.get('entities', '')} entities{', ' + str(o['versions']) + ' versions' if 'versions' in o else ''})")
            continue
        sp = o.get("spread", {})
        p99s = "{}..{}".format(*[fmt(x) for x in sp["p99_us"]]) if "p99_us" in sp else ""
        rs = "{}..{}".format(*[fmt(x) for x in sp["rows_per_s"]]) if "rows_per_s" in sp else ""
        print(f"{wl:22} {side:22} {fmt(o.get('p50_us')):>9} {fmt(o.get('p99_us')):>9} {fmt(o.get('p999_us')):>9} {fmt(o.get('rows_per_s')):>11} {p99s:>17} {rs:>21}")
        if "read_only_p99_us" in o:
            print(f"{'':22} {'  (read-only phase)':22} {fmt(o.get('read_only_p50_us')):>9} {fmt(o.get('read_only_p99_us')):>9} {fmt(o.get('read_only_p999_us')):>9} {fmt(o.get('read_only_rows_per_s')):>11}   writer {fmt(o.get('writer_rows_per_s'))} rows/s")
print("\nRatios (freshet / redis; latency: lower is better, rows/s: higher is better)")
for wl, sides in workloads.items():
    f = sides.get("freshet")
    if not f:
        continue
    parts = []
    for side, o in sides.items():
        if side == "freshet" or side.startswith("freshet") or side == "sizes":
            continue
        for k in ("p50_us", "p99_us", "rows_per_s", "bytes"):
            if f.get(k) and o.get(k):
                parts.append(f"{side} {k.replace('_us', '')} x{f[k] / o[k]:.2f}")
    if parts:
        print(f"  {wl:22} " + ", ".join(parts))
print("\nTargets")
for t in targets:
    print(f"  [{'MET ' if t['met'] else 'MISS' if t['met'] is not None else ' -- '}] {t['target']}: {t['detail']}")
