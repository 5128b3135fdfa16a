#!/usr/bin/env python3
"""Decode every message of a rosbag2 MCAP file with the mcap-ros2-support package, from the
ros2msg definitions in the file alone, and print a JSON summary: messages per topic and the
first message of each topic as plain values. The Autoware import test compares it with what it
wrote, so the CDR layout of our Autoware message types is checked by an independent decoder.

Usage: decode_ros2_bag.py BAG.mcap
"""
import json
import sys

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


def plain(value):
    """A decoded ROS message (or field) as JSON-able values."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    slots = getattr(value, "__slots__", None)
    if slots:
        return {name: plain(getattr(value, name)) for name in slots}
    return {k: plain(v) for k, v in vars(value).items() if not k.startswith("_")}


def main(path):
    counts = {}
    first = {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _schema, channel, _message, decoded in reader.iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic not in first:
                first[channel.topic] = plain(decoded)
    json.dump({"counts": counts, "first": first}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
