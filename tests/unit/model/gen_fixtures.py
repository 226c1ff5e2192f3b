#!/usr/bin/python3
"""Generates the model fixtures of tests/unit/model (run with /usr/bin/python3 from any directory).

For every XGBoost model: <name>.json (Booster.save_model), <name>.csv (scoring rows, header = feature
names, values as float64 repr, empty = missing) and <name>.expected (one line per row: the float32 bit
patterns in hex of Booster.predict(output_margin=True) then of Booster.predict(), space separated).
For linear models: <name>.json (Freshet linear JSON), <name>.csv and <name>.expected holding, per row,
the float64 hex of (a) margin and prob recomputed with the exact formula and summation order Freshet
documents, and (b) scikit-learn's own decision_function/predict_proba (or predict) values.
Refusal fixtures: refuse_<what>.json. manifest.txt lists every fixture: name kind n_margins n_preds.
The generator is deterministic for a given xgboost/numpy/sklearn version (1.7.4 / Debian bookworm).
"""
import json
import math
import os
import struct

import numpy as np
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
manifest = []


def f32hex(v):
    return struct.pack(">f", float(np.float32(v))).hex()


def f64hex(v):
    return struct.pack(">d", float(v)).hex()


def make_data(rng, n, n_feat, nan_frac, const_cols=()):
    X = rng.normal(size=(n, n_feat)) * rng.uniform(0.1, 100.0, size=n_feat)
    X[rng.random(X.shape) < nan_frac] = np.nan
    for c in const_cols:
        X[:, c] = 3.25
    return X


def write_csv(path, names, X):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in X:
            f.write(",".join("" if math.isnan(v) else repr(float(v)) for v in row) + "\n")


def thresholds(booster):
    m = json.loads(booster.save_raw("json"))
    out = []
    for t in m["learner"]["gradient_booster"]["model"]["trees"]:
        for i, l in enumerate(t["left_children"]):
            if l != -1:
                out.append((t["split_indices"][i], t["split_conditions"][i]))
    return out


def xgb_model(name, rng, objective, depth, trees, n_train=600, n_score=400, n_feat=8, nan_frac=0.1,
              base_score=None, num_class=0, const_cols=(), extra=None, names=None, scale_leaves=None):
    X = make_data(rng, n_train, n_feat, nan_frac, const_cols)
    score = np.nansum(X[:, [0, 1, 3]] / np.nanstd(X[:, [0, 1, 3]], axis=0), axis=1) + rng.normal(size=n_train)
    if objective.startswith("multi"):
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, num_class + 1)[1:-1]))
    elif objective.startswith("binary"):
        y = (score > 0).astype(int)
    elif objective == "reg:logistic":
        y = 1 / (1 + np.exp(-score))
    else:
        y = score * 7.5 + 100.0
    params = {"objective": objective, "max_depth": depth, "eta": 0.3, "seed": 1, "nthread": 1}
    if base_score is not None:
        params["base_score"] = base_score
    if num_class:
        params["num_class"] = num_class
    params.update(extra or {})
    dtrain = xgb.DMatrix(X.astype(np.float32), label=y, feature_names=names)
    b = xgb.train(params, dtrain, trees)
    if scale_leaves is not None:  # push margins into extreme ranges (sigmoid/softmax edges)
        m = json.loads(b.save_raw("json"))
        for t in m["learner"]["gradient_booster"]["model"]["trees"]:
            t["split_conditions"] = [c * scale_leaves if l == -1 else c
                                     for c, l in zip(t["split_conditions"], t["left_children"])]
        b = xgb.Booster(model_file=bytearray(json.dumps(m).encode()))
    Xs = make_data(rng, n_score, n_feat, nan_frac)
    # Put exact split thresholds (and their float32 neighbours) into some scoring cells.
    th = thresholds(b)
    for _ in range(min(len(th), n_score // 2)) if th else []:
        f, c = th[rng.integers(len(th))]
        v = np.float32(c)
        v = [v, np.nextafter(v, np.float32(-np.inf)), np.nextafter(v, np.float32(np.inf))][rng.integers(3)]
        Xs[rng.integers(n_score), f] = float(v)
    Xs[0, :] = np.nan
    Xs[1, :] = 0.0
    path = os.path.join(OUT, name)
    b.save_model(path + ".json")
    fnames = names or ["f%d" % i for i in range(n_feat)]
    write_csv(path + ".csv", fnames, Xs)
    d = xgb.DMatrix(Xs.astype(np.float32), feature_names=names)
    margin = b.predict(d, output_margin=True).reshape(n_score, -1)
    pred = b.predict(d).reshape(n_score, -1)
    with open(path + ".expected", "w") as f:
        for i in range(n_score):
            f.write(" ".join(f32hex(v) for v in list(margin[i]) + list(pred[i])) + "\n")
    manifest.append("%s trees %d %d" % (name, margin.shape[1], pred.shape[1]))


def linear_model(name, rng, logistic):
    n_feat, n = 6, 500
    X = make_data(rng, n, n_feat, 0.1)
    score = np.nansum(X[:, [0, 1, 3]] / np.nanstd(X[:, [0, 1, 3]], axis=0), axis=1) + rng.normal(size=n)
    y = (score > 0).astype(int) if logistic else score * 3.0 - 1.5
    est = LogisticRegression(C=0.5, max_iter=1000) if logistic else LinearRegression()
    pipe = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), est).fit(X, y)
    imp, sc = pipe[0], pipe[1]
    coef = np.ravel(est.coef_)
    icpt = float(np.ravel([est.intercept_])[0])
    w = coef / sc.scale_
    bias = icpt - float(np.sum(coef * sc.mean_ / sc.scale_))
    names = ["x%d" % i for i in range(n_feat)]
    model = {"type": "logistic" if logistic else "linear", "n_features": n_feat,
             "feature_names": names, "weights": [float(v) for v in w], "bias": bias,
             "missing_fill": [float(v) for v in imp.statistics_],
             "link": "sigmoid" if logistic else "identity"}
    path = os.path.join(OUT, name)
    with open(path + ".json", "w") as f:
        json.dump(model, f, indent=1)  # json.dump writes repr(): round-trips float64 exactly
    Xs = make_data(rng, 300, n_feat, 0.15)
    Xs[0, :] = np.nan
    write_csv(path + ".csv", names, Xs)
    sk_margin = pipe.decision_function(Xs) if logistic else pipe.predict(Xs)
    sk_prob = pipe.predict_proba(Xs)[:, 1] if logistic else sk_margin
    with open(path + ".expected", "w") as f:
        for i, row in enumerate(Xs):
            s = 0.0
            for j in range(n_feat):
                s += model["weights"][j] * (model["missing_fill"][j] if math.isnan(row[j]) else row[j])
            m = bias + s
            p = 1.0 / (1.0 + math.exp(-m)) if logistic else m
            f.write(" ".join(f64hex(v) for v in (m, p, sk_margin[i], sk_prob[i])) + "\n")
    manifest.append("%s linear 1 1" % name)


