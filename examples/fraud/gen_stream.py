#!/usr/bin/python3
"""Generates the fraud demo's feature stream as JSON lines, the way a stream job would emit them.

card_stats rows carry (source, partition, offset) positions so replays are exactly-once; about 10%
of events arrive late (event time older than the card's newest) and the file is locally shuffled so
events are out of order. One card's only event is 20 minutes old (older than the 10 minute ttl) so
reads show EXPIRED. Usage: gen_stream.py OUT_DIR [--cards N] [--seed S] [--now-us T]
"""
import argparse
import json
import os
import random
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--cards", type=int, default=500)
    ap.add_argument("--merchants", type=int, default=50)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--now-us", type=int, default=int(time.time() * 1e6))
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    now = a.now_us
    minute = 60 * 1_000_000
    os.makedirs(a.out_dir, exist_ok=True)

    # Card events over the last 30 minutes, then a bounded shuffle (out of order) and late arrivals.
    events = []
    for _ in range(a.events):
        card = "card_%04d" % rnd.randrange(a.cards)
        ts = now - rnd.randrange(30 * minute)
        events.append((ts, card))
    events.sort()
    for i in range(0, len(events) - 8, 8):  # local disorder: swap within windows of 8
        window = events[i:i + 8]
        rnd.shuffle(window)
        events[i:i + 8] = window
    late = rnd.sample(range(len(events)), len(events) // 10)
    for i in late:  # a late event: 5 to 25 minutes behind the stream position
        ts, card = events[i]
        events[i] = (ts - rnd.randrange(5 * minute, 25 * minute), card)
    # the demo's fixed cases: a fresh card, and one whose only event is older than its 10m ttl
    events.append((now - 30 * 1_000_000, "card_fresh"))
    events.append((now - 20 * minute, "card_stale"))

    with open(os.path.join(a.out_dir, "card_stats.jsonl"), "w") as f:
        for offset, (ts, card) in enumerate(events):
            n = rnd.randrange(1, 40)
            row = {
                "card_id": card,
                "event_timestamp": ts,
                "offset": offset,
                "txn_count_1h": n,
                "amount_avg_1h": round(rnd.lognormvariate(3.5, 0.8), 2),
                "amount_max_1h": round(rnd.lognormvariate(4.5, 0.9), 2),
                "country": rnd.choice(["FR", "DE", "US", "GB", "BR"]),
                "is_blocked": rnd.random() < 0.02,
                "emb": [round(rnd.gauss(0, 1), 4) for _ in range(4)],
            }
            if rnd.random() < 0.05:
                row["country"] = None  # a null feature
            f.write(json.dumps(row) + "\n")

    with open(os.path.join(a.out_dir, "merchant_risk.jsonl"), "w") as f:
        for m in range(a.merchants):
            for k in range(3):
                ts = now - rnd.randrange(50 * minute)
                f.write(json.dumps({
                    "merchant_id": "m_%03d" % m,
                    "event_timestamp": ts,
                    "chargeback_rate_7d": round(rnd.betavariate(1, 60), 5),
                    "txn_count_24h": rnd.randrange(10, 5000),
                }) + "\n")
    print("generated %d card events (%d late, locally shuffled) and %d merchant events"
          % (len(events), len(late), a.merchants * 3))


if __name__ == "__main__":
    main()
