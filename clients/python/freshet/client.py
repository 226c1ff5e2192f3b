"""Implementation of the Freshet client (see the package docstring for the manual).

Layers, bottom up:
  _Conn      framing over one TCP socket (u32 body_len · u32 request_id · u16 op · protobuf body,
             big-endian; replies carry op | 0x8000 and may arrive out of order, so they are matched
             by request id);
  encoding   msgpack row payloads in the view's feature order, typed per feature;
  decoding   GetResponse (rows[e * len(views) + v], columns → (view, index, type)) into typed
             per-feature columns with statuses;
  Client     the public calls.
"""

import datetime as _dt
import json
import math
import operator
import os
import socket
import ssl
import struct
import time

import msgpack
import numpy as np
import pandas as pd

from . import freshet_pb2 as pb

# ---- constants mirrored from include/freshet/{err,types}.h (the numbers travel on the wire) ----

ERROR_NAMES = {
    0: "OK", -1: "BAD_REQUEST", -2: "UNKNOWN_VIEW", -3: "UNKNOWN_FEATURE", -4: "TYPE_MISMATCH",
    -5: "TOO_LARGE", -6: "FUTURE_EVENT", -7: "UNAUTHORIZED", -8: "BAD_REGISTRY", -9: "INCOMPATIBLE",
    -10: "BAD_OP", -11: "BAD_ARG", -12: "NOT_FOUND", -13: "BAD_MODEL", -14: "UNSUPPORTED",
    -40: "NOMEM", -41: "STORAGE", -42: "STORAGE_FULL", -43: "INTERNAL", -44: "IO", -45: "CLOSED",
    -46: "BUSY", -47: "TIMEOUT", -48: "SHUTDOWN",
}
_ERROR_CODES = {v: k for k, v in ERROR_NAMES.items()}
_RETRYABLE = {"BUSY", "IO", "CLOSED", "TIMEOUT", "SHUTDOWN"}

NOT_FOUND, PRESENT, EXPIRED, NULL = 0, 1, 2, 3
STATUS_NAMES = {NOT_FOUND: "NOT_FOUND", PRESENT: "PRESENT", EXPIRED: "EXPIRED", NULL: "NULL"}

TYPE_NAMES = {1: "int64", 2: "double", 3: "float", 4: "bool", 5: "string", 6: "bytes",
              7: "float_list"}
_TYPE_CODES = {v: k for k, v in TYPE_NAMES.items()}

_RESP = 0x8000
_HDR = struct.Struct(">IIH")
PUT_BATCH_ROWS = 1000
PUT_WINDOW = 8
PUT_BUSY_RETRIES = 12
EXPORT_CHUNK_ROWS = 10000
EXPORT_WINDOW = 4
EXPORT_CONNECTIONS = 2  # export_pit: chunks spread over this many connections (server workers)


class FreshetError(Exception):
    """A refused request or a failed call. code_name: "UNKNOWN_VIEW", ...; code: its number;
    message: the server's (or client's) sentence; row_index: for put, the offending row."""

    def __init__(self, code_name, message, row_index=None):
        self.code_name = code_name
        self.code = _ERROR_CODES.get(code_name, -43)
        self.message = message
        self.row_index = row_index
        super().__init__(f"{code_name}: {message}")

    @property
    def retryable(self):
        return self.code_name in _RETRYABLE


def _check(resp):
    """Raises FreshetError unless the response's code is 0."""
    if resp.code != 0:
        raise FreshetError(ERROR_NAMES.get(resp.code, f"ERROR_{resp.code}"), resp.message)
    return resp


# ---- time conversion ----

def to_us(t, what="time"):
    """Microseconds since the epoch from an int, datetime, pandas Timestamp, numpy datetime64 or
    RFC 3339 string (a string of digits is microseconds). Naive values are UTC."""
    if isinstance(t, (bool, np.bool_)):
        raise FreshetError("BAD_ARG", f"{what}: a bool is not a time")
    if isinstance(t, (int, np.integer)):
        return int(t)
    if isinstance(t, str):
        s = t.strip()
        if s.isdigit() or (s[:1] == "-" and s[1:].isdigit()):
            return int(s)
        try:
            ts = pd.Timestamp(s)
        except (ValueError, TypeError, OverflowError) as e:
            raise FreshetError("BAD_ARG", f"{what}: unparseable timestamp {t!r} ({e})") from None
    elif isinstance(t, (_dt.datetime, np.datetime64, pd.Timestamp)):
        ts = pd.Timestamp(t)
    else:
        raise FreshetError("BAD_ARG", f"{what}: {type(t).__name__} is not a time "
                                      "(int microseconds, datetime, Timestamp or RFC 3339 string)")
    if ts is pd.NaT or pd.isna(ts):
        raise FreshetError("BAD_ARG", f"{what}: missing timestamp")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.value // 1000


