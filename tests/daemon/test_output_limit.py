"""limits.output keeps the first and the last half of the limit (jobsd.output.OutputWriter, jobsd.output_ring):
real files in a temporary run folder, read back as a follower reads them."""
from __future__ import annotations

import os

from jobsd.output import STDERR, STDOUT, OutputReader, OutputWriter

T0 = 1_700_000_000_000_000_000


def _read(folder: str) -> list[tuple[int, bytes]]:
    reader = OutputReader(folder, 1)
    try:
        return [(c.stream, c.data) for c in reader.chunks(reader.records(0, 10_000))]
    finally:
        reader.close()


def _joined(chunks: list[tuple[int, bytes]], stream: int | None = None) -> bytes:
    return b"".join(data for s, data in chunks if stream is None or s == stream)


def test_output_within_the_limit_is_kept_whole_with_no_marker_and_no_spill_file(tmp_path):
    writer = OutputWriter(str(tmp_path), 1, cap=100)
    for i in range(10):
        writer.write(STDOUT if i % 2 else STDERR, b"%d" % i * 10, T0 + i)
    writer.close()
    assert (writer.stored, writer.dropped) == (100, 0)
    assert _joined(_read(str(tmp_path))) == b"".join(b"%d" % i * 10 for i in range(10))
    assert sorted(os.listdir(tmp_path)) == ["attempt-1.idx", "attempt-1.log"]


def test_output_over_the_limit_keeps_its_first_and_last_half_around_a_marker_line(tmp_path):
    lines = [b"line %04d\n" % i for i in range(1000)]  # 10 bytes each, 10,000 in all
    writer = OutputWriter(str(tmp_path), 1, cap=1000)
    for i, line in enumerate(lines):
        writer.write(STDERR if i == 999 else STDOUT, line, T0 + i * 1000)
    assert writer.dropped == 10_000 - 1000  # counted as it goes, before the end
    writer.close()
    assert (writer.stored, writer.dropped) == (1000, 9000)
    chunks = _read(str(tmp_path))
    marker = (b"--- jobsd: 9000 bytes of output dropped here (limits.output = 1000 keeps the first 500 "
              b"and the last 500) ---\n")
    assert _joined(chunks) == b"".join(lines[:50]) + marker + b"".join(lines[950:])
    assert _joined(chunks, STDERR) == marker + b"line 0999\n"  # streams kept, the marker told apart from stdout
    assert os.path.getsize(tmp_path / "attempt-1.log") == 1000 + len(marker)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_cut_mid_line_puts_the_marker_on_a_line_of_its_own_and_one_huge_write_keeps_its_ends(tmp_path):
    writer = OutputWriter(str(tmp_path), 1, cap=10)
    writer.write(STDOUT, b"abcdefghijklmnopqrstuvwxyz", T0)
    writer.close()
    text = _joined(_read(str(tmp_path)))
    assert text.startswith(b"abcde\n--- jobsd: 16 bytes of output dropped here") and text.endswith(b"---\nvwxyz")
    assert (writer.stored, writer.dropped) == (10, 16)


def test_the_ring_wraps_over_many_writes_and_keeps_each_kept_byte_with_its_stream(tmp_path):
    writer = OutputWriter(str(tmp_path), 1, cap=2 * 997)
    sent = []
    for i in range(3000):
        stream, data = (STDOUT, b"o" * (i % 13 + 1)) if i % 3 else (STDERR, b"E" * (i % 7 + 1))
        sent.append((stream, data))
        writer.write(stream, data, T0 + i)
    writer.close()
    per_byte = [(stream, bytes([b])) for stream, data in sent for b in data]
    chunks = _read(str(tmp_path))
    marker = b"\n--- jobsd: %d bytes of output dropped here (limits.output = 1994 keeps the first 997 and the last 997) ---\n" \
        % (len(per_byte) - 2 * 997)
    got = [(s, bytes([b])) for s, data in chunks for b in data]
    assert got == per_byte[:997] + [(STDERR, bytes([b])) for b in marker] + per_byte[-997:]
    assert writer.dropped == len(per_byte) - 2 * 997


def test_a_zero_limit_stores_nothing_and_counts_everything(tmp_path):
    writer = OutputWriter(str(tmp_path), 1, cap=0)
    writer.write(STDOUT, b"x" * 5000, T0)
    writer.close()
    assert (writer.stored, writer.dropped) == (0, 5000)
    assert _read(str(tmp_path)) == []
