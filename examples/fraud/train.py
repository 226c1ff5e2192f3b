#!/usr/bin/python3
"""Trains the fraud demo's model: a small XGBoost binary:logistic classifier on synthetic data
shaped like the demo's features, with NaN wherever a feature would be missing at serving time.

Model inputs (in this order) and where freshet-infer gets them:
  txn_count_1h        card_stats:txn_count_1h        (int64)
  amount_avg_1h       card_stats:amount_avg_1h       (double)
  amount_max_1h       card_stats:amount_max_1h       (float)
  is_blocked          card_stats:is_blocked          (bool -> 0/1)
  chargeback_rate_7d  merchant_risk:chargeback_rate_7d (double)
  txn_count_24h       merchant_risk:txn_count_24h    (int64)
  amount              request-time: the amount of the transaction being scored

Writes OUT_DIR/model.json (Booster.save_model), OUT_DIR/features.json (the feature map
{"model_input": "view:feature"}, request-time inputs absent) and OUT_DIR/sample.csv (a few rows with
XGBoost's own predictions in the last two columns, for `freshet predict`). Then compile with
  freshet-compile OUT_DIR/model.json --features OUT_DIR/features.json -o fraud.frm
Usage: train.py OUT_DIR [--rows N] [--trees T] [--depth D] [--seed S]
"""
import argparse
import json
import math
import os

import numpy as np
import xgboost as xgb

INPUTS = [
    ("txn_count_1h", "card_stats:txn_count_1h"),
    ("amount_avg_1h", "card_stats:amount_avg_1h"),
    ("amount_max_1h", "card_stats:amount_max_1h"),
    ("is_blocked", "card_stats:is_blocked"),
    ("chargeback_rate_7d", "merchant_risk:chargeback_rate_7d"),
    ("txn_count_24h", "merchant_risk:txn_count_24h"),
    ("amount", None),
]


def make_data(rng, n):
    txn = rng.integers(1, 40, n).astype(np.float64)
    avg = np.round(rng.lognormal(3.5, 0.8, n), 2)
    mx = np.round(rng.lognormal(4.5, 0.9, n), 2).astype(np.float32).astype(np.float64)
    blocked = (rng.random(n) < 0.02).astype(np.float64)
    cbr = np.round(rng.beta(1, 60, n), 5)
    cnt24 = rng.integers(10, 5000, n).astype(np.float64)
    amount = np.round(rng.lognormal(3.5, 1.2, n), 2)
    # ground truth: big amounts far above the card's average, busy cards, risky merchants
    z = (-4.0 + 1.6 * np.log1p(amount / (avg + 1.0)) + 0.04 * txn + 40.0 * cbr + 3.0 * blocked
         - 0.0001 * cnt24)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    X = np.column_stack([txn, avg, mx, blocked, cbr, cnt24, amount])
    # serving-time gaps: a card's whole row expired/unknown (5%), a merchant unknown (3%), nulls (2%)
    card_gone = rng.random(n) < 0.05
    X[card_gone, 0:4] = np.nan
    merch_gone = rng.random(n) < 0.03
    X[merch_gone, 4:6] = np.nan
    X[rng.random(X.shape) < 0.02] = np.nan
    return X, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    X, y = make_data(rng, a.rows)
    names = [n for n, _ in INPUTS]
    dtrain = xgb.DMatrix(X, label=y, feature_names=names, missing=np.nan)
    params = {"objective": "binary:logistic", "max_depth": a.depth, "eta": 0.3,
              "tree_method": "hist", "seed": a.seed, "nthread": 2}
    booster = xgb.train(params, dtrain, num_boost_round=a.trees)
    booster.save_model(os.path.join(a.out_dir, "model.json"))
    with open(os.path.join(a.out_dir, "features.json"), "w") as f:
        json.dump({n: b for n, b in INPUTS if b}, f, indent=2)
        f.write("\n")
    Xs, _ = make_data(np.random.default_rng(a.seed + 1), 5)
    ds = xgb.DMatrix(Xs, feature_names=names, missing=np.nan)
    margin = booster.predict(ds, output_margin=True)
    prob = booster.predict(ds)
    with open(os.path.join(a.out_dir, "sample.csv"), "w") as f:
        f.write(",".join(names) + "\n")
        for row in Xs:
            f.write(",".join("" if math.isnan(v) else repr(float(v)) for v in row) + "\n")
    with open(os.path.join(a.out_dir, "sample_xgboost.txt"), "w") as f:
        for m, p in zip(margin, prob):
            f.write("%.9g,%.9g\n" % (m, p))
    pos = y.mean()
    print("trained %d trees depth %d on %d rows (%.1f%% positive); wrote %s/{model.json,features.json,sample.csv}"
          % (a.trees, a.depth, a.rows, 100 * pos, a.out_dir))


if __name__ == "__main__":
    main()
