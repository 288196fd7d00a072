"""Serial heartbeat media (`serial /dev/ttyS0` + `baud`): framed datagrams over a raw tty."""

from __future__ import annotations

import asyncio
import os

import serial

from hastack.config.model import Link
from hastack.transport.base import LinkEndpoint, ReceiveCallback
from hastack.transport.framing import FrameDecoder, encode_frame

# A serial line is slow (19200 baud is ~2 KB/s). When frames queue up faster than the line
# drains them, newer heartbeats are worth more than older ones: beyond this many queued bytes a
# new frame is dropped and counted as a send error instead of growing the queue.
MAX_QUEUED = 8192
RETRY_READ_AFTER = 1.0  # seconds


class SerialEndpoint(LinkEndpoint):
    def __init__(self, link: Link, on_receive: ReceiveCallback) -> None:
        super().__init__(link, on_receive)
        self.port: serial.Serial | None = None
        self.decoder = FrameDecoder()
        self._out = bytearray()
        self._fd = -1
        self._writing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        device = self.link.device or self.link.name
        try:
            # pyserial puts the tty in raw mode (no echo, no line discipline, 8N1).
            port = serial.Serial(device, baudrate=self.link.baud, timeout=0, exclusive=True)
        except serial.SerialException as exc:
            raise OSError(f"{self.name}: cannot open {device}: {exc}") from exc
        self.port = port
        self._fd = port.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)

    def send(self, data: bytes) -> None:
        if self.port is None:
            return
        frame = encode_frame(data)
        if len(self._out) + len(frame) > MAX_QUEUED:
            self.send_errors.record(self.name, "line congested: frame dropped")
            return
        self._out += frame
        self.stats.tx += 1
        self.stats.tx_bytes += len(data)
        self._flush()

    def _flush(self) -> None:
        while self._out:
            try:
                written = os.write(self._fd, self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # EIO when the other end of a pty went away, ...
                self.send_errors.record(self.name, exc)
                self._out.clear()
                break
            del self._out[:written]
        want_writer = bool(self._out)
        if want_writer != self._writing and self._loop is not None:
            if want_writer:
                self._loop.add_writer(self._fd, self._flush)
            else:
                self._loop.remove_writer(self._fd)
            self._writing = want_writer

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO: the line hung up (the other end of a pty closed)
            self.receive_errors.record(self.name, exc)
            self._pause_reading()
            return
        if not data:
            self._pause_reading()
            return
        bad_before = self.decoder.bad_frames
        for payload in self.decoder.feed(data):
            self.deliver(payload)
        self.stats.rx_errors += self.decoder.bad_frames - bad_before
        self.batch_end()

    def _pause_reading(self) -> None:
        """Stop polling a hung-up line for a while instead of spinning on its errors."""
        if self._loop is None or self.port is None:
            return
        self._loop.remove_reader(self._fd)
        self._loop.call_later(RETRY_READ_AFTER, self._resume_reading)

    def _resume_reading(self) -> None:
        if self._loop is not None and self.port is not None:
            self._loop.add_reader(self._fd, self._on_readable)

    def close(self) -> None:
        port, self.port = self.port, None
        if port is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
            if self._writing:
                self._loop.remove_writer(self._fd)
        self._writing = False
        port.close()
