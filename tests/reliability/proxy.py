"""A small toxiproxy-like TCP proxy: forwards bytes both ways and can delay them.

Put between the gateway and a stage, it makes the stage slow (or unreachable) without any
test hook in production code. It runs its own event loop in a thread, so the process under
test and the test's own asyncio loop are both left alone. The delay is a fixed latency added
to every chunk in both directions (order kept, throughput not limited), like toxiproxy's
latency toxic; `latency_s` may be changed while connections are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LatencyProxy:
    upstream_host: str
    upstream_port: int
    latency_s: float = 0.0
    port: int = 0
    connections: int = 0  # accepted so far
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _server: asyncio.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LatencyProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"proxy->{self.upstream_port}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def reset(self) -> None:
        """Closes every open connection (both sides see a reset, as on a network cut)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._close_all)

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            self._close_all()
            # Every connection's tasks end here, on their own loop, not in a later garbage collection.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer),
                self._pipe(upstream_reader, client_writer),
            )
        finally:
            for writer in (client_writer, upstream_writer):
                self._writers.discard(writer)
                writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Reads chunks as they come and writes each one `latency_s` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                arrived, data = await queue.get()
                if not data:
                    break
                wait = arrived + self.latency_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        delivery = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic(), data))
                if not data:
                    break
            await delivery
        except (ConnectionError, OSError):
            pass
        finally:
            if not delivery.done():
                delivery.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    await delivery
