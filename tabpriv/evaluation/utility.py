"""Machine-learning utility: train on synthetic, test on real (TSTR) next to train-real (TRTR)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.errors import DataValidationError
from tabpriv.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MISSING_LABEL", "make_logistic_pipeline", "prepare_xy", "utility_scores"]

logger = logging.getLogger(__name__)

#: Label given to missing values of categorical features and of the target.
MISSING_LABEL = "(missing)"
#: Largest number of distinct values a numeric (integer) target may have.
MAX_TARGET_CLASSES = 50


def prepare_xy(
    df: pd.DataFrame, schema: Schema, target: str
) -> tuple[pd.DataFrame, np.ndarray, list[str], list[str]]:
    """Split a table into features and labels the way the utility models see them.

    Categorical features become strings with missing values as ``"(missing)"``; numeric features
    become floats (text that is not a number becomes NaN and is imputed). Labels are strings.

    Returns:
        Features, labels, categorical feature names, numeric feature names.

    """
    import pandas as pd

    cat_cols = [c.name for c in schema.columns if c.name != target and c.kind == "categorical"]
    num_cols = [c.name for c in schema.columns if c.name != target and c.kind != "categorical"]
    X = pd.DataFrame(index=df.index)
    for c in cat_cols:
        X[c] = df[c].astype(object).where(df[c].notna(), MISSING_LABEL).astype(str)
    for c in num_cols:
        X[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    y_raw = df[target]
    if schema[target].kind != "categorical":
        y_raw = pd.to_numeric(y_raw, errors="coerce")
        y_raw = y_raw.map(lambda v: f"{v:g}" if v == v else MISSING_LABEL)
    y = y_raw.astype(object).where(y_raw.notna(), MISSING_LABEL).astype(str).to_numpy()
    return X, y, cat_cols, num_cols


def make_logistic_pipeline(cat_cols: list[str], num_cols: list[str], random_state: int = 0) -> Any:
    """One-hot (categorical) + median-impute and standardise (numeric) + logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), cat_cols),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num_cols),
        ]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=1000, random_state=random_state))


def _make_hgb(cat_cols: list[str], num_cols: list[str], random_state: int = 0) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    pre = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                cat_cols,
            ),
            ("num", "passthrough", num_cols),
        ]
    )
    n_cat = len(cat_cols)
    mask = [True] * n_cat + [False] * len(num_cols)
    return make_pipeline(
        pre,
        HistGradientBoostingClassifier(
            categorical_features=mask if n_cat else None, random_state=random_state
        ),
    )


def _scores(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], positive: str | None
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    pred = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    out = {"accuracy": float(accuracy_score(y_true, pred))}
    present = sorted(set(y_true.tolist()))
    if positive is not None:
        k = classes.index(positive)
        pos = y_true == positive
        out["roc_auc"] = float(roc_auc_score(pos, proba[:, k])) if 0 < pos.sum() < len(pos) else float("nan")
        out["f1"] = float(
            f1_score(y_true, pred, pos_label=positive, average="binary", labels=classes, zero_division=0)
        )
    else:
        idx = [classes.index(c) for c in present if c in classes]
        if len(idx) >= 2 and len(idx) == len(present):
            p = proba[:, idx]
            p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
            out["roc_auc"] = float(
                roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=present)
            )
        else:
            out["roc_auc"] = float("nan")
        out["f1"] = float(f1_score(y_true, pred, average="macro", labels=classes, zero_division=0))
    return out


def _fit_proba(
    model: Any, X_train: Any, y_train: np.ndarray, X_test: Any, classes: list[str]
) -> tuple[np.ndarray, str | None]:
    """Fit and return probabilities over ``classes`` (absent classes get 0)."""
    present = sorted(set(y_train.tolist()))
    proba = np.zeros((len(X_test), len(classes)))
    if len(present) < 2:
        proba[:, classes.index(present[0]) if present[0] in classes else 0] = 1.0
        return proba, (
            f"the training table holds a single target class ({present[0]!r}); the model "
            "predicts it for every row"
        )
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with (
        warnings.catch_warnings(record=True) as caught,
        threadpool_limits(limits=1, user_api="openmp"),
    ):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X_train, y_train)
    note = None
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        note = "the optimiser did not fully converge (scikit-learn ConvergenceWarning)"
    p = model.predict_proba(X_test)
    for j, c in enumerate(model.classes_):
        if c in classes:
            proba[:, classes.index(c)] = p[:, j]
    return proba, note


def utility_scores(
    real_train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Schema,
    target: str,
    *,
    hgb: bool = False,
    random_state: int = 0,
) -> dict[str, Any]:
    """Score models trained on synthetic (TSTR) and real (TRTR) data on the real hold-out.

    Raises:
        DataValidationError: The target is numeric with too many values or is constant in the real
            training table.

    """
    col = schema[target]
    Xr, yr, cat_cols, num_cols = prepare_xy(real_train, schema, target)
    classes = sorted(set(yr.tolist()))
    if col.kind != "categorical" and len(classes) > MAX_TARGET_CLASSES:
        raise DataValidationError(
            f"Target column {target!r} is {col.kind} with {len(classes)} distinct values; utility "
            f"needs a classification target (categorical or at most {MAX_TARGET_CLASSES} values). "
            "Pick a categorical target with --target."
        )
    if len(classes) < 2:
        raise DataValidationError(
            f"Target column {target!r} is constant ({classes[0]!r}) in the real training table; "
            "a classifier cannot be scored. Pick another --target."
        )
    Xs, ys, _, _ = prepare_xy(synthetic, schema, target)
    Xh, yh, _, _ = prepare_xy(holdout, schema, target)
    counts = {c: int((yr == c).sum()) for c in classes}
    positive = min(classes, key=lambda c: (counts[c], c)) if len(classes) == 2 else None
    majority = max(classes, key=lambda c: (counts[c], c))
    floor_proba = np.zeros((len(yh), len(classes)))
    floor_proba[:, classes.index(majority)] = 1.0
    result: dict[str, Any] = {
        "target": target,
        "classes": classes,
        "positive_class": positive,
        "majority_class": majority,
        "n_train_real": len(yr),
        "n_train_synthetic": len(ys),
        "n_test": len(yh),
        "f1_average": "binary" if positive is not None else "macro",
        "models": {},
        "notes": [],
    }
    floor = _scores(yh, floor_proba, classes, positive)
    floor["roc_auc"] = 0.5
    builders = {"logistic_regression": make_logistic_pipeline}
    if hgb:
        builders["hist_gradient_boosting"] = _make_hgb
    for name, build in builders.items():
        pr, note_r = _fit_proba(build(cat_cols, num_cols, random_state), Xr, yr, Xh, classes)
        ps, note = _fit_proba(build(cat_cols, num_cols, random_state), Xs, ys, Xh, classes)
        if note_r:
            result["notes"].append(f"{name} on real data: {note_r}")
        if note:
            result["notes"].append(f"{name} on synthetic data: {note}")
        result["models"][name] = {
            "synthetic": _scores(yh, ps, classes, positive),
            "real": _scores(yh, pr, classes, positive),
            "majority": floor,
        }
    return result
