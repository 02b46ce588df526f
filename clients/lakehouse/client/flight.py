"""Arrow Flight helpers for bulk reads and writes: plain `pyarrow.flight`, the lakehouse's tickets.

flight = LakehouseFlight("grpc+tcp://127.0.0.1:50052", token=None)
table = flight.read_dataset("workers")
reader = flight.query_to_reader("SELECT * FROM placements WHERE hours > ?", [30])
flight.upload(table, "workers_copy", mode="create")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from lakehouse.client.query import MODES, parameters
from lakehouse.common.v1 import refs_pb2
from lakehouse.query.v1 import flight_pb2
from lakehouse.query.v1 import query_service_pb2 as pb


class LakehouseFlight:
    """A Flight client with the caller's bearer token on every call."""

    def __init__(self, location: str, *, token: str | None = None, timeout_s: float = 3600.0) -> None:
        self._client = flight.FlightClient(location)
        token = token if token is not None else os.environ.get("LAKEHOUSE_TOKEN", "")
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._options = flight.FlightCallOptions(headers=headers, timeout=timeout_s)

    def read_dataset(self, name: str, version: int | None = None) -> pa.Table:
        """All rows of a dataset (at a catalog version) as a table."""
        return self.dataset_reader(name, version).read_all()

    def dataset_reader(self, name: str, version: int | None = None) -> pa.RecordBatchReader:
        ref = refs_pb2.DatasetRef(dataset=name)
        if version is not None:
            ref.version = version
        return self._stream(flight_pb2.FlightCommand(dataset=ref))

    def query_to_reader(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, as_of: Mapping[str, int] | None = None
    ) -> pa.RecordBatchReader:
        """Streams the full result of a statement, batch by batch."""
        statement = flight_pb2.SqlStatement(sql=sql, parameters=parameters(params), as_of=dict(as_of or {}))
        return self._stream(flight_pb2.FlightCommand(sql=statement))

    def read_ticket(self, ticket: bytes) -> pa.RecordBatchReader:
        """Follows a ticket from QueryResponse.flight_ticket."""
        return self._client.do_get(flight.Ticket(ticket), self._options).to_reader()

    def upload(
        self, data: pa.Table | pa.RecordBatchReader, dataset: str, *, mode: str = "append", description: str = ""
    ) -> pb.IngestSummary:
        """Ingests an Arrow table or stream as one new version of `dataset`."""
        put = flight_pb2.DatasetPut(dataset=dataset, mode=MODES[mode], description=description)
        descriptor = flight.FlightDescriptor.for_command(flight_pb2.FlightCommand(put=put).SerializeToString())
        reader = (
            data
            if isinstance(data, pa.RecordBatchReader)
            else pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
        )
        writer, metadata = self._client.do_put(descriptor, reader.schema, self._options)
        with writer:
            for batch in reader:
                writer.write_batch(batch)
            writer.done_writing()
            answer = metadata.read()
        summary = pb.IngestSummary()
        if answer is not None:
            summary.ParseFromString(answer.to_pybytes())
        return summary

    def list_datasets(self) -> list[flight.FlightInfo]:
        return list(self._client.list_flights(b"", self._options))

    def _stream(self, command: flight_pb2.FlightCommand) -> pa.RecordBatchReader:
        descriptor = flight.FlightDescriptor.for_command(command.SerializeToString())
        info = self._client.get_flight_info(descriptor, self._options)
        return self._client.do_get(info.endpoints[0].ticket, self._options).to_reader()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LakehouseFlight:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
