#!/usr/bin/env python3
"""Decodes UPER MessageFrames with asn1tools (an independent ASN.1 implementation) compiling the
same transcribed T/CSAE 53-2020 modules as the Rust bindings, for the cross-check test.

Input (stdin): one hex-encoded UPER MessageFrame per line.
Output (stdout): one JSON object per line:
  {"value": <the decoded frame>, "reencoded_equal": <asn1tools re-encodes the same bytes>}
or {"error": "<message>"} when asn1tools cannot decode the line.

The decoded value is written as the X.697 JSON encoding rules would: a CHOICE as
{"alternative": value}, OCTET STRING and BIT STRING as hexadecimal text, ENUMERATED as its
identifier, absent OPTIONAL components left out.
"""

import glob
import json
import os
import sys

import asn1tools

HERE = os.path.dirname(os.path.abspath(__file__))
ASN1_DIR = os.path.join(os.path.dirname(HERE), "asn1")


def to_json(value):
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, tuple):
        if len(value) == 2 and isinstance(value[0], str):
            return {value[0]: to_json(value[1])}
        if len(value) == 2 and isinstance(value[0], (bytes, bytearray)):
            data, bits = value
            return {"bits": bytes(data).hex(), "length": bits}
        raise ValueError(f"unexpected tuple {value!r}")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


def main():
    spec = asn1tools.compile_files(sorted(glob.glob(os.path.join(ASN1_DIR, "*.asn"))), "uper")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        data = bytes.fromhex(line)
        try:
            value = spec.decode("MessageFrame", data)
            again = spec.encode("MessageFrame", value)
            print(json.dumps({"value": to_json(value), "reencoded_equal": bytes(again) == data}))
        except Exception as e:  # every failure is reported to the test, which fails on it
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