def refusal(name, params, rounds=2, cat=False):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    if cat:
        import pandas as pd
        df = pd.DataFrame({"a": pd.Categorical(rng.integers(0, 4, 200)), "b": X[:, 1]})
        y = (df["a"].cat.codes.values % 2).astype(int)
        d = xgb.DMatrix(df, label=y, enable_categorical=True)
    else:
        d = xgb.DMatrix(X, label=y, group=[100, 100] if params["objective"].startswith("rank") else None)
    b = xgb.train(dict(params, max_depth=2, nthread=1), d, rounds)
    b.save_model(os.path.join(OUT, name + ".json"))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240601)
    xgb_model("bin_logistic_d1_t1", rng, "binary:logistic", 1, 1)
    xgb_model("bin_logistic_d3_t50", rng, "binary:logistic", 3, 50)
    xgb_model("bin_logistic_d6_t100_bs03", rng, "binary:logistic", 6, 100, base_score=0.3,
              const_cols=(5,), nan_frac=0.25)
    xgb_model("bin_logistic_d10_t12_hist", rng, "binary:logistic", 10, 12, n_train=1500,
              extra={"tree_method": "hist"})
    xgb_model("bin_logistic_d8_t20_lossguide", rng, "binary:logistic", 8, 20,
              extra={"tree_method": "hist", "grow_policy": "lossguide", "max_leaves": 24},
              names=["amount", "age_days", "n_tx_1h", "avg_tx_24h", "country_risk", "zero", "c6", "c7"])
    xgb_model("bin_logistic_extreme", rng, "binary:logistic", 3, 30, scale_leaves=40.0,
              base_score=0.9)
    xgb_model("bin_logitraw_d4_t30_bs02", rng, "binary:logitraw", 4, 30, base_score=0.2)
    xgb_model("reg_sqerr_d5_t60", rng, "reg:squarederror", 5, 60, const_cols=(2,))
    xgb_model("reg_sqerr_d1_t500_bs", rng, "reg:squarederror", 1, 500, base_score=12.5,
              n_score=300, extra={"eta": 0.05})
    xgb_model("reg_sqerr_d7_t8_approx", rng, "reg:squarederror", 7, 8, nan_frac=0.4,
              extra={"tree_method": "approx"})
    xgb_model("reg_logistic_d4_t40", rng, "reg:logistic", 4, 40)
    xgb_model("multi_softprob_d3_t25_k4", rng, "multi:softprob", 3, 25, num_class=4)
    xgb_model("multi_softprob_extreme_k3", rng, "multi:softprob", 2, 10, num_class=3,
              scale_leaves=60.0)
    xgb_model("multi_softmax_d4_t15_k3", rng, "multi:softmax", 4, 15, num_class=3, base_score=0.1)
    xgb_model("bin_logistic_rf_d4", rng, "binary:logistic", 4, 3,
              extra={"num_parallel_tree": 4, "subsample": 0.8, "colsample_bynode": 0.8})
    linear_model("linear_logistic", rng, True)
    linear_model("linear_regression", rng, False)
    refusal("refuse_dart", {"objective": "binary:logistic", "booster": "dart"})
    refusal("refuse_gblinear", {"objective": "binary:logistic", "booster": "gblinear"})
    refusal("refuse_rank_pairwise", {"objective": "rank:pairwise"})
    refusal("refuse_categorical", {"objective": "binary:logistic", "tree_method": "hist"}, cat=True)
    # An objective XGBoost knows but Freshet does not, and one nobody knows (edited JSON).
    refusal("refuse_count_poisson", {"objective": "count:poisson"})
    with open(os.path.join(OUT, "refuse_count_poisson.json")) as f:
        m = json.load(f)
    m["learner"]["objective"]["name"] = "reg:made_up"
    with open(os.path.join(OUT, "refuse_unknown_objective.json"), "w") as f:
        json.dump(m, f)
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
