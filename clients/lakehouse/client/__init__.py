"""Typed clients for the Lakehouse mesh: async (`Async*Client`) and blocking (`*Client`)."""

from lakehouse.client._base import RetryPolicy, open_channel, token_metadata
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import FieldViolation, LakehouseClientError
from lakehouse.client.flight import LakehouseFlight
from lakehouse.client.query import AsyncQueryClient, QueryResult
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.client.sync import CatalogClient, StorageClient

__all__ = [
    "AsyncCatalogClient",
    "AsyncQueryClient",
    "AsyncStorageClient",
    "CatalogClient",
    "FieldViolation",
    "LakehouseClientError",
    "LakehouseFlight",
    "QueryResult",
    "RetryPolicy",
    "StorageClient",
    "open_channel",
    "token_metadata",
]
