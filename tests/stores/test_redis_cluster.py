"""RedisStore on a real three-node Redis Cluster: one key per operation, names from every node."""

from __future__ import annotations

import asyncio
import uuid

import redis
import redis.asyncio

from fleetbreaker.stores.redis import RedisStore
from tests.helpers import open_record as rec
from tests.servers.redis_servers import ServerProcess


def test_circuits_spread_over_every_node_work_sync_and_async(
    redis_cluster_nodes: list[ServerProcess],
) -> None:
    """Circuits on all three nodes' slots: compare-and-set, load and names all work."""
    port = redis_cluster_nodes[0].port
    client = redis.RedisCluster(host="127.0.0.1", port=port)
    async_client = redis.asyncio.RedisCluster(host="127.0.0.1", port=port)
    prefix = f"fbtest:{uuid.uuid4().hex}:"
    store = RedisStore(client=client, async_client=async_client, prefix=prefix)
    names = [f"circuit-{i}" for i in range(60)]
    for name in names:
        assert store.compare_and_set(name, None, rec(1))
        assert store.compare_and_set(name, None, rec(1)) is False
    for node in redis_cluster_nodes:  # every node holds some of the circuits
        with redis.Redis(port=node.port) as direct:
            assert any(direct.scan_iter(match=prefix + "*"))
    assert sorted(store.names()) == sorted(names)

    async def scenario() -> None:
        for name in names:
            assert await store.acompare_and_set(name, 1, rec(2))
            loaded = await store.aload(name)
            assert loaded is not None
            assert loaded.epoch == 2
        await async_client.aclose()

    asyncio.run(scenario())
    client.close()
