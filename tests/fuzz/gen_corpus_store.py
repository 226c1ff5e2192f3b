#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_key, fuzz_row, fuzz_mp, fuzz_timefmt and fuzz_store_meta
(tests/fuzz/corpus/).
Standard library only; msgpack bytes are spelled out by hand. Re-run to regenerate."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
U64 = (1 << 64) - 1


def write(corpus, name, data):
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def key(view, entity, ts, seq):
    return struct.pack(">IH", view, len(entity)) + entity + struct.pack(">QQ", U64 - ts, U64 - seq)


# ---- key ----
write("key", "valid_short", key(1, b"u1", 1795860000000000, 1))
write("key", "valid_empty_entity", key(7, b"", 0, 0))
write("key", "valid_max_entity", key(0xFFFFFFFF, b"\xee" * 256, (1 << 63) - 1, U64))
write("key", "valid_binary_entity", key(3, b"a\x00\xffb", 12345, 1 << 40))
write("key", "bad_truncated", key(1, b"u1", 5, 5)[:-1])
write("key", "bad_trailing", key(1, b"u1", 5, 5) + b"\x00")
write("key", "bad_entity_257", struct.pack(">IH", 1, 257) + b"e" * 257 + b"\xff" * 16)
write("key", "bad_negative_ts", struct.pack(">IH", 1, 1) + b"e" + struct.pack(">QQ", 5, 5))

# ---- row: payloads for the view [int64, double, float, bool, string, bytes, float_list(3), float_list]
F32 = lambda x: b"\xca" + struct.pack(">f", x)
F64 = lambda x: b"\xcb" + struct.pack(">d", x)
write("row", "valid_all_types",
      b"\x98" + b"\x2a" + F64(2.5) + F32(1.5) + b"\xc3" + b"\xa2hi" + b"\xc4\x02\x00\xff"
      + b"\x93" + F32(1.0) + b"\x02" + F64(3.0) + b"\x92" + F32(0.5) + b"\xff")
write("row", "valid_all_nil", b"\x98" + b"\xc0" * 8)
write("row", "valid_empty", b"\x90")
write("row", "valid_wide_ints", b"\x92\xd3" + struct.pack(">q", -(1 << 63)) + b"\xcd\x01\x00")
write("row", "bad_too_many", b"\x99" + b"\xc0" * 9)
write("row", "bad_dim", b"\x97" + b"\xc0" * 6 + b"\x92\x01\x02")
write("row", "bad_string_for_int", b"\x91\xa3abc")
write("row", "bad_truncated_str", b"\x95\xc0\xc0\xc0\xc0\xa5ab")
write("row", "bad_map", b"\x91\x81\x01\x02")
write("row", "bad_trailing", b"\x91\x01\x02")
write("row", "bad_nested_list", b"\x98" + b"\xc0" * 7 + b"\x91\x91\x01")
write("row", "bad_array32_huge", b"\xdd\xff\xff\xff\xff")

# ---- mp: item streams ----
write("mp", "scalars", b"\xc0\xc2\xc3\x00\x7f\xe0\xff\xcc\xff\xcd\x01\x00\xce\x00\x01\x00\x00"
      + b"\xcf\x80" + b"\x00" * 7 + b"\xd0\x80\xd1\x80\x00\xd2\xff\xff\xff\xfe\xd3" + b"\xff" * 8)
write("mp", "floats", F32(1.5) + F64(-2.25) + b"\xcb\x7f\xf8" + b"\x00" * 6)
write("mp", "strings", b"\xa3abc\xd9\x02hi\xda\x00\x01x\xdb\x00\x00\x00\x02xy\xa0")
write("mp", "binaries", b"\xc4\x01\xff\xc5\x00\x02\x01\x02\xc6\x00\x00\x00\x00")
write("mp", "arrays", b"\x93\x01\x02\x03\xdc\x00\x02" + F32(1) + F32(2) + b"\xdd\x00\x00\x00\x00")
write("mp", "row_payload", b"\x93\x2a\xa1x" + b"\x92" + F32(0.5) + F32(-0.5))
write("mp", "map_rejected", b"\x01\x81\x01\x02")
write("mp", "ext_rejected", b"\xd4\x01\x02\xc7\x01\x05\x00")
write("mp", "unused_c1", b"\x00\xc1")
write("mp", "truncated_f64", b"\xcb\x3f\xf0")
write("mp", "huge_str32", b"\xdb\xff\xff\xff\xffabc")

