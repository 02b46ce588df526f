"""Typed clients for the Lakehouse mesh: async (`Async*Client`) and blocking (`*Client`)."""

from lakehouse.client._base import RetryPolicy, open_channel, token_metadata
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.chat import AsyncChatClient
from lakehouse.client.errors import FieldViolation, LakehouseClientError
from lakehouse.client.flight import LakehouseFlight
from lakehouse.client.query import AsyncQueryClient, QueryResult
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.client.sync import CatalogClient, ChatClient, StorageClient

__all__ = [
    "AsyncCatalogClient",
    "AsyncChatClient",
    "AsyncQueryClient",
    "AsyncStorageClient",
    "CatalogClient",
    "ChatClient",
    "FieldViolation",
    "LakehouseClientError",
    "LakehouseFlight",
    "QueryResult",
    "RetryPolicy",
    "StorageClient",
    "open_channel",
    "token_metadata",
]
