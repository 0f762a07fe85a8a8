"""A TCP proxy the harness controls, to cut one worker off from its agent without root
or network namespaces.

Each ``Proxy`` listens on a port of its own and forwards every connection to the agent's
server. ``partition("blackhole")`` stops moving bytes both ways (connections stay open,
new ones are accepted and held, as when packets are dropped) until ``heal()``, when the
held bytes flow again, as TCP's retransmissions would; ``partition("reset")`` closes every
connection with a RST and resets new ones until ``heal()``. All proxies of a ``ProxyHub``
run on one asyncio loop in a daemon thread; their methods are called from other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

_CHUNK = 65536


class Proxy:
    """One listening port forwarding to ``target``; see the module docstring."""

    def __init__(self, hub: ProxyHub, target: tuple[str, int]) -> None:
        self.hub = hub
        self.target = target
        self.port = 0
        self.mode = "up"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.base_events.Server | None = None

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            _reset(writer)
            return
        await self._flowing.wait()  # blackholed: the connection hangs, unanswered
        if self.mode == "reset":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._links.discard(link)
            for w in link:
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()  # bytes read just before a partition are held
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _partition(self, mode: str) -> None:
        self.mode = mode
        self._flowing.clear()
        if mode == "reset":
            for link in list(self._links):
                for w in link:
                    _reset(w)
            self._links.clear()

    async def _heal(self) -> None:
        self.mode = "up"
        self._flowing.set()

    async def _close(self) -> None:
        self._flowing.set()
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for w in link:
                _reset(w)

    # -- from other threads ---------------------------------------------------------------
    def partition(self, mode: str = "blackhole") -> None:
        """Cut the link: ``blackhole`` (hold every byte) or ``reset`` (RST everything)."""
        if mode not in ("blackhole", "reset"):
            raise ValueError(f"mode {mode!r}: use 'blackhole' or 'reset'")
        self.hub.call(self._partition(mode))

    def heal(self) -> None:
        """Let bytes flow again."""
        self.hub.call(self._heal())

    def close(self) -> None:
        self.hub.call(self._close())


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST (SO_LINGER 0), as a peer's dead connection looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ProxyHub:
    """The loop thread all proxies of a run live on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.proxies: list[Proxy] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="chaos-proxy",
                                        daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def proxy(self, target: tuple[str, int]) -> Proxy:
        """A new proxy to ``target``, listening on ``proxy.port``."""
        async def make() -> Proxy:
            p = Proxy(self, target)
            await p._open()
            return p

        made: Proxy = self.call(make())
        self.proxies.append(made)
        return made

    def close(self) -> None:
        for p in self.proxies:
            with contextlib.suppress(Exception):
                p.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
