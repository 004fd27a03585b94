"""The transport's buffered socket hands paho the same bytes, in the sizes it
asks for, with one system call per chunk the network delivered."""

from __future__ import annotations

import pytest

from adapters.mqtt.transport import BufferedSocket


class ChunkedSocket:
    """A non-blocking socket whose peer sent ``chunks``; counts its recv calls."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.calls = 0
        self.closed = False

    def recv(self, size: int) -> bytes:
        self.calls += 1
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        if len(chunk) > size:
            self.chunks.insert(0, chunk[size:])
        return chunk[:size]

    def fileno(self) -> int:
        return 7

    def close(self) -> None:
        self.closed = True


def packets(count: int) -> bytes:
    """MQTT PUBLISH packets (type byte, one-byte length, body) back to back."""
    return b"".join(bytes([0x30, 10]) + f"payload-{n:02d}"[:10].encode() for n in range(count))


def read_like_paho(sock: BufferedSocket) -> list[bytes]:
    """paho's reads: type byte, then the length byte, then the body."""
    out = []
    while sock.pending():
        head = sock.recv(1) + sock.recv(1)
        out.append(head + sock.recv(head[1]))
    return out


def test_paho_reads_come_from_one_recv_per_chunk() -> None:
    stream = packets(20)
    raw = ChunkedSocket(stream)
    sock = BufferedSocket(raw)
    first = sock.recv(1)
    assert first == b"\x30" and raw.calls == 1
    assert sock.pending() == len(stream) - 1
    rest = first + sock.recv(1) + sock.recv(10)
    rest += b"".join(read_like_paho(sock))
    assert rest == stream
    assert raw.calls == 1 and sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # nothing buffered: the socket's own answer


def test_a_packet_split_across_chunks_reads_whole() -> None:
    stream = packets(3)
    raw = ChunkedSocket(stream[:17], stream[17:])
    sock = BufferedSocket(raw)
    got = b""
    while len(got) < len(stream):
        got += sock.recv(len(stream) - len(got))
    assert got == stream and raw.calls == 2


def test_closed_connection_and_the_rest_of_the_socket_pass_through() -> None:
    raw = ChunkedSocket(b"")
    sock = BufferedSocket(raw)
    assert sock.recv(1) == b""
    assert sock.fileno() == 7
    sock.close()
    assert raw.closed


def test_pending_adds_what_an_ssl_socket_holds() -> None:
    class SslLike(ChunkedSocket):
        def pending(self) -> int:
            return 5

    sock = BufferedSocket(SslLike(b"abc"))
    assert sock.recv(1) == b"a"
    assert sock.pending() == 2 + 5