# ---- timefmt: strings ----
for name, s in [
    ("utc", "2026-11-28T10:00:00Z"),
    ("frac", "2026-11-28T10:00:00.123456Z"),
    ("nanos", "2026-11-28T10:00:00.123456789Z"),
    ("offset", "2026-11-28T11:30:00+01:30"),
    ("neg_offset", "1999-12-31 23:59:59-05:00"),
    ("leap_day", "2024-02-29T00:00:00z"),
    ("bad_leap_day", "2023-02-29T00:00:00Z"),
    ("leap_second", "2016-12-31T23:59:60Z"),
    ("micros", "1795860000000000"),
    ("negative_micros", "-42"),
    ("dur_90s", "90s"),
    ("dur_500ms", "500ms"),
    ("dur_30d", "30d"),
    ("dur_seconds", "600"),
    ("garbage", "2026-13-45T99:99:99Q"),
]:
    write("timefmt", name, s)

# ---- store_meta: a flags byte, then (selector, u16 BE length, bytes) meta records ----
RO, WAL, WRITE = 1, 2, 4


def rec(sel, value):
    value = value.encode() if isinstance(value, str) else value
    return bytes([sel]) + struct.pack(">H", len(value)) + value


def fmt(v):
    return rec(0, struct.pack(">I", v))


def seq(v):
    return rec(1, struct.pack(">Q", v))


def reg(json):
    return rec(2, json)


def raw(key, value):
    return rec(3, bytes([len(key)]) + key + value)


def vstat(view_id, versions, newest):
    return raw(b"vstat" + struct.pack(">I", view_id), struct.pack("<Qq", versions, newest))


REG = ('{"entities":[{"name":"card","join_key":"card_id"}],"next_view_id":3,"views":['
       '{"id":1,"name":"v","entity":"card","ttl":"10m","features":[{"name":"i","type":"int64"},'
       '{"name":"d","type":"double"},{"name":"s","type":"string"},'
       '{"name":"e","type":"float_list","dim":2}]},'
       '{"id":2,"name":"w","entity":"card","features":[{"name":"b","type":"bool"}]}]}')
write("store_meta", "empty_store", bytes([WRITE]))
write("store_meta", "valid", bytes([WRITE]) + fmt(3) + seq(41) + reg(REG) + vstat(1, 7, 1795860000000000))
write("store_meta", "valid_read_only", bytes([RO]) + fmt(3) + seq(41) + reg(REG))
write("store_meta", "valid_wal", bytes([WAL | WRITE]) + fmt(3) + seq(5) + reg(REG))
write("store_meta", "format_v1_upgrade", bytes([WRITE]) + fmt(1) + seq(2) + reg(REG))
write("store_meta", "format_future", bytes([0]) + fmt(4))
write("store_meta", "format_short", bytes([0]) + rec(0, b"\x00\x03"))
write("store_meta", "write_seq_short", bytes([WRITE]) + fmt(3) + rec(1, b"\x00\x00\x00\x29") + reg(REG))
write("store_meta", "write_seq_max", bytes([WRITE]) + fmt(3) + seq((1 << 64) - 2) + reg(REG))
write("store_meta", "registry_garbage", bytes([0]) + fmt(3) + reg('{"views":[}'))
write("store_meta", "registry_no_ids", bytes([WRITE]) + fmt(3) + reg(
    '{"entities":[{"name":"card","join_key":"card_id"}],"views":['
    '{"name":"v","entity":"card","features":[{"name":"i","type":"int64"}]},'
    '{"name":"w","entity":"card","features":[{"name":"b","type":"bool"}]}]}'))
write("store_meta", "vstat_short", bytes([WRITE]) + fmt(3) + reg(REG) + vstat(1, 1, 1)[:-3])
write("store_meta", "vstat_huge", bytes([WRITE]) + fmt(3) + reg(REG) + vstat(2, (1 << 64) - 1, -(1 << 63)))
write("store_meta", "unknown_key", bytes([0]) + fmt(3) + raw(b"zzz", b"\x01\x02"))
