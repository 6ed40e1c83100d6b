"""The BentoML side of the serving benchmark (benchmarks/serving.py): the breast-cancer pipeline that
`_serving_prepare.py bentoml` saved with `bentoml.sklearn.save_model("bc-bench", …)`, served the current
BentoML way (a `@bentoml.service` class, one `@bentoml.api` method). Run from the benchmark as

    BENTOML_HOME=<tmp>/bentoml_home bentoml serve _bentoml_service:BreastCancer \\
        --working-dir benchmarks --host 127.0.0.1 --port <port>

POST /predict takes the same body as Arsenale's /predict — {"records": [{"mean radius": 17.99, …}, …]} —
BentoML maps the JSON object's fields to the method's parameters and pydantic checks `records` (a list of
objects of floats). The fields are put in training order from the column names kept in the model's metadata,
and the answer is the list of predicted classes. A plain (sync) method, as in BentoML's scikit-learn examples:
BentoML runs it in its thread pool (`threads`, default 1). One worker process.
"""

from __future__ import annotations

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument


@bentoml.service(workers=1)
class BreastCancer:
    bento_model = bentoml.models.BentoModel("bc-bench:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.bento_model)
        self.columns = list(self.bento_model.info.metadata["columns"])

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> list[int]:
        try:
            X = np.array([[record[c] for c in self.columns] for record in records], dtype=np.float64)
        except KeyError as missing:
            raise InvalidArgument(f"missing column {missing}") from None
        return self.model.predict(X).tolist()
