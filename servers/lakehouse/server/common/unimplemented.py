"""Servicers for services whose contract exists but whose server has not landed yet.

Every method answers UNIMPLEMENTED with a message naming the method: callers and probes see the
whole v1 surface through reflection, and never a fake result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from lakehouse.server.common.errors import Unimplemented


def _raiser(method: MethodDescriptor, why: str) -> Any:
    message = f"/{method.containing_service.full_name}/{method.name} is not implemented yet: {why}"
    if method.server_streaming:

        async def stream(self: object, request: object, context: object) -> AsyncIterator[Any]:
            raise Unimplemented(message)
            yield  # makes this an async generator, as streaming handlers must be

        return stream

    async def unary(self: object, request: object, context: object) -> Any:
        raise Unimplemented(message)

    return unary


def unimplemented_base(base: type, service: ServiceDescriptor, why: str) -> type:
    """A subclass of `base` (a generated *Servicer) whose every method is UNIMPLEMENTED.

    Servicers that implement part of a contract inherit from it and override what they serve.
    """
    methods = {m.name: _raiser(m, why) for m in service.methods}
    return type(f"Unimplemented{service.name}", (base,), methods)


def unimplemented_servicer(base: type, service: ServiceDescriptor, why: str) -> Any:
    """An instance of `unimplemented_base(...)`: the whole service answers UNIMPLEMENTED."""
    return unimplemented_base(base, service, why)()
