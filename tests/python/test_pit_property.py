"""Property test: an `event`-mode point-in-time export equals pandas merge_asof(direction="backward",
tolerance=ttl, allow_exact_matches=True) per view, value for value and status for status, on random
streams with late and out-of-order events, equal timestamps, labels before any event, exactly at
an event, exactly at the ttl and one microsecond past it, and entities that never had an event.

Among versions with the same event time Freshet returns the last written one; the reference model
keeps the last written row of each (entity, event time) before merging, which is exactly that rule.
"""
import unittest

import numpy as np
import pandas as pd

from support import HOUR, MIN, SEC, ServerTest

VIEWS = {
    # name: (entity, join key, ttl µs, [(feature, type)])
    "u_fast": ("user", "user_id", 30 * SEC, [("a", "double"), ("n", "int64")]),
    "u_slow": ("user", "user_id", 5 * MIN, [("b", "double"), ("tag", "string")]),
    "m_risk": ("merchant", "merchant_id", HOUR, [("r", "double"), ("c", "int64")]),
}
EVENTS = {"u_fast": 1500, "u_slow": 1000, "m_risk": 600}
REGISTRY = {
    "entities": [{"name": "user", "join_key": "user_id"},
                 {"name": "merchant", "join_key": "merchant_id"}],
    "views": [{"name": v, "entity": e, "ttl": ttl // SEC, "retention": 0,
               "features": [{"name": f, "type": t} for f, t in feats]}
              for v, (e, _, ttl, feats) in VIEWS.items()],
}
SEEDS = (1, 2, 3)
LABELS = 3000
N_USERS, N_MERCH = 40, 15


