#!/usr/bin/python3
"""Writes the seed corpus of fuzz_wal (tests/fuzz/corpus/wal): log segments and a checkpoint file
in the formats of src/store/wal.h. Run from the repository root."""
import os
import struct

POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def op(kind, db, key, val=b""):
    return struct.pack("<BBHI", kind, db, len(key), len(val)) + key + val


def record(txnid, payload):
    mid = struct.pack("<IQ", len(payload), txnid)
    crc = crc32c(payload, crc32c(mid))
    return b"FRWL" + mid + struct.pack("<I", crc) + payload


out = "tests/fuzz/corpus/wal"
os.makedirs(out, exist_ok=True)
row_key = struct.pack(">IH", 1, 3) + b"u42" + b"\xff" * 16
r1 = record(7, op(1, 1, row_key, b"\0" * 8 + b"\x92\x01\xc4\x00")
            + op(1, 0, b"write_seq", struct.pack(">Q", 9)))
r2 = record(8, op(2, 1, row_key) + op(1, 2, b"src\0\0\0\0\0", struct.pack("<q", 5)))
seeds = {
    "one_record": r1,
    "two_records": r1 + r2,
    "torn_tail": r1 + r2[:-3],
    "bad_crc": r1[:-1] + bytes([r1[-1] ^ 1]),
    "bad_op_in_good_record": record(9, op(1, 7, b"k", b"v")),
    "empty_payload": record(10, b""),
}
meta = bytes(range(256))
body = (b"FRCK" + struct.pack("<IQQQQI", 1, 7, 1 << 20, 12345, 2, 4096) + meta + meta[::-1])
seeds["checkpoint"] = body + struct.pack("<I", crc32c(body))
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
