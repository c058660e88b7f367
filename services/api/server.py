"""The HTTP protocol uvicorn serves the API with: its automatic choice (httptools when
installed, else h11) with TCP_NODELAY on every connection.

asyncio sets TCP_NODELAY only when the listening socket says IPPROTO_TCP, and the socket
uvicorn binds itself for several worker processes says 0: responses then stall about 40 ms
on Nagle's algorithm and the client's delayed ACK (headers and body go out as two writes).
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    def connection_made(self, transport: asyncio.Transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
