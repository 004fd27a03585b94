"""The transport's buffered socket hands paho the same bytes, in the sizes it
asks for, reading the socket a bounded number of times per turn of the reader."""

from __future__ import annotations

import pytest

from adapters.mqtt.transport import _READS_PER_TURN, BufferedSocket


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


def turn(sock: BufferedSocket, partial: bytes = b"") -> tuple[list[bytes], bytes]:
    """One turn of aiomqtt's reader: paho's reads (type byte, length byte,
    body; a short read leaves the packet partial) while ``pending``."""
    done = []
    while True:
        try:
            while len(partial) < 2 or len(partial) < 2 + partial[1]:
                need = 1 if len(partial) < 2 else 2 + partial[1] - len(partial)
                got = sock.recv(need)
                if not got:
                    raise ConnectionError
                partial += got
            done.append(partial)
            partial = b""
        except BlockingIOError:
            pass
        if sock.pending() <= 0:
            return done, partial


def test_a_turn_reads_the_socket_once_for_many_packets() -> None:
    stream = packets(20)
    raw = ChunkedSocket(stream)
    sock = BufferedSocket(raw)
    done, partial = turn(sock)
    assert b"".join(done) == stream and partial == b""
    assert raw.calls == 1 and sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # a new turn, nothing sent: the socket's own answer
    assert raw.calls == 2


def test_a_packet_cut_by_the_chunk_waits_for_the_next_turn() -> None:
    stream = packets(3)
    chunks = [b"x" * 3] * (_READS_PER_TURN - 1)  # a packet's body 3 bytes a chunk...
    raw = ChunkedSocket(bytes([0x30, 3 * _READS_PER_TURN + 3]), *chunks, b"y" * 6, stream)
    sock = BufferedSocket(raw)
    done, partial = turn(sock)  # ...read up to the turn's last read, then cut
    assert done == [] and len(partial) == 2 + 3 * _READS_PER_TURN - 3
    assert raw.calls == _READS_PER_TURN
    (whole,), partial = turn(sock, partial)
    assert whole.endswith(b"y" * 6) and partial == b""
    rest, partial = turn(sock)
    assert b"".join(rest) == stream and partial == b""


def test_closed_connection_and_the_rest_of_the_socket_pass_through() -> None:
    raw = ChunkedSocket(b"")
    sock = BufferedSocket(raw)
    assert sock.recv(1) == b""
    assert sock.fileno() == 7
    sock.close()
    assert raw.closed
