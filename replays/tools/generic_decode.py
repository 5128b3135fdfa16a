"""Decodes replay logs with the generic Python MCAP reader and only the schemas embedded in the
logs (no access to our .proto files or code), the way third-party tools see them.

Usage: python3 replays/tools/generic_decode.py LOG.mcap [LOG.mcap ...]
Needs: pip install mcap mcap-protobuf-support
Exit code 1 when a log has a message that does not decode, or no messages.
"""
import collections
import sys

from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory

failed = False
for path in sys.argv[1:]:
    counts = collections.Counter()
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, proto in reader.iter_decoded_messages():
            if proto is None or schema is None or schema.encoding != "protobuf":
                print(f"{path}: message on {channel.topic} did not decode")
                failed = True
                continue
            counts[type(proto).DESCRIPTOR.full_name] += 1
    if not counts or "v2x.v1.ReplayMeta" not in counts:
        print(f"{path}: no v2x.v1 messages decoded")
        failed = True
    print(f"{path}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
sys.exit(1 if failed else 0)
