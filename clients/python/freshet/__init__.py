"""Freshet Python client: writes, online reads and point-in-time exports into pandas.

This docstring is the manual. The client speaks Freshet's binary protocol
(``schema/freshet.proto``) over one TCP connection, using Debian's ``python3-protobuf``,
``python3-msgpack``, ``python3-pandas`` and ``python3-numpy``; run it with ``/usr/bin/python3``
and ``PYTHONPATH=clients/python``.

Connecting
----------
::

    import freshet
    c = freshet.Client("127.0.0.1", 7070, timeout=30)      # or freshet.Client.from_addr("127.0.0.1:7070")
    with freshet.Client.from_addr(addr) as c: ...           # closes the socket on exit

A ``Client`` owns one connection and is not thread-safe: use one per thread. Every call blocks
until the server has answered. ``timeout`` (seconds) bounds each wait for the network.

When freshetd runs with ``--auth-file``, pass ``token="..."`` (a token made by ``freshet token new``,
e.g. ``os.environ["FRESHET_TOKEN"]``) to ``Client`` or ``Client.from_addr``: the client sends it in a
Hello right after connecting (and after each reconnect); an unknown token raises
``FreshetError("UNAUTHORIZED")``, and so does any call the token's role does not allow.

When freshetd runs with ``tls_cert``/``tls_key``, pass ``tls_ca="ca.pem"`` (verify the server
against that CA and its name against ``host``), or ``tls=True`` to verify against the system's CAs;
``tls_insecure=True`` skips verification (tests only). TLS 1.2 is the minimum. A failed handshake
(unknown CA, wrong name, a plaintext server) raises ``FreshetError("IO")`` naming the reason.

Errors
------
Every refused request raises ``freshet.FreshetError(code_name, message)``. ``e.code_name`` is the
server's error name (``"UNKNOWN_VIEW"``, ``"TYPE_MISMATCH"``, ... see ``include/freshet/err.h``
and the README), ``e.code`` the negative number, ``e.message`` the server's sentence naming the
field, and for ``put`` ``e.row_index`` the index (in the rows you passed) of the offending row.
Client-side failures use the same names: ``BAD_ARG`` (bad input detected before sending),
``IO``/``CLOSED``/``TIMEOUT`` (network). ``e.retryable`` is True for ``BUSY``, ``IO``, ``CLOSED``,
``TIMEOUT`` and ``SHUTDOWN``.

Schema
------
``c.apply(registry)`` creates or extends views from a registry (a JSON string, a dict, or a path
to a ``.json`` file) and returns ``{"views_added", "features_added", "entities_added",
"views_changed", "registry"}``; ``dry_run=True`` only reports. The client caches the registry
(views, their features in payload order and their entity join key) from ``apply`` and ``status``
and refreshes it when it meets a view it does not know.

Timestamps
----------
Wherever a time is accepted (``event_timestamp``, ``as_of``, label times) it may be a
``datetime.datetime``, a ``pandas.Timestamp``, a ``numpy.datetime64``, an ``int`` (microseconds
since the Unix epoch) or an RFC 3339 string (``"2026-11-28T10:00:00Z"``). Naive datetimes and
strings without a zone are taken as UTC. Times come back as ``pandas.Timestamp`` in UTC
(``datetime64[ns, UTC]`` columns), with raw microseconds where noted.

Writing: ``put``
----------------
::

    c.put("card_stats", [{"card_id": "c1", "event_timestamp": "2026-11-28T10:00:00Z",
                          "txn_count_1h": 3, "amount_avg_1h": 12.5, "emb": [0.1, 0.2, 0.3, 0.4]}])
    c.put("card_stats", df, source="kafka:cards", partition=3)   # df needs an "offset" column

``rows`` is a list of dicts or a ``pandas.DataFrame`` with the view's join key, an
``event_timestamp`` and any of the view's features (missing ones are written as null; None, NaN,
NaT and ``pandas.NA`` are null, so a NaN double cannot be stored as a value). Entity ids are
strings (ints are written in decimal; bytes are sent as they are). Values are encoded per feature
type: ``int64`` → int, ``double`` → float64, ``float`` → float32, ``bool``, ``string`` (str),
``bytes`` (bytes), ``float_list`` (list or numpy array, sent as float32s); a ``float`` or
``float_list`` value beyond the float32 range raises ``FreshetError("BAD_ARG")`` naming the row. A
DataFrame put to a view of four or more features, all ``double`` (or all ``float``), is encoded
with numpy straight into the server's stored form (one packed run per row; rows with a missing
value are encoded value by value); the stored bytes are the same either way. A key that is neither
the join key, ``event_timestamp``, ``offset`` nor a feature of the view raises
``FreshetError("UNKNOWN_FEATURE")`` before anything is sent; an unknown view raises
``FreshetError("UNKNOWN_VIEW")``.

With ``source`` (and ``partition``, default 0) every row needs an ``offset``: the server stores the
high-water offset of (source, partition) with the rows, and rows at or below it are acknowledged
as duplicates without changing anything (exactly-once replays; ``c.sources()`` gives the stored
positions to resume from).

Rows go out in frames of ``batch_rows`` (1000) rows with up to 8 frames in flight. Each frame is
atomic on the server; a ``put`` spanning several frames is not (the frames before a failing one
stay written; replaying with a source is safe). When the server's write queue is full it answers
``BUSY`` and refuses every later frame of the connection until one says ``resume``; ``put`` then
waits for the frames in flight, backs off and resends from the first refused frame, in order
(after 12 rounds in a row without progress: ``FreshetError("BUSY")``). Returns
``{"rows_written", "duplicates", "unchanged", "high_water", "busy_retries"}``; ``unchanged``
counts rows equal to the newest version with the same event time (no-ops), ``high_water`` is the
source's position after the put (-1 without one).

Online reads: ``get``
---------------------
::

    df = c.get(["c1", "c2"], ["card_stats:amount_avg_1h", "card_stats"], as_of=None)
    df = c.get({"card_id": ["c1", "c2"], "merchant_id": ["m1", "m2"]},
               ["card_stats:txn_count_1h", "merchant_risk:chargeback_rate_7d"])

``entities`` is a list of ids (used for every requested view) or a dict ``{join_key: [ids]}``
whose lists have equal lengths (row i uses the i-th id of each). ``features`` are
``"view:feature"`` or ``"view"`` (all its features). ``as_of`` defaults to the server's now;
``include_expired=True`` also returns EXPIRED values; ``served=True`` also hides versions written
after ``as_of`` (what the store really served then).

The result is a ``pandas.DataFrame`` with one row per requested entity, in request order:

* the entity column(s): ``"entity"`` for a list, else one column per join key of the dict;
* then, for every feature in response order, three columns:
  ``"view:feature"`` (the value), ``"view:feature:status"`` (``"PRESENT"``, ``"EXPIRED"``,
  ``"NOT_FOUND"`` or ``"NULL"``) and ``"view:feature:event_timestamp"`` (``datetime64[ns, UTC]``,
  NaT when NOT_FOUND).

Values are present only when the status is PRESENT (or EXPIRED with ``include_expired``); missing
values are NaN for ``double``/``float`` columns (float64), ``pandas.NA`` for ``int64`` (``Int64``)
and ``bool`` (``boolean``) columns, and None for ``string``, ``bytes`` and ``float_list`` (object
columns; float lists are Python lists of floats). ``df.attrs`` holds ``as_of`` (Timestamp),
``as_of_us`` (the server's read time in microseconds: pass it as a label time to reproduce the
read in a ``served`` export) and ``snapshot_txn`` (the LMDB transaction all values came from).

Point-in-time export: ``export_pit``
------------------------------------
::

    train = c.export_pit(labels, ["card_stats:amount_avg_1h", "merchant_risk"], mode="event")
    train.attrs["leakage"], train.attrs["statuses"]

``labels`` is a DataFrame with the join key column of every requested view and an
``event_timestamp`` column (the label time of each row); every column of ``labels`` passes through
unchanged and in order, followed by one column per feature named ``"view:feature"`` (typed as in
``get``; missing values when not PRESENT) and, with ``with_status=True``, a
``"view:feature:status"`` column after each. ``mode="event"`` (default, Feast's semantics) takes,
per label row and view, the newest version with ``event_ts <= t`` and ``t - event_ts <= ttl``;
``mode="served"`` additionally requires ``written_at <= t``, which makes a row equal, value for
value, to what an online read at ``t`` returned.

``result.attrs["statuses"]`` counts values per status (``{"PRESENT": n, "EXPIRED": n,
"NOT_FOUND": n, "NULL": n}``). In event mode ``result.attrs["leakage"]`` counts the PRESENT values
that came from versions written after their label time (what ``served`` would have excluded); in
served mode it is 0 by construction. The result's ``attrs["snapshot_txn"]`` names the one LMDB
snapshot the whole export read.

Labels go out in chunks of ``chunk_rows`` (10000), spread over ``connections`` (2) connections
so that as many server workers join chunks side by side, with up to ``window`` (4) chunks in
flight per connection. The whole export reads one snapshot: every connection pins the same one
before the first chunk (retried if a commit falls between the pins; after 20 tries, or when no
second connection can be opened, the export runs on one connection) and releases it at the end.
Memory beyond the input and the result is bounded by the window. Bad labels (a missing column, an unparseable
time, an empty id) raise ``FreshetError("BAD_ARG")`` naming the row and column before anything
is sent.

Snapshot export: ``export_snapshot``
------------------------------------
::

    snap = c.export_snapshot("card_stats", as_of=t)                   # a view
    snap = c.export_snapshot(["card_stats:amount_avg_1h"], as_of=t)   # or features of one entity

Every entity of the (first) view as of ``as_of`` (default: the server's now), in key order: the join
key column, then ``"view:feature"`` columns (and ``:status`` with ``with_status=True``). Entities
whose first version is after ``as_of`` did not exist then and are left out. Read in pages of
``limit`` entities from one pinned snapshot. ``attrs["as_of_us"]`` holds the time used.

Administration
--------------
``c.status()`` returns a dict: ``version``, ``durability``, ``map_size``, ``map_used``,
``last_txn``, ``write_seq``, ``server_time_us``, ``server_time`` (Timestamp), ``views`` (list of
``{"name", "versions", "newest_event_ts_us"}``) and ``registry`` (the parsed registry JSON).
``c.sources()`` returns the stored stream positions as a list of
``{"source", "partition", "offset"}``; a job resumes at ``offset + 1``.

Constants: ``freshet.STATUS_NAMES`` maps status numbers to names and ``freshet.TYPE_NAMES`` type
numbers to registry spellings.
"""

from .client import (  # noqa: F401
    Client,
    FreshetError,
    STATUS_NAMES,
    TYPE_NAMES,
    ERROR_NAMES,
    to_us,
)

__all__ = ["Client", "FreshetError", "STATUS_NAMES", "TYPE_NAMES", "ERROR_NAMES", "to_us"]
