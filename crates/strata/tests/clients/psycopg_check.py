"""psycopg 3 against a running `strata serve`, driven by crates/strata/tests/it/pg_clients.rs.

Connection details come from the environment (STRATA_PG_HOST, STRATA_PG_PORT, STRATA_PG_USER,
STRATA_PG_PASSWORD, STRATA_PG_METRIC). The script prints one JSON object with what each check
saw; the Rust test asserts on it. A check that fails in an unexpected way raises, so the script
exits non-zero with the traceback.
"""

import datetime
import json
import os
import socket
import struct
import sys
import threading
import time

import psycopg

HOST = os.environ["STRATA_PG_HOST"]
PORT = int(os.environ["STRATA_PG_PORT"])
USER = os.environ["STRATA_PG_USER"]
PASSWORD = os.environ["STRATA_PG_PASSWORD"]
METRIC = os.environ.get("STRATA_PG_METRIC", "thermostat")


def connect(password=PASSWORD, **kwargs):
    return psycopg.connect(
        host=HOST,
        port=PORT,
        user=USER,
        password=password,
        dbname="strata",
        sslmode="disable",
        connect_timeout=20,
        **kwargs,
    )


def iso(value):
    return value.isoformat() if isinstance(value, (datetime.datetime, datetime.date)) else value


def rows(cursor):
    return [[iso(v) for v in row] for row in cursor.fetchall()]


def parameters(conn):
    """`%s` placeholders become server-side `$n` parameters (psycopg 3 binds on the server)."""
    table = psycopg.sql.Identifier(METRIC)
    out = {}
    with conn.cursor() as cur:
        cur.execute(
            psycopg.sql.SQL("SELECT name, reading FROM {} WHERE reading = %s").format(table),
            (7,),
        )
        out["int"] = rows(cur)
        cur.execute(
            psycopg.sql.SQL(
                "SELECT count(*) FROM {} WHERE temperature >= %s AND temperature < %s"
            ).format(table),
            (20.25, 21.75),
        )
        out["float"] = rows(cur)
        cur.execute(
            psycopg.sql.SQL("SELECT reading FROM {} WHERE name = %s ORDER BY reading").format(
                table
            ),
            ("it's sensor-3",),
        )
        out["text"] = rows(cur)
        since = datetime.datetime(2015, 1, 12, 10, 12, 15, tzinfo=datetime.timezone.utc)
        until = since + datetime.timedelta(seconds=40)
        cur.execute(
            psycopg.sql.SQL(
                'SELECT "timestamp", reading FROM {} '
                'WHERE "timestamp" >= %s AND "timestamp" < %s ORDER BY "timestamp"'
            ).format(table),
            (since, until),
        )
        out["timestamp"] = rows(cur)
        # A naive datetime is sent as timestamp without time zone and read as UTC.
        cur.execute(
            psycopg.sql.SQL('SELECT count(*) FROM {} WHERE "timestamp" < %s').format(table),
            (datetime.datetime(2015, 1, 12, 10, 12, 45),),
        )
        out["naive_timestamp"] = rows(cur)
        # An injection attempt stays one text value.
        cur.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {} WHERE name = %s").format(table),
            ("x' OR '1'='1",),
        )
        out["injection"] = rows(cur)
    conn.commit()
    return out


def server_cursor(conn, size):
    """A named (server-side) cursor: DECLARE, then FETCH FORWARD `size` per fetchmany."""
    query = psycopg.sql.SQL("SELECT reading FROM {} WHERE reading >= %s ORDER BY reading").format(
        psycopg.sql.Identifier(METRIC)
    )
    chunks = []
    values = []
    with conn.cursor(name="strata_chunks") as cur:
        cur.execute(query, (0,))
        columns = [c.name for c in cur.description]
        while True:
            chunk = cur.fetchmany(size)
            chunks.append(len(chunk))
            values.extend(r[0] for r in chunk)
            if not chunk:
                break
    conn.commit()
    # The same name is free again after COMMIT; iteration uses itersize-sized FETCHes.
    again = []
    with conn.cursor(name="strata_chunks") as cur:
        cur.itersize = 64
        cur.execute(query, (240,))
        again = [r[0] for r in cur]
    conn.commit()
    return {"columns": columns, "chunks": chunks, "values": values, "reused": again}


