"""The Redis client the state layer is given: one server's, or a Redis Cluster's.

Both are redis-py asyncio clients with the same commands (and `register_script`). Their
reply types are unions of every RESP shape, so a class here may keep its client as `Any`
inside and decode the replies itself (`replies.text_of`); what it takes is typed.
"""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

RedisClient: TypeAlias = Redis | RedisCluster
