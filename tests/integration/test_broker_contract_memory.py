"""The broker contract over the in-memory broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from broker_contract import BrokerContract, TransportFactory

from adapters.memory.broker import InMemoryBroker, InMemoryTransport


@pytest.fixture
async def transport_factory() -> AsyncIterator[TransportFactory]:
    broker = InMemoryBroker()
    opened: list[InMemoryTransport] = []

    async def connect(client_id: str | None = None) -> InMemoryTransport:
        transport = broker.connect(client_id)
        opened.append(transport)
        return transport

    yield connect
    for transport in opened:
        await transport.close()


class TestMemoryBroker(BrokerContract):
    pass
