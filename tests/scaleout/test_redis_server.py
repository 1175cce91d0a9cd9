"""The test Redis server itself: starts, answers, stops, and comes back on its port."""

from __future__ import annotations

import redis

from metamedia.testing.redis import RedisServer


def test_server_answers_and_keeps_nothing_on_disk(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
    finally:
        client.close()


def test_stopped_server_starts_again_on_the_same_port() -> None:
    with RedisServer() as server:
        port = server.port
        client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        client.set("k", "v")
        server.stop()
        assert not server.running
        try:
            client.ping()
            raise AssertionError("a stopped server answered")
        except redis.ConnectionError:
            pass
        server.start()
        assert server.port == port
        assert client.ping()
        assert client.get("k") is None  # persistence is off: a restart starts empty
        client.close()