def _series_to_us(s, what):
    """A whole column of times to an int64 numpy array of microseconds (vectorised where the dtype
    allows). Raises BAD_ARG naming the first bad row."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if s.isna().any():
            row = int(np.flatnonzero(s.isna().to_numpy())[0])
            raise FreshetError("BAD_ARG", f"row {row}, column \"{what}\": missing timestamp")
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.to_numpy(dtype="datetime64[ns]").astype(np.int64) // 1000
    if pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        if s.isna().any():
            row = int(np.flatnonzero(s.isna().to_numpy())[0])
            raise FreshetError("BAD_ARG", f"row {row}, column \"{what}\": missing timestamp")
        return s.to_numpy(dtype=np.int64)
    out = np.empty(len(s), dtype=np.int64)
    for i, v in enumerate(s.tolist()):
        try:
            out[i] = to_us(v, f"row {i}, column \"{what}\"")
        except FreshetError:
            raise
        except Exception as e:  # noqa: BLE001 (anything unparseable)
            raise FreshetError("BAD_ARG", f"row {i}, column \"{what}\": {e}") from None
    return out


def _us_to_series(us, mask=None):
    """int64 microseconds (NaT where mask is False) → datetime64[ns, UTC] values."""
    arr = np.asarray(us, dtype=np.int64) * 1000
    dt = arr.astype("datetime64[ns]")
    if mask is not None:
        dt[~np.asarray(mask, dtype=bool)] = np.datetime64("NaT")
    return pd.DatetimeIndex(dt).tz_localize("UTC")


# ---- values ----

def _is_null(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)) and v != v:
        return True
    return False


def _entity_bytes(v, what):
    if isinstance(v, bytes):
        b = v
    elif isinstance(v, str):
        b = v.encode()
    elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        b = str(int(v)).encode()
    else:
        raise FreshetError("BAD_ARG", f"{what}: entity id {v!r} is not a str, bytes or int")
    if not b:
        raise FreshetError("BAD_ARG", f"{what}: empty entity id")
    return b


def _ids_bytes(s, col, first_row):
    """The entity ids of a Series (or a list) as bytes: an integer Series without missing values
    converted by numpy at once, anything else id by id (with _entity_bytes's errors, naming the
    row)."""
    if isinstance(s, pd.Series):
        if pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) \
                and not s.isna().any():
            return np.asarray(s.to_numpy()).astype("S").tolist()
        s = s.tolist()
    return [_entity_bytes(v, f"row {first_row + i}, column \"{col}\"") for i, v in enumerate(s)]


def _check_ids(s, col):
    """Raises BAD_ARG naming the first row of a Series whose entity id is missing, empty or not a
    str/bytes/int (vectorised for integer and string columns)."""
    if pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) \
            and not s.isna().any():
        return
    vals = s.tolist()
    ok = np.fromiter(((isinstance(v, (str, bytes)) and len(v) > 0)
                      or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)))
                      for v in vals), dtype=bool, count=len(vals))
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise FreshetError("BAD_ARG", f"row {row}, column \"{col}\": entity id {vals[row]!r} is "
                                      "missing, empty or not a str, bytes or int")


_F32 = struct.Struct(">f")
_NIL = b"\xc0"


def _mp_array_header(n):
    if n < 16:
        return bytes([0x90 | n])
    if n < 65536:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


_F32_MAX = float(np.finfo(np.float32).max)


def _beyond_f32(x):
    """A finite float too large for float32."""
    return math.isfinite(x) and abs(x) > _F32_MAX


def _enc_float32(x):
    return b"\xca" + _F32.pack(x)


def _enc_float_list(v):
    return _mp_array_header(len(v)) + b"".join(b"\xca" + _F32.pack(float(x)) for x in v)


def _ext_header(nbytes, code):
    """The msgpack ext header of a packed run of nbytes (src/proto/mp.h)."""
    if nbytes in (4, 8, 16):
        return bytes([{4: 0xd6, 8: 0xd7, 16: 0xd8}[nbytes], code])
    if nbytes < 256:
        return bytes([0xc7, nbytes, code])
    if nbytes < 65536:
        return b"\xc8" + struct.pack(">H", nbytes) + bytes([code])
    return b"\xc9" + struct.pack(">I", nbytes) + bytes([code])


def _packed_payloads(cols, feats, n):
    """Payloads in the server's stored form, built with numpy, for a DataFrame put to a view
    whose features are all double (or all float), each given as a numeric column: every row one
    packed run. A row with a missing value is None (the caller encodes it value by value); None
    for the whole put when the view or the columns do not qualify."""
    types = {t for _, t in feats}
    if n == 0 or len(feats) < 4 or len(types) != 1 or not types <= {"double", "float"}:
        return None
    series = [cols.get(f) for f, _ in feats]
    if any(s is None or not isinstance(s, pd.Series) or pd.api.types.is_bool_dtype(s.dtype)
           or not (pd.api.types.is_float_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype))
           for s in series):
        return None
    m = np.column_stack([s.to_numpy(dtype=np.float64, na_value=np.nan) for s in series])
    code, dt = (2, "<f8") if types == {"double"} else (1, "<f4")
    body = np.ascontiguousarray(m.astype(dt)).tobytes()
    width = len(feats) * np.dtype(dt).itemsize
    head = b"\x91" + _ext_header(width, code)
    out = [head + body[i * width:(i + 1) * width] for i in range(n)]
    for i in np.flatnonzero(np.isnan(m).any(axis=1)).tolist():
        out[i] = None
    return out


def _value_normalizer(ftype, fname):
    """A function: Python value → the value to pack for this feature type (None for null).
    Raises TYPE_MISMATCH where Python would otherwise silently convert (a str for an int64...)."""

    def check(cond, v):
        if not cond:
            raise FreshetError("TYPE_MISMATCH", f"values.{fname}: expected {ftype}, got {v!r}")

    def number(v):
        check(isinstance(v, (int, float, np.integer, np.floating))
              and not isinstance(v, (bool, np.bool_)), v)
        return float(v)

    if ftype == "int64":
        def norm(v):
            if isinstance(v, (float, np.floating)):
                check(float(v).is_integer(), v)
                return int(v)
            check(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)), v)
            return int(v)
    elif ftype == "double":
        norm = number
    elif ftype == "float":
        def norm(v):
            x = number(v)
            if _beyond_f32(x):
                raise FreshetError("BAD_ARG", f"values.{fname}: {v!r} is out of the float32 range")
            return x
    elif ftype == "bool":
        def norm(v):
            check(isinstance(v, (bool, np.bool_)), v)
            return bool(v)
    elif ftype == "string":
        def norm(v):
            check(isinstance(v, str), v)
            return v
    elif ftype == "bytes":
        def norm(v):
            check(isinstance(v, (bytes, bytearray, memoryview, str)), v)
            return v.encode() if isinstance(v, str) else bytes(v)
    elif ftype == "float_list":
        def norm(v):
            check(isinstance(v, (list, tuple, np.ndarray)), v)
            xs = [number(x) for x in v]
            if any(_beyond_f32(x) for x in xs):
                raise FreshetError("BAD_ARG", f"values.{fname}: an element is out of the float32 "
                                              "range")
            return xs
    else:
        def norm(v):  # a type this client does not know: send what msgpack makes of it
            return v

    def normalize(v):
        return None if _is_null(v) else norm(v)
    return normalize


def _fast_column(series, ftype, fname):
    """Vectorised normalisation of a numeric DataFrame column (None = null), or None when the
    column needs the per-value path."""
    dt = series.dtype
    if pd.api.types.is_bool_dtype(dt):
        return None
    if ftype in ("double", "float") and (pd.api.types.is_float_dtype(dt)
                                         or pd.api.types.is_integer_dtype(dt)):
        arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if ftype == "float":
            big = np.flatnonzero(np.isfinite(arr) & (np.abs(arr) > _F32_MAX))
            if big.size:
                i = int(big[0])
                raise FreshetError("BAD_ARG", f"row {i}: values.{fname}: {arr[i]!r} is out of "
                                              "the float32 range", row_index=i)
        out = arr.tolist()
        for i in np.flatnonzero(np.isnan(arr)).tolist():
            out[i] = None
        return out
    if ftype == "int64" and pd.api.types.is_integer_dtype(dt):
        if series.isna().any():
            return [None if x is pd.NA else int(x) for x in series.tolist()]
        return series.to_numpy(dtype=np.int64).tolist()
    return None


_PACK_NATIVE = {"int64", "double", "bool", "string", "bytes"}  # msgpack's own encoding is right


def _pack_value(v, ftype, packb):
    if v is None:
        return _NIL
    if ftype == "float":
        return _enc_float32(v)
    if ftype == "float_list":
        return _enc_float_list(v)
    return packb(v)


def _decode_value(v, ftype):
    """A decoded msgpack item → the Python value of a column of this type (None for nil)."""
    if v is None:
        return None
    if ftype == "bytes" and isinstance(v, str):
        return v.encode()
    if ftype == "string" and isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if ftype in ("double", "float") and isinstance(v, int):
        return float(v)
    if ftype == "float_list":
        if isinstance(v, bytes):
            return np.frombuffer(v, dtype="<f4").astype(float).tolist()
        return [float(x) for x in v]
    return v


def _column_array(values, ftype):
    """A list of Python values (None = missing), or a float array (NaN = missing) → a typed
    pandas/numpy array."""
    if isinstance(values, np.ndarray):
        return values
    if ftype in ("double", "float"):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if ftype == "int64":
        return pd.array(values, dtype="Int64")
    if ftype == "bool":
        return pd.array(values, dtype="boolean")
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _keep(values, keep):
    """values where keep, else missing: a float array stays an array (NaN), a list gets None."""
    if isinstance(values, np.ndarray):
        return np.where(keep, values, np.nan)
    return [v if k else None for v, k in zip(values, keep)]


# Packed runs (the server's stored form, src/proto/mp.h): a msgpack ext item of type 1 (2) whose
# data is n little-endian float32 (float64) values stands for n consecutive cells of the row.
_RUN_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8")}


class _Run(list):
    """The cells of one packed run, inside a decoded row until _unpack_row flattens it."""


def _ext_hook(code, data):
    dt = _RUN_DTYPES.get(code)
    if dt is None or not data or len(data) % dt.itemsize:
        raise FreshetError("BAD_REQUEST", f"malformed reply: msgpack ext type {code} in a row")
    return _Run(np.frombuffer(data, dtype=dt).tolist())


def _unpack_row(payload):
    """A stored row payload → its list of cells (None = nil), packed runs expanded."""
    try:
        arr = msgpack.unpackb(payload, raw=False, ext_hook=_ext_hook)
    except FreshetError:
        raise
    except Exception as e:  # noqa: BLE001 (msgpack's exceptions)
        raise FreshetError("BAD_REQUEST", f"malformed reply: row values: {e}") from None
    if not isinstance(arr, list):
        raise FreshetError("BAD_REQUEST", "malformed reply: row values are not an array")
    if any(type(x) is _Run for x in arr):
        flat = []
        for x in arr:
            if type(x) is _Run:
                flat.extend(x)
            else:
                flat.append(x)
        return flat
    return arr


def _single_run_header(payload):
    """(header length, dtype) when a payload is an array of exactly one packed run, else None."""
    if len(payload) < 3 or payload[0] != 0x91:
        return None
    tag = payload[1]
    if tag in (0xd6, 0xd7, 0xd8):
        h = 3
    elif tag == 0xc7:
        h = 4
    elif tag == 0xc8:
        h = 5
    elif tag == 0xc9:
        h = 7
    else:
        return None
    dt = _RUN_DTYPES.get(payload[h - 1]) if len(payload) > h else None
    if dt is None or (len(payload) - h) % dt.itemsize:
        return None
    return h, dt


def _packed_matrix(payloads):
    """The rows of one view as a float matrix in one numpy step, when every present payload is
    one packed run of the same length (the common stored form of an all-float view): (indices of
    the rows that have values, matrix, mask of nil items), or None."""
    lens = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
    idx = np.flatnonzero(lens)
    if idx.size == 0:
        return None
    first = payloads[idx[0]]
    hd = _single_run_header(first)
    size = len(first)
    if hd is None or (lens[idx] != size).any():
        return None
    h, dt = hd
    # absent rows are b"": the join holds exactly the present ones, in order
    raw = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(idx.size, size)
    if not (raw[:, :h] == raw[0, :h]).all():
        return None
    m = raw[:, h:].copy().view(dt).astype(np.float64)
    return idx.astype(np.intp), m, np.zeros(m.shape, dtype=bool)


def _numeric_rows(vals):
    """The decoded rows of one view whose requested columns are all double/float, as one float
    matrix: (indices of the rows that have values, matrix, mask of nil items), or None when the
    rows do not form one (lengths differ: features added later; non-numeric features). A row's
    nil and a stored NaN are told apart by looking back at the NaN cells only."""
    idx = [i for i, a in enumerate(vals) if a is not None]
    rows = [vals[i] for i in idx]
    try:
        m = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        return None
    if m.ndim != 2:
        if rows:
            return None
        m = m.reshape(0, 0)
    nil = np.zeros(m.shape, dtype=bool)
    for r, k in zip(*np.nonzero(np.isnan(m))):
        if rows[r][k] is None:
            nil[r, k] = True
    return np.asarray(idx, dtype=np.intp), m, nil


# ---- framing ----

def _tls_context(ca, insecure):
    """TLS 1.2 or later; verifies the server against ca (or the system's CAs) and its name, unless
    insecure (tests only)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Conn:
    def __init__(self, host, port, timeout, tls=None):
        self.timeout = timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except socket.timeout:
            raise FreshetError("TIMEOUT", f"connect to {host}:{port}: timed out") from None
        except OSError as e:
            raise FreshetError("IO", f"connect to {host}:{port}: {e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                self.sock = tls.wrap_socket(self.sock, server_hostname=host)
            except (ssl.SSLError, ssl.CertificateError, OSError) as e:
                self.sock.close()
                raise FreshetError("IO", f"TLS handshake with {host}:{port}: {e}") from None
        self.next_id = 1
        self.rbuf = bytearray()
        self.stash = {}  # request id → (op, body) of replies that arrived before they were asked for

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fail(self, code, msg):
        self.close()
        raise FreshetError(code, msg)

    def send(self, op, msg):
        """Sends one request frame; returns its request id."""
        if self.sock is None:
            raise FreshetError("CLOSED", "connection is closed")
        body = msg.SerializeToString()
        rid = self.next_id
        self.next_id = self.next_id + 1 if self.next_id < 0xFFFFFFFF else 1
        try:
            self.sock.sendall(_HDR.pack(len(body), rid, op) + body)
        except socket.timeout:
            self._fail("TIMEOUT", f"send: timed out after {self.timeout} s")
        except OSError as e:
            self._fail("IO", f"send: {e}")
        return rid

    def _read_frame(self):
        while True:
            if len(self.rbuf) >= _HDR.size:
                n, rid, op = _HDR.unpack_from(self.rbuf, 0)
                if len(self.rbuf) >= _HDR.size + n:
                    body = bytes(self.rbuf[_HDR.size:_HDR.size + n])
                    del self.rbuf[:_HDR.size + n]
                    return rid, op, body
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                self._fail("TIMEOUT", f"no reply within {self.timeout} s")
            except OSError as e:
                self._fail("IO", f"recv: {e}")
            if not chunk:
                self._fail("CLOSED", "server closed the connection")
            self.rbuf += chunk

    def recv(self, rid, op, resp_cls):
        """Waits for the reply to request rid and decodes it (code checked by the caller)."""
        if self.sock is None and rid not in self.stash:
            raise FreshetError("CLOSED", "connection is closed")
        while rid not in self.stash:
            frid, fop, body = self._read_frame()
            self.stash[frid] = (fop, body)
        fop, body = self.stash.pop(rid)
        if fop != (op | _RESP):
            raise FreshetError("INTERNAL", f"reply op {fop:#x} for request op {op}")
        resp = resp_cls()
        try:
            resp.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 (protobuf's DecodeError and friends)
            raise FreshetError("BAD_REQUEST", f"malformed reply: {e}") from None
        return resp

    def call(self, op, msg, resp_cls):
        return _check(self.recv(self.send(op, msg), op, resp_cls))


# ---- reply decoding ----

# RowResult fields read in C (map + attrgetter) rather than by a Python generator per row.
_STATUS_OF = operator.attrgetter("status")
_EVENT_TS_OF = operator.attrgetter("event_ts_us")
_WRITTEN_AT_OF = operator.attrgetter("written_at_us")
_VALUES_OF = operator.attrgetter("values")


class _Decoded:
    """One GetResponse as per-feature columns: names, types, per-cell statuses / event times /
    written-at times (int64 arrays) and values (lists; float64 arrays with NaN for missing when
    a view's requested columns are all double/float)."""

    def __init__(self, resp):
        nv = len(resp.views)
        ne = resp.entity_count
        if nv == 0 or len(resp.rows) != ne * nv:
            raise FreshetError("BAD_REQUEST", f"malformed reply: {len(resp.rows)} rows for "
                                              f"{ne} entities x {nv} views")
        self.n = ne
        self.views = list(resp.views)
        self.names = [c.name for c in resp.columns]
        self.types = [TYPE_NAMES.get(c.type, f"type{c.type}") for c in resp.columns]
        self.status, self.event_ts, self.written_at, self.values = [], [], [], []
        per_view = []
        for v in range(nv):
            rows = resp.rows[v::nv] if nv > 1 else resp.rows
            st = np.fromiter(map(_STATUS_OF, rows), dtype=np.int8, count=ne)
            ev = np.fromiter(map(_EVENT_TS_OF, rows), dtype=np.int64, count=ne)
            wa = np.fromiter(map(_WRITTEN_AT_OF, rows), dtype=np.int64, count=ne)
            per_view.append([st, ev, wa, list(map(_VALUES_OF, rows))])
        decoded = {}

        def vals_of(v):  # a view's rows decoded cell by cell, once, only when needed
            if v not in decoded:
                decoded[v] = [_unpack_row(p) if p else None for p in per_view[v][3]]
            return decoded[v]
        # Views whose requested columns are all double/float are decoded as one float matrix
        # each (numpy's conversion instead of a Python loop per cell: a training export is mostly
        # such columns); any other view, or rows that do not form a matrix, cell by cell.
        numeric = {}
        for c, ftype in zip(resp.columns, self.types):
            if c.view < nv:
                numeric[c.view] = numeric.get(c.view, True) and ftype in ("double", "float")
        matrices = {v: _packed_matrix(per_view[v][3]) or _numeric_rows(vals_of(v))
                    for v, ok in numeric.items() if ok}
        for c, ftype in zip(resp.columns, self.types):
            if c.view >= nv:
                raise FreshetError("BAD_REQUEST", "malformed reply: column of an unknown view")
            st, ev, wa, _ = per_view[c.view]
            k = c.index
            cst = st.copy()
            mat = matrices.get(c.view)
            if mat is not None:
                idx, m, nil = mat
                col = np.full(ne, np.nan)
                if k < m.shape[1]:
                    col[idx] = m[:, k]
                    nil_rows = idx[nil[:, k]]
                else:
                    nil_rows = idx  # a feature added after these rows were written: null
                cst[nil_rows[cst[nil_rows] == PRESENT]] = NULL
            else:
                col = [None] * ne
                for e, arr in enumerate(vals_of(c.view)):
                    if arr is None:
                        continue
                    x = arr[k] if k < len(arr) else None
                    if x is None:
                        if cst[e] == PRESENT:
                            cst[e] = NULL
                    else:
                        col[e] = _decode_value(x, ftype)
            self.status.append(cst)
            self.event_ts.append(ev)
            self.written_at.append(wa)
            self.values.append(col)


def _typed_chunk(d, label_times, include_expired, served):
    """One export chunk as typed arrays per feature, with its status counts and leakage (PRESENT
    values written after their label time; 0 in served mode)."""
    chunk = {"names": d.names, "types": d.types, "values": [], "status": [], "leakage": 0,
             "statuses": {sname: 0 for sname in STATUS_NAMES.values()}}
    for j, ftype in enumerate(d.types):
        st = d.status[j]
        keep = (st == PRESENT) | ((st == EXPIRED) & include_expired)
        chunk["values"].append(_column_array(_keep(d.values[j], keep), ftype))
        chunk["status"].append(st)
        for code, sname in STATUS_NAMES.items():
            chunk["statuses"][sname] += int(np.count_nonzero(st == code))
        if not served:
            chunk["leakage"] += int(np.count_nonzero((st == PRESENT)
                                                     & (d.written_at[j] > label_times)))
    return chunk


def _concat_arrays(parts):
    """Concatenates typed column arrays (numpy or pandas extension arrays) of one feature."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return type(parts[0])._concat_same_type(parts)


def _status_names(st):
    return np.array(["NOT_FOUND", "PRESENT", "EXPIRED", "NULL"], dtype=object)[st & 3]


# ---- the client ----

class Client:
    """A connection to freshetd. See the package docstring for the manual."""

    def __init__(self, host="127.0.0.1", port=7070, timeout=30, token=None, tls=False,
                 tls_ca=None, tls_insecure=False):
        self.host, self.port, self.timeout = host, int(port), timeout
        self._token = token
        try:
            self._tls = (_tls_context(tls_ca, tls_insecure)
                         if tls or tls_ca or tls_insecure else None)
        except (ssl.SSLError, OSError) as e:
            raise FreshetError("BAD_ARG", f"tls_ca {tls_ca!r}: {e}") from None
        self._conn = self._connect()
        self._views = None  # view name → {"join_key", "features": [(name, type)], "ttl"}
        self._registry = None

    def _connect(self):
        """A new connection; with a token, authenticated by a Hello before anything else."""
        conn = _Conn(self.host, self.port, self.timeout, self._tls)
        if self._token:
            try:
                conn.call(pb.OP_HELLO, pb.HelloRequest(token=self._token, client="freshet-python"),
                          pb.HelloResponse)
            except FreshetError:
                conn.close()
                raise
        return conn

    @classmethod
    def from_addr(cls, addr, timeout=30, token=None, **tls):
        """Client.from_addr("127.0.0.1:7070") (IPv6: "[::1]:7070")."""
        host, sep, port = addr.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise FreshetError("BAD_ARG", f"address {addr!r}: expected HOST:PORT")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host, int(port), timeout, token=token, **tls)

    def close(self):
        if self._conn is not None:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _c(self):
        """The connection, reconnecting once if an earlier network error closed it."""
        if self._conn.sock is None:
            self._conn = self._connect()
        return self._conn

    # ---- schema ----

    def _set_registry(self, text):
        if not text:
            return
        reg = json.loads(text)
        views = {}
        for v in reg.get("views", []):
            feats = sorted(v.get("features", []), key=lambda f: f.get("position", 0))
            views[v["name"]] = {"join_key": v.get("join_key", ""), "ttl": v.get("ttl"),
                                "features": [(f["name"], f["type"]) for f in feats]}
        self._registry, self._views = reg, views

    def _view(self, name):
        """The cached definition of a view, refreshing the cache once if it is unknown."""
        if self._views is None or name not in self._views:
            self.status()
        if name not in self._views:
            raise FreshetError("UNKNOWN_VIEW", f"view {name!r} is not in the registry "
                                               "(apply it first)")
        return self._views[name]

    def _resolve(self, features):
        """features → list of (reference, view name, view def); checks they exist."""
        if isinstance(features, str):
            features = [features]
        out = []
        for f in features:
            if not isinstance(f, str) or not f:
                raise FreshetError("BAD_ARG", f"feature reference {f!r}: expected \"view:feature\" "
                                              "or \"view\"")
            view, _, feat = f.partition(":")
            vd = self._view(view)
            if feat and feat not in (n for n, _ in vd["features"]):
                self.status()  # maybe added since the cache was filled
                vd = self._view(view)
                if feat not in (n for n, _ in vd["features"]):
                    raise FreshetError("UNKNOWN_FEATURE", f"feature {f!r}: view {view} has no "
                                                          f"feature {feat!r}")
            out.append((f, view, vd))
        return out

    # ---- administration ----

    def apply(self, registry, dry_run=False):
        """Creates or extends views from a registry (JSON text, dict, or path to a file)."""
        if isinstance(registry, dict):
            text = json.dumps(registry)
        elif isinstance(registry, str) and not registry.lstrip().startswith("{") \
                and os.path.exists(registry):
            with open(registry, encoding="utf-8") as fh:
                text = fh.read()
        else:
            text = registry
        r = self._c().call(pb.OP_APPLY, pb.ApplyRequest(registry_json=text, dry_run=dry_run),
                           pb.ApplyResponse)
        registry = json.loads(r.registry_json) if r.registry_json else None
        if not dry_run and registry is None:
            # the reply carries no registry: read it back, which also refreshes the cache that
            # put() checks columns against
            self.status()
            registry = self._registry
        elif registry is not None and not dry_run:
            self._set_registry(r.registry_json)
        return {"views_added": r.views_added, "features_added": r.features_added,
                "entities_added": r.entities_added, "views_changed": r.views_changed,
                "registry": registry}

    def status(self):
        """Server state: version, durability, map use, views, registry, server time."""
        r = self._c().call(pb.OP_STATUS, pb.StatusRequest(), pb.StatusResponse)
        self._set_registry(r.registry_json)
        return {"version": r.version, "durability": r.durability, "map_size": r.map_size,
                "map_used": r.map_used, "last_txn": r.last_txn, "write_seq": r.write_seq,
                "server_time_us": r.server_time_us,
                "server_time": pd.Timestamp(r.server_time_us * 1000, tz="UTC"),
                "views": [{"name": v.name, "versions": v.versions,
                           "newest_event_ts_us": v.newest_event_ts_us} for v in r.views],
                "registry": self._registry}

    def sources(self):
        """Stored stream positions: [{"source", "partition", "offset"}]."""
        r = self._c().call(pb.OP_SOURCES, pb.SourcesRequest(), pb.SourcesResponse)
        return [{"source": p.source, "partition": p.partition, "offset": p.offset}
                for p in r.positions]

    # ---- writes ----

    def put(self, view, rows, source=None, partition=0, batch_rows=PUT_BATCH_ROWS):
        """Writes rows (list of dicts or DataFrame) to a view; see the manual."""
        vd = self._view(view)
        key = vd["join_key"]
        feats = vd["features"]
        if isinstance(rows, pd.DataFrame):
            cols = {c: rows[c] for c in rows.columns}
            n = len(rows)
        else:
            rows = list(rows)
            n = len(rows)
            names = []
            seen = set()
            for r in rows:
                if not isinstance(r, dict):
                    raise FreshetError("BAD_ARG", f"rows: expected dicts, got {type(r).__name__}")
                for k in r:
                    if k not in seen:
                        seen.add(k)
                        names.append(k)
            cols = {k: [r.get(k) for r in rows] for k in names}
        known = {key, "event_timestamp", "offset"} | {f for f, _ in feats}
        if any(k not in known for k in cols):
            self.status()  # maybe added since the cache was filled (by us or another client)
            vd = self._view(view)
            key, feats = vd["join_key"], vd["features"]
            known = {key, "event_timestamp", "offset"} | {f for f, _ in feats}
        for k in cols:
            if k not in known:
                raise FreshetError("UNKNOWN_FEATURE", f"column {k!r}: view {view} has no such "
                                                      f"feature (nor is it {key}, event_timestamp "
                                                      "or offset)")
        for k in (key, "event_timestamp"):
            if k not in cols and n:
                raise FreshetError("BAD_ARG", f"rows: missing column {k!r}")
        if source is not None and "offset" not in cols and n:
            raise FreshetError("BAD_ARG", "rows: a put with a source needs an \"offset\" per row")
        # Encode every row first: bad input is refused before anything is sent.
        ents = _ids_bytes(cols.get(key, []), key, 0)
        if isinstance(rows, pd.DataFrame) and n:
            times = _series_to_us(rows["event_timestamp"], "event_timestamp").tolist()
        else:
            times = [to_us(v, f"row {i}, column \"event_timestamp\"")
                     for i, v in enumerate(cols.get("event_timestamp", []))]
        offsets = None
        if source is not None and n:
            offsets = []
            offs = cols["offset"]
            for i, v in enumerate(offs.tolist() if isinstance(offs, pd.Series) else offs):
                if _is_null(v) or not isinstance(v, (int, np.integer, float, np.floating)) \
                        or float(v) != int(v):
                    raise FreshetError("BAD_ARG", f"row {i}, column \"offset\": {v!r} is not an "
                                                  "integer")
                offsets.append(int(v))
        norm_cols = []
        for fname, ftype in feats:
            vals = cols.get(fname)
            if vals is None:
                norm_cols.append([None] * n)
                continue
            fast = _fast_column(vals, ftype, fname) if isinstance(vals, pd.Series) else None
            if fast is not None:
                norm_cols.append(fast)
                continue
            norm = _value_normalizer(ftype, fname)
            out = []
            for i, v in enumerate(vals.tolist() if isinstance(vals, pd.Series) else vals):
                try:
                    out.append(norm(v))
                except FreshetError as e:
                    raise FreshetError(e.code_name, f"row {i}: {e.message}", row_index=i) from None
            norm_cols.append(out)
        packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        types = [t for _, t in feats]
        if all(t in _PACK_NATIVE for t in types):
            encode = packb  # a tuple packs as the array of its values
        else:
            header = _mp_array_header(len(feats))

            def encode(r):
                return header + b"".join(_pack_value(v, t, packb) for v, t in zip(r, types))
        payloads = _packed_payloads(cols, feats, n) if isinstance(rows, pd.DataFrame) else None
        if payloads is None:
            payloads = [encode(r) for r in zip(*norm_cols)] if feats else [packb(())] * n
        else:
            for i in [i for i, p in enumerate(payloads) if p is None]:  # rows with a null
                payloads[i] = encode(tuple(c[i] for c in norm_cols))

        return self._send_puts(view, ents, times, payloads, offsets, source, partition,
                               batch_rows)

    def _send_puts(self, view, ents, times, payloads, offsets, source, partition, batch_rows):
        """Sends encoded rows in pipelined frames. A BUSY reply (write queue full) makes the
        server refuse every later Put of the connection until one says `resume`, so the stream
        stays in order: wait for the frames in flight, back off, and resend from the first
        refused frame with resume set (rows already stored come back as duplicates/unchanged)."""
        conn = self._c()
        n = len(ents)
        res = {"rows_written": 0, "duplicates": 0, "unchanged": 0, "high_water": -1,
               "busy_retries": 0}
        can_resume = "resume" in pb.PutRequest.DESCRIPTOR.fields_by_name
        inflight = []  # (request id, first row index)
        first_err = None
        busy_from = None
        resume = False
        tries = 0  # BUSY rounds in a row without progress
        sent = 0
        # after an error nothing more is sent: wait for what is in flight, then raise it
        while (first_err is None and (sent < n or busy_from is not None)) or inflight:
            if busy_from is not None and not inflight:
                res["busy_retries"] += 1
                tries += 1
                if tries > PUT_BUSY_RETRIES or not can_resume:
                    raise FreshetError("BUSY", f"row {busy_from}: server stayed busy after "
                                               f"{tries - 1} retries", row_index=busy_from)
                time.sleep(min(1.0, 0.002 * 2 ** tries))
                sent, busy_from, resume = busy_from, None, True
            while sent < n and len(inflight) < PUT_WINDOW and first_err is None \
                    and busy_from is None:
                end = min(n, sent + batch_rows)
                req = pb.PutRequest()
                if source is not None:
                    req.source = source
                    req.partition = partition
                if resume:
                    req.resume = True
                    resume = False
                for i in range(sent, end):
                    r = req.rows.add(view=view, entity=ents[i], event_ts_us=times[i],
                                     values=payloads[i])
                    if offsets is not None:
                        r.offset = offsets[i]
                inflight.append((conn.send(pb.OP_PUT, req), sent))
                sent = end
            if not inflight:
                continue
            rid, start = inflight.pop(0)
            r = conn.recv(rid, pb.OP_PUT, pb.PutResponse)
            if r.code == _ERROR_CODES["BUSY"] and first_err is None:
                if busy_from is None or start < busy_from:
                    busy_from = start
                continue
            if r.code != 0:
                if first_err is None:
                    first_err = FreshetError(ERROR_NAMES.get(r.code, f"ERROR_{r.code}"),
                                             f"row {start + r.row_index}: {r.message}",
                                             row_index=start + r.row_index)
                continue
            tries = 0
            res["rows_written"] += r.rows_written
            res["duplicates"] += r.duplicates
            res["unchanged"] += r.unchanged
            if r.HasField("high_water"):
                res["high_water"] = r.high_water
        if first_err is not None:
            raise first_err
        return res

    # ---- reads ----

    @staticmethod
    def _entity_columns(msg, entities):
        """Fills msg.entities from a list of ids or a dict {join_key: [ids]}; returns
        [(column name, [ids as given])] and the entity count."""
        if isinstance(entities, dict):
            cols = [(k, list(v)) for k, v in entities.items()]
        else:
            cols = [("entity", list(entities))]
        n = len(cols[0][1]) if cols else 0
        for name, ids in cols:
            if len(ids) != n:
                raise FreshetError("BAD_ARG", f"entities: column {name!r} has {len(ids)} ids, "
                                              f"expected {n}")
            ec = msg.entities.add()
            if isinstance(entities, dict):
                ec.join_key = name
            ec.values.extend(_entity_bytes(v, f"entities[{i}]") for i, v in enumerate(ids))
        return cols, n

    def get(self, entities, features, as_of=None, include_expired=False, served=False):
        """Online read of one snapshot; returns one DataFrame row per entity (see the manual)."""
        if isinstance(features, str):
            features = [features]
        req = pb.GetRequest(features=list(features), include_expired=include_expired,
                            served=served)
        if as_of is not None:
            req.as_of_us = to_us(as_of, "as_of")
        cols, n = self._entity_columns(req, entities)
        conn = self._c()
        r = conn.call(pb.OP_GET, req, pb.GetResponse)
        d = _Decoded(r)
        out = {}
        for name, ids in cols:
            out[name] = ids
        for j, name in enumerate(d.names):
            st = d.status[j]
            vals = d.values[j]
            if not include_expired:
                vals = _keep(vals, st == PRESENT)
            out[name] = _column_array(vals, d.types[j])
            out[name + ":status"] = _status_names(st)
            out[name + ":event_timestamp"] = _us_to_series(d.event_ts[j], st != NOT_FOUND)
        df = pd.DataFrame(out, index=pd.RangeIndex(n))
        df.attrs["as_of_us"] = r.as_of_us
        df.attrs["as_of"] = pd.Timestamp(r.as_of_us * 1000, tz="UTC")
        df.attrs["snapshot_txn"] = r.snapshot_txn
        return df

    # ---- exports ----

    def _export_end(self, conn, features):
        """Releases the connection's pinned export snapshot."""
        rid = conn.send(pb.OP_EXPORT, pb.ExportRequest(kind=pb.EXPORT_PIT, features=features,
                                                       end=True))
        conn.recv(rid, pb.OP_EXPORT, pb.GetResponse)  # an error here only means nothing was pinned

    @staticmethod
    def _export_pin(conn, features, keys):
        """An export chunk without rows: pins conn's snapshot; returns the snapshot's id."""
        req = pb.ExportRequest(kind=pb.EXPORT_PIT, features=features)
        for k in keys:
            req.entities.add(join_key=k)
        return conn.call(pb.OP_EXPORT, req, pb.GetResponse).snapshot_txn

    def _export_conns(self, features, keys, want):
        """Up to `want` connections (the client's own first, then new ones) whose pinned export
        snapshots are one and the same LMDB snapshot, so that every chunk reads one moment of the
        store whichever connection (server worker) reads it. Two pins a few microseconds apart
        differ only if a commit fell between them: released and retried. After 20 tries, or if no
        second connection can be opened, the client's connection alone, nothing pinned yet. A
        refused pin (an unknown feature...) is raised."""
        first = self._c()
        extra = []
        conns = [first]
        try:
            for _ in range(20 if want > 1 else 0):
                snap = self._export_pin(first, features, keys)
                conns = [first]
                for i in range(1, want):
                    if len(extra) < i:
                        try:
                            extra.append(self._connect())
                        except FreshetError:
                            break  # no more connections: what is pinned is released below
                    conns.append(extra[i - 1])
                    if self._export_pin(extra[i - 1], features, keys) != snap:
                        break
                else:
                    return conns
                for c in conns:
                    self._export_end(c, features)
                conns = [first]
                if len(extra) < want - 1:
                    break
        except BaseException:
            for c in conns:
                try:
                    self._export_end(c, features)
                except FreshetError:
                    pass
            for c in extra:
                c.close()
            raise
        for c in extra:
            c.close()
        return [first]

    def export_pit(self, labels, features, mode="event", with_status=False, include_expired=False,
                   chunk_rows=EXPORT_CHUNK_ROWS, window=EXPORT_WINDOW,
                   connections=EXPORT_CONNECTIONS):
        """Point-in-time join of label rows with feature values (see the manual)."""
        if mode not in ("event", "served"):
            raise FreshetError("BAD_ARG", f"mode must be \"event\" or \"served\", not {mode!r}")
        if not isinstance(labels, pd.DataFrame):
            raise FreshetError("BAD_ARG", "labels: expected a pandas DataFrame")
        refs = self._resolve(features)
        features = [f for f, _, _ in refs]
        keys = []
        for _, _, vd in refs:
            if vd["join_key"] not in keys:
                keys.append(vd["join_key"])
        for k in keys + ["event_timestamp"]:
            if k not in labels.columns:
                raise FreshetError("BAD_ARG", f"labels: missing column \"{k}\""
                                   + ("" if k == "event_timestamp"
                                      else " (the join key of a requested view)"))
        n = len(labels)
        times = _series_to_us(labels["event_timestamp"], "event_timestamp")
        key_cols = {k: labels[k] for k in keys}
        for k, s in key_cols.items():  # every id is checked before anything is sent
            _check_ids(s, k)
        served = mode == "served"
        chunk_rows = max(1, int(chunk_rows))
        starts = list(range(0, n, chunk_rows)) or [0]
        # Several connections are served by several server workers: the lookups of one chunk run
        # beside those of the next while this thread decodes. All of them read one snapshot.
        conns = self._export_conns(features, keys,
                                   min(max(1, int(connections)), len(starts)))
        single = len(conns) == 1  # then the first chunk pins and the last one releases
        inflight = []
        results = []
        snapshot_txn = None
        nxt = 0
        try:
            while nxt < len(starts) or inflight:
                while nxt < len(starts) and len(inflight) < max(1, window) * len(conns):
                    a = starts[nxt]
                    b = min(n, a + chunk_rows)
                    conn = conns[nxt % len(conns)]
                    req = pb.ExportRequest(kind=pb.EXPORT_PIT, features=features, served=served,
                                           include_expired=include_expired,
                                           end=single and nxt == len(starts) - 1)
                    for k in keys:
                        ec = req.entities.add(join_key=k)
                        ec.values.extend(_ids_bytes(key_cols[k].iloc[a:b], k, a))
                    req.as_of_us.extend(times[a:b].tolist())
                    inflight.append((conn, conn.send(pb.OP_EXPORT, req), a, b))
                    nxt += 1
                conn, rid, a, b = inflight.pop(0)
                r = _check(conn.recv(rid, pb.OP_EXPORT, pb.GetResponse))
                if r.entity_count != b - a:
                    raise FreshetError("INTERNAL", f"reply has {r.entity_count} rows for "
                                                   f"{b - a} labels")
                if snapshot_txn is not None and r.snapshot_txn != snapshot_txn:
                    raise FreshetError("INTERNAL", f"chunk read snapshot {r.snapshot_txn}, the "
                                                   f"export's is {snapshot_txn}")
                # typed per chunk: the decoded Python objects are dropped right away
                results.append(_typed_chunk(_Decoded(r), times[a:b], include_expired, served))
                snapshot_txn = r.snapshot_txn
            if not single:
                for conn in conns:
                    self._export_end(conn, features)
        except BaseException:
            # Drain the replies still in flight (the server answers every chunk; an error reply
            # already released the snapshot, but later chunks may have pinned a new one), release
            # the snapshots, then re-raise. A network error leaves nothing to release.
            for conn, rid, _, _ in inflight:
                try:
                    conn.recv(rid, pb.OP_EXPORT, pb.GetResponse)
                except FreshetError:
                    pass
            for conn in conns:
                try:
                    self._export_end(conn, features)
                except FreshetError:
                    pass
            raise
        finally:
            for conn in conns[1:]:
                conn.close()

        names, types = results[0]["names"], results[0]["types"]
        out = labels.copy()
        for name in names:
            if name in out.columns:
                raise FreshetError("BAD_ARG", f"labels: column \"{name}\" clashes with a feature "
                                              "column of the result")
        statuses = {sname: sum(c["statuses"][sname] for c in results)
                    for sname in STATUS_NAMES.values()}
        for j, name in enumerate(names):
            out[name] = _concat_arrays([c["values"][j] for c in results])
            if with_status:
                out[name + ":status"] = _status_names(np.concatenate([c["status"][j]
                                                                     for c in results]))
        out.attrs["statuses"] = statuses
        out.attrs["leakage"] = sum(c["leakage"] for c in results)
        out.attrs["mode"] = mode
        out.attrs["snapshot_txn"] = snapshot_txn
        return out

    def export_snapshot(self, features, as_of=None, with_status=False, served=False,
                        include_expired=False, limit=1000):
        """Every entity of a view (or features of one entity's views) as of a time."""
        refs = self._resolve(features)
        features = [f for f, _, _ in refs]
        key = refs[0][2]["join_key"] or "entity"
        as_of_us = None if as_of is None else to_us(as_of, "as_of")
        conn = self._c()
        cursor = None
        ents, parts = [], []
        names = types = None
        pinned = False
        try:
            while True:
                req = pb.ExportRequest(kind=pb.EXPORT_SNAPSHOT, features=features, served=served,
                                       include_expired=include_expired, limit=int(limit))
                if as_of_us is not None:
                    req.snapshot_as_of_us = as_of_us
                if cursor is not None:
                    req.cursor = cursor
                pinned = True
                r = _check(conn.recv(conn.send(pb.OP_EXPORT, req), pb.OP_EXPORT, pb.GetResponse))
                as_of_us = r.as_of_us
                d = _Decoded(r)
                if len(r.entities) != d.n:
                    raise FreshetError("INTERNAL", "reply: entities do not match rows")
                names, types = d.names, d.types
                st = np.vstack(d.status) if d.status else np.zeros((0, d.n), dtype=np.int8)
                existed = (st != NOT_FOUND).any(axis=0) if len(d.status) else np.zeros(d.n, bool)
                idx = np.flatnonzero(existed)
                ents.extend(r.entities[i].decode("utf-8", "replace") for i in idx)
                parts.append((d, idx))
                if r.done or not r.HasField("next_cursor"):
                    break
                cursor = r.next_cursor
        except FreshetError:
            if pinned:
                try:
                    self._export_end(conn, features)
                except FreshetError:
                    pass
            raise
        self._export_end(conn, features)
        out = {key: ents}
        for j, name in enumerate(names or []):
            pieces, sts = [], []
            for d, idx in parts:
                st = d.status[j][idx]
                keep = (st == PRESENT) | ((st == EXPIRED) & include_expired)
                v = d.values[j]
                pieces.append(_keep(v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx],
                                    keep))
                sts.append(st)
            if pieces and all(isinstance(p, np.ndarray) for p in pieces):
                vals = np.concatenate(pieces)
            else:  # pages decoded both ways (a float column: NaN and None both mean missing)
                vals = [x for p in pieces for x in p]
            out[name] = _column_array(vals, types[j])
            if with_status:
                out[name + ":status"] = _status_names(np.concatenate(sts))
        df = pd.DataFrame(out)
        df.attrs["as_of_us"] = as_of_us
        df.attrs["as_of"] = pd.Timestamp(as_of_us * 1000, tz="UTC")
        return df
