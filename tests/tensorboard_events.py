"""Reading a TensorBoard event file without TensorBoard: its TFRecord frames (length, CRC, an Event, CRC)."""

import struct
from collections import defaultdict

from tensorboardX.proto import event_pb2


def events(path: str) -> list:
    out = []
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            out.append(event_pb2.Event.FromString(f.read(length)))
            f.read(4)
    return out


def scalars(path: str) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the file's scalar summaries."""
    out: dict[str, list] = defaultdict(list)
    for e in events(path):
        for v in e.summary.value:
            if v.HasField("simple_value"):
                out[v.tag].append((e.step, v.simple_value))
    return dict(out)
