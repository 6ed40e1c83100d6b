"""The datasets SDK: `ars.register_dataset(...)` and `ars.Dataset(name, version)`.

    ars.register_dataset("transactions", df, schema=schema, policy="quarantine")
    with ars.start_run():
        df = ars.Dataset("transactions", version="3").to_pandas()   # the run now lists transactions@3 as input

Reading a dataset inside an active run records it as the run's input (the `run_inputs` table and the run tag
`ars.input.<name>` = version, which the model registry's lineage follows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from arsenale.data.models import DatasetVersion
from arsenale.data.validation import DataSchema, ValidationReport
from arsenale.registry.contract import Profile, Schema
from arsenale.tracking.fluent import active_run, get_client

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from arsenale.platform import Client

__all__ = ["Dataset", "register_dataset"]


def register_dataset(name: str, data: Any, *, description: str | None = None,
                     schema: DataSchema | Mapping[str, Any] | str | None = None, policy: str = "reject"
                     ) -> DatasetVersion:
    """Register `data` (a DataFrame, an Arrow table or a CSV/Parquet path) as the next version of `name`;
    identical data returns the existing version."""
    return get_client().datasets.register(name, data, description=description, schema=schema, policy=policy)


class Dataset:
    """One version of a registered dataset, resolved when created ("latest" = newest not rejected)."""

    def __init__(self, name: str, version: int | str = "latest", *, client: Client | None = None) -> None:
        self._client = client if client is not None else get_client()
        self.requested = version  # "latest" lets a feature view follow new versions; a number pins one
        self.info: DatasetVersion = self._client.datasets.get(name, version)
        self.name = self.info.name
        self.version = self.info.version

    def __repr__(self) -> str:
        return f"<Dataset {self.name}@{self.version} rows={self.info.rows} status={self.info.status.value}>"

    @property
    def uri(self) -> str:
        return self.info.uri

    @property
    def digest(self) -> str:
        return self.info.digest

    @property
    def schema(self) -> Schema:
        return Schema.model_validate(self.info.data_schema)

    @property
    def profile(self) -> Profile:
        return Profile.model_validate(self.info.profile)

    @property
    def validation(self) -> ValidationReport | None:
        return None if self.info.validation is None else ValidationReport.model_validate(self.info.validation)

    def _record(self) -> None:
        run = active_run()
        if run is not None:
            self._client.datasets.record_input(run.run_id, self.name, self.version)

    def to_arrow(self) -> pa.Table:
        """The data as an Arrow table, verified by digest; recorded as an input of the active run."""
        table = self._client.datasets.read(self.name, self.version)
        self._record()
        return table

    def to_pandas(self) -> pd.DataFrame:
        frame: pd.DataFrame = self.to_arrow().to_pandas()
        return frame

    def quarantined(self) -> pd.DataFrame:
        """The rows set aside at registration (with their `_reason`); NotFound if there are none."""
        frame: pd.DataFrame = self._client.datasets.read(self.name, self.version, quarantine=True).to_pandas()
        return frame