def held_cursor():
    """WITH HOLD cursors work outside a transaction block (autocommit)."""
    with connect(autocommit=True) as conn:
        with conn.cursor(name="held", withhold=True) as cur:
            cur.execute(
                psycopg.sql.SQL("SELECT name FROM {} ORDER BY reading LIMIT 3").format(
                    psycopg.sql.Identifier(METRIC)
                )
            )
            first = cur.fetchone()
            rest = cur.fetchall()
        return {"first": list(first), "rest": [list(r) for r in rest]}


def nested_transaction(conn):
    """`conn.transaction()` inside a transaction uses SAVEPOINT / RELEASE."""
    with conn.transaction():
        with conn.transaction():
            value = conn.execute("SELECT 41 + 1").fetchone()[0]
    return value


def sqlstate_of_failure(conn, sql):
    try:
        conn.execute(sql)
    except psycopg.Error as error:
        conn.rollback()
        return error.sqlstate
    raise AssertionError(f"{sql} succeeded")


def cancel(conn):
    """conn.cancel_safe() from another thread stops a long query with 57014."""
    done = threading.Event()

    def keep_cancelling():
        # A cancel request that arrives before the query starts is ignored, so repeat it.
        while not done.wait(0.2):
            conn.cancel_safe()

    thread = threading.Thread(target=keep_cancelling)
    thread.start()
    started = time.monotonic()
    try:
        conn.execute(
            "SELECT count(*) FROM generate_series(1, 1000000000000) AS t(v) WHERE v % 7 = 3"
        )
        outcome = {"sqlstate": None}
    except psycopg.errors.QueryCanceled as error:
        outcome = {"sqlstate": error.sqlstate, "message": str(error)}
    finally:
        done.set()
        thread.join()
    conn.rollback()
    outcome["seconds"] = round(time.monotonic() - started, 3)
    outcome["after"] = conn.execute("SELECT 42").fetchone()[0]
    conn.rollback()
    return outcome


def wire_sqlstate_of_bad_login(password):
    """libpq (so psycopg) keeps no SQLSTATE for a failed connection (psycopg issue #1188), so
    read the server's ErrorResponse on a raw socket: StartupMessage, then the password."""
    with socket.create_connection((HOST, PORT), timeout=20) as sock:
        params = b"user\0" + USER.encode() + b"\0database\0strata\0\0"
        body = struct.pack("!i", 196608) + params
        sock.sendall(struct.pack("!i", len(body) + 4) + body)

        def message():
            header = sock.recv(5, socket.MSG_WAITALL)
            kind, length = header[:1], struct.unpack("!i", header[1:])[0]
            payload = sock.recv(length - 4, socket.MSG_WAITALL) if length > 4 else b""
            return kind, payload

        kind, payload = message()
        if kind != b"R" or struct.unpack("!i", payload[:4])[0] != 3:
            raise AssertionError(f"expected AuthenticationCleartextPassword, got {kind!r}")
        secret = password.encode() + b"\0"
        sock.sendall(b"p" + struct.pack("!i", len(secret) + 4) + secret)
        kind, payload = message()
        if kind != b"E":
            raise AssertionError(f"expected ErrorResponse, got {kind!r}")
        fields = {}
        for part in payload.split(b"\0"):
            if part:
                fields[part[:1].decode()] = part[1:].decode()
        return {"code": fields.get("C"), "severity": fields.get("S"), "message": fields.get("M")}


def bad_password():
    try:
        connect(password="not-a-strata-key").close()
    except psycopg.OperationalError as error:
        return {
            "error": type(error).__name__,
            "message": str(error),
            "psycopg_sqlstate": error.sqlstate,
            "wire": wire_sqlstate_of_bad_login("not-a-strata-key"),
        }
    raise AssertionError("a bad password was accepted")


def main():
    out = {"psycopg": psycopg.__version__}
    with connect() as conn:
        out["parameters"] = parameters(conn)
        out["cursor"] = server_cursor(conn, int(os.environ.get("STRATA_CURSOR_CHUNK", "100")))
        out["nested_transaction"] = nested_transaction(conn)
        out["unknown_table"] = sqlstate_of_failure(conn, "SELECT * FROM no_such_metric")
        out["unknown_column"] = sqlstate_of_failure(
            conn, psycopg.sql.SQL("SELECT nope FROM {}").format(psycopg.sql.Identifier(METRIC))
        )
        out["cancel"] = cancel(conn)
    out["held_cursor"] = held_cursor()
    out["bad_password"] = bad_password()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
