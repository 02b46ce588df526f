"""Typed clients for the Lakehouse mesh: async (`Async*Client`) and blocking (`*Client`)."""

from lakehouse.client._base import RetryPolicy, open_channel, token_metadata
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import FieldViolation, LakehouseClientError
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.client.sync import CatalogClient, StorageClient

__all__ = [
    "AsyncCatalogClient",
    "AsyncStorageClient",
    "CatalogClient",
    "FieldViolation",
    "LakehouseClientError",
    "RetryPolicy",
    "StorageClient",
    "open_channel",
    "token_metadata",
]