def gen_events(rng, base, span, tag=""):
    """Per view a DataFrame of events with a write order (`order`), values with ~5% nulls and
    event times on a 10 s grid (so one entity often has several versions at the same time)."""
    out = {}
    for v, (_, key, _, feats) in VIEWS.items():
        n = EVENTS[v]
        pool = N_USERS if key == "user_id" else N_MERCH
        prefix = tag + ("u" if key == "user_id" else "m")
        df = pd.DataFrame({
            key: [f"{prefix}{k}" for k in rng.integers(0, pool, n)],
            "event_timestamp": base + rng.integers(0, span // (10 * SEC), n) * 10 * SEC,
        })
        for f, t in feats:
            if t == "double":
                vals = rng.normal(size=n).round(6).tolist()
            elif t == "int64":
                vals = rng.integers(-10 ** 12, 10 ** 12, n).tolist()
            else:
                vals = [f"s{x}" for x in rng.integers(0, 10 ** 6, n)]
            for k in np.flatnonzero(rng.random(n) < 0.05):
                vals[k] = None
            df[f] = vals
        df["order"] = rng.permutation(n)  # the write order: late and out of order
        out[v] = df
    return out


def gen_labels(rng, events, base, span, tag=""):
    n = LABELS
    users = [f"{tag}u{k}" for k in rng.integers(0, N_USERS + 5, n)]  # u40..u44 never written
    merch = [f"{tag}m{k}" for k in rng.integers(0, N_MERCH + 3, n)]  # m15..m17 never written
    times = base - 10 * MIN + rng.integers(0, span + 100 * MIN, n)  # µs resolution
    # a third of the labels sit on an event of u_fast/u_slow/m_risk, its ttl or just past it
    picks = np.flatnonzero(rng.random(n) < 0.35)
    for i in picks:
        v = ("u_fast", "u_slow", "m_risk")[rng.integers(0, 3)]
        _, key, ttl, _ = VIEWS[v]
        ev = events[v].iloc[rng.integers(0, len(events[v]))]
        times[i] = ev["event_timestamp"] + (0, ttl, ttl + 1, -1)[rng.integers(0, 4)]
        if key == "user_id":
            users[i] = ev[key]
        else:
            merch[i] = ev[key]
    return pd.DataFrame({"label_id": np.arange(n), "user_id": users,
                         "event_timestamp": times, "merchant_id": merch,
                         "y": rng.integers(0, 2, n)})


def reference(labels, events):
    """Expected values and statuses per "view:feature" via merge_asof."""
    left = pd.DataFrame({"_row": np.arange(len(labels)), "t": labels["event_timestamp"].astype(np.int64),
                         "user_id": labels["user_id"], "merchant_id": labels["merchant_id"]})
    left = left.sort_values("t", kind="stable")
    exp_vals, exp_status = {}, {}
    for v, (_, key, ttl, feats) in VIEWS.items():
        ev = events[v].sort_values("order", kind="stable")
        # the last written version of each (entity, event time) is the one that counts
        ev = ev.drop_duplicates([key, "event_timestamp"], keep="last")
        right = ev.rename(columns={"event_timestamp": "ts"}).sort_values("ts", kind="stable")
        right = right.assign(ts=right["ts"].astype(np.int64), _hit=True)
        cols = [key, "ts", "_hit"] + [f for f, _ in feats]
        fresh = pd.merge_asof(left, right[cols], left_on="t", right_on="ts", by=key,
                              direction="backward", tolerance=ttl, allow_exact_matches=True)
        anyv = pd.merge_asof(left, right[[key, "ts", "_hit"]], left_on="t", right_on="ts", by=key,
                             direction="backward", allow_exact_matches=True)
        fresh = fresh.sort_values("_row")
        anyv = anyv.sort_values("_row")
        hit_fresh = fresh["_hit"].eq(True).to_numpy()
        hit_any = anyv["_hit"].eq(True).to_numpy()
        for f, _ in feats:
            vals = fresh[f].tolist()
            vals = [None if (not h or x is None or (isinstance(x, float) and x != x)) else x
                    for x, h in zip(vals, hit_fresh)]
            st = np.where(hit_fresh, "PRESENT", np.where(hit_any, "EXPIRED", "NOT_FOUND")).astype(object)
            st[hit_fresh & np.array([x is None for x in vals])] = "NULL"
            exp_vals[f"{v}:{f}"] = vals
            exp_status[f"{v}:{f}"] = st
    return exp_vals, exp_status


def as_list(col):
    return [None if (x is None or x is pd.NA or (isinstance(x, float) and x != x)) else x
            for x in col.tolist()]


class PitProperty(ServerTest):
    def test_event_mode_equals_merge_asof(self):
        c = self.client
        c.apply(REGISTRY)
        now = c.status()["server_time_us"]
        features = [f"{v}:{f}" for v, (_, _, _, feats) in VIEWS.items() for f, _ in feats]
        for seed, chunk in zip(SEEDS, (1000, 10000, 777)):
            with self.subTest(seed=seed):
                rng = np.random.default_rng(seed)
                # each seed has its own entities and 2 h of history, all of it (and every label)
                # ending 30+ minutes before the first write, so every PRESENT value of the export
                # was written after its label time
                tag = f"s{seed}"
                base = (now // SEC) * SEC - 4 * HOUR
                span = 2 * HOUR
                events = gen_events(rng, base, span, tag)
                for v, df in events.items():
                    ordered = df.sort_values("order", kind="stable")
                    # several put batches, each of them out of order and late w.r.t. the previous
                    for part in np.array_split(ordered.drop(columns="order"), 4):
                        r = c.put(v, part)
                        self.assertEqual(r["rows_written"] + r["unchanged"], len(part))
                labels = gen_labels(rng, events, base, span, tag)
                exp_vals, exp_status = reference(labels, events)
                got = c.export_pit(labels, features, mode="event", with_status=True,
                                   chunk_rows=chunk)
                self.assertEqual(list(got.columns[:5]), list(labels.columns))
                pd.testing.assert_frame_equal(got[list(labels.columns)], labels)
                self.assertEqual(list(got.columns[5:]),
                                 [x for f in features for x in (f, f + ":status")])
                counts = {"PRESENT": 0, "EXPIRED": 0, "NOT_FOUND": 0, "NULL": 0}
                for f in features:
                    st = got[f + ":status"].to_numpy()
                    bad = np.flatnonzero(st != exp_status[f])
                    self.assertEqual(len(bad), 0, f"{f}: status differs at rows {bad[:10]}: got "
                                     f"{st[bad[:5]]}, expected {exp_status[f][bad[:5]]}; labels\n"
                                     f"{labels.iloc[bad[:5]]}")
                    gv, ev = as_list(got[f]), exp_vals[f]
                    diff = [i for i, (a, b) in enumerate(zip(gv, ev)) if a != b]
                    self.assertEqual(diff, [], f"{f}: values differ at rows {diff[:10]}")
                    self.assertEqual(len(gv), len(ev))
                    for s in counts:
                        counts[s] += int(np.count_nonzero(exp_status[f] == s))
                # the property must exercise every status, and ties
                for s in counts:
                    self.assertGreater(counts[s], 0, f"no {s} value in seed {seed}")
                self.assertEqual(got.attrs["statuses"], counts)
                # every value came from a version written after its label time
                self.assertEqual(got.attrs["leakage"], counts["PRESENT"])
                # served mode: none of it was known at label time
                served = c.export_pit(labels, features, mode="served", with_status=True,
                                      chunk_rows=chunk)
                self.assertEqual(served.attrs["statuses"]["NOT_FOUND"], LABELS * len(features))
                self.assertEqual(served.attrs["leakage"], 0)


class GeneratorSanity(unittest.TestCase):
    def test_ties_in_the_generated_streams(self):
        """The generator really produces same-time versions with different values, so the
        property above covers the last-write-wins rule."""
        rng = np.random.default_rng(SEEDS[0])
        events = gen_events(rng, 0, 2 * HOUR)
        ties = sum(int(df.duplicated(["user_id" if "user_id" in df else "merchant_id",
                                      "event_timestamp"]).sum()) for df in events.values())
        self.assertGreater(ties, 10)


if __name__ == "__main__":
    unittest.main()
