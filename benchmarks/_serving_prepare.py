"""Prepare one side of the serving benchmark: the same model, trained the same way, stored by each tool.

    <python> _serving_prepare.py mlflow   <folder>     # saves an MLflow model in <folder>/model
    <python> _serving_prepare.py arsenale <folder>     # registers "bc" v1 and v2 in ARSENALE_HOME
    <python> _serving_prepare.py bentoml  <folder>     # saves "bc-bench" in BENTOML_HOME (bentoml.sklearn)

Each writes <folder>/request.json (one row) and <folder>/batch.json (1,000 rows) in its own request format.
BentoML's venv has no pandas (BentoML does not need it), so that side loads the data as NumPy arrays: the
same 569 × 30 values and the same pipeline (the fit does not depend on the container), with the column names
kept in the model's metadata so the service can order a record's fields; its requests are the same JSON as
Arsenale's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def data_arrays():  # type: ignore[no-untyped-def]
    """The same data without pandas: (X as an ndarray, y, the column names)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return bunch.data, bunch.target, [str(c) for c in bunch.feature_names]


def data():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def model(X, y, c: float = 1.0):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(X, y)


def rows(X, n: int) -> list[dict]:  # type: ignore[no-untyped-def]
    records = X.to_dict(orient="records")
    return [records[i % len(records)] for i in range(n)]


def main() -> None:
    side, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    if side == "bentoml":
        import bentoml

        X, y, columns = data_arrays()
        bentoml.sklearn.save_model("bc-bench", model(X, y), metadata={"columns": columns})
        records = [dict(zip(columns, map(float, row))) for row in X]
        single = {"records": records[:1]}
        batch = {"records": [records[i % len(records)] for i in range(1000)]}
        (folder / "request.json").write_text(json.dumps(single))
        (folder / "batch.json").write_text(json.dumps(batch))
        print(json.dumps({"ok": True}))
        return
    X, y = data()
    if side == "mlflow":
        import mlflow.sklearn

        mlflow.sklearn.save_model(model(X, y), str(folder / "model"), input_example=X.head(2))
        single, batch = {"dataframe_records": rows(X, 1)}, {"dataframe_records": rows(X, 1000)}
    else:
        import arsenale as ars

        for c in (1.0, 0.5):
            ars.register_model("bc", model(X, y, c), signature_from=X, reference=X, labels=y)
        single, batch = {"records": rows(X, 1)}, {"records": rows(X, 1000)}
    (folder / "request.json").write_text(json.dumps(single))
    (folder / "batch.json").write_text(json.dumps(batch))
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
