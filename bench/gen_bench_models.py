#!/usr/bin/python3
"""Trains the models bench_model measures and writes them as XGBoost JSON into OUT_DIR (not
committed): m100_d6.json (100 trees, depth 6) and m500_d8.json (500 trees, depth 8), binary:logistic
on 50 features with 10% missing values. Usage: gen_bench_models.py OUT_DIR"""
import os
import sys

import numpy as np
import xgboost as xgb

out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(42)
n, nf = 20000, 50
X = rng.normal(size=(n, nf)).astype(np.float32)
X[rng.random(X.shape) < 0.1] = np.nan
w = rng.normal(size=nf)
y = (np.nan_to_num(X) @ w + np.sin(np.nan_to_num(X[:, 0]) * 3) + rng.normal(size=n) > 0).astype(int)
d = xgb.DMatrix(X, label=y)
for trees, depth in ((100, 6), (500, 8)):
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 2,
              "tree_method": "hist", "seed": 1}
    b = xgb.train(params, d, trees)
    b.save_model(os.path.join(out, "m%d_d%d.json" % (trees, depth)))
