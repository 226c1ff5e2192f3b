#!/usr/bin/env python3
"""Data generator and checker of the scale-out tests (tests/cluster/faults.sh).

A data set: E accounts, K updates each, all updates of an account at the SAME event time (its own),
published round by round (update k of every account, then k+1). Same-time updates make exactly-once
and order observable: the store keeps every differing update as a version (so a node must end with
exactly K versions per account) and the newest write wins, so the final value must be update K-1;
an update applied twice after a later one would add a version and change the final value.
"""
import argparse, json, subprocess, sys, time

def fnv1a32(b):
    h = 2166136261
    for x in b:
        h = ((h ^ x) * 16777619) & 0xffffffff
    return h

def parts(text, count):
    out = set()
    if not text:
        return set(range(count))
    for el in text.split(','):
        if '-' in el:
            a, b = el.split('-')
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(el))
    return out

def accounts(prefix, n):
    return ["%s%d" % (prefix, e) for e in range(n)]

def row(prefix, e, k, base):
    return {"acct_id": "%s%d" % (prefix, e), "event_timestamp": base + e, "k": k,
            "tag": "%s%d-%d" % (prefix, e, k), "score": e * 1.5 + k}

def cli(bin_, server, *args):
    r = subprocess.run([bin_ + "/freshet", "--server", server] + list(args), capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("freshet %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout

def versions(bin_, server, view):
    for line in cli(bin_, server, "status").splitlines():
        f = line.split()
        if f and f[0] == view:
            return int(f[1])
    return 0

def lags(bin_, server):
    out = {}
    for line in cli(bin_, server, "sources").splitlines()[1:]:
        f = line.split()
        if len(f) == 4 and f[0].startswith("nats:"):
            out[int(f[1])] = f[3]
    return out

def snapshot(bin_, server, view):
    rows = {}
    for line in cli(bin_, server, "export", "snapshot", "--view", view, "--format", "jsonl").splitlines():
        if line.strip():
            d = json.loads(line)
            rows[d["acct_id"]] = d
    return rows

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["gen", "wait", "verify"])
    ap.add_argument("--prefix", default="a")
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--updates", type=int, default=4)
    ap.add_argument("--base", type=int, default=0)
    ap.add_argument("--view", default="t1")
    ap.add_argument("--bin", default="build/release")
    ap.add_argument("--node", action="append", default=[], help="ADDR=PARTITIONS")
    ap.add_argument("--single", help="single-node server holding the same rows")
    ap.add_argument("--pcount", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=90)
    a = ap.parse_args()
    if a.cmd == "gen":
        out = sys.stdout
        for k in range(a.updates):
            for e in range(a.entities):
                out.write(json.dumps(row(a.prefix, e, k, a.base)) + "\n")
        return 0
    nodes = [(x.split("=")[0], parts(x.split("=")[1], a.pcount)) for x in a.node]
    def expected(ps):
        return [x for x in accounts(a.prefix, a.entities) if fnv1a32(x.encode()) % a.pcount in ps]
    if a.cmd == "wait":  # until every node has all its versions and lag 0 everywhere
        t0 = time.time()
        while True:
            state = []
            done = True
            for addr, ps in nodes:
                try:
                    v, l = versions(a.bin, addr, a.view), lags(a.bin, addr)
                except Exception as ex:  # node restarting
                    v, l = -1, {"err": str(ex)}
                want = len(expected(ps)) * a.updates
                ok = v >= want and all(x == "0" for x in l.values()) and len(l) >= len(ps)
                done &= ok
                state.append("%s versions %d/%d lag %s" % (addr, v, want, l))
            if done:
                print("converged in %.2f s" % (time.time() - t0))
                return 0
            if time.time() - t0 > a.timeout:
                print("NOT converged after %.0f s: %s" % (a.timeout, "; ".join(state)))
                return 1
            time.sleep(0.2)
    # verify: exact contents of every node
    bad = 0
    single = snapshot(a.bin, a.single, a.view) if a.single else None
    for addr, ps in nodes:
        want = expected(ps)
        snap = snapshot(a.bin, addr, a.view)
        v = versions(a.bin, addr, a.view)
        errs = []
        if v != len(want) * a.updates:
            errs.append("versions %d, expected %d (each update exactly once)" % (v, len(want) * a.updates))
        extra = set(snap) - set(want)
        if extra:
            errs.append("%d rows of other partitions, e.g. %s" % (len(extra), sorted(extra)[:3]))
        for acct in want:
            e = int(acct[len(a.prefix):])
            exp = row(a.prefix, e, a.updates - 1, a.base)
            got = snap.get(acct)
            if got is None:
                errs.append("%s missing" % acct)
            elif got[a.view + ":k"] != exp["k"] or got[a.view + ":tag"] != exp["tag"] or \
                    abs(got[a.view + ":score"] - exp["score"]) > 1e-9:
                errs.append("%s final %s, expected k=%d" % (acct, got, exp["k"]))
            elif single is not None and single.get(acct) != got:
                errs.append("%s differs from the single-node store: %s vs %s" % (acct, got, single.get(acct)))
            if len(errs) > 5:
                break
        if errs:
            bad += 1
            print("FAIL %s (%s): %s" % (addr, a.view, "; ".join(errs[:6])))
        else:
            print("ok %s (%s): %d accounts x %d updates, exactly once, final values = single node" %
                  (addr, a.view, len(want), a.updates))
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
