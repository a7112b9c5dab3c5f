"""ADBC's Flight SQL driver (adbc-driver-flightsql, with pyarrow) against a running
`strata serve --flight`, driven by crates/strata/tests/it/flight_sql.rs.

Connection details come from the environment (STRATA_FLIGHT_URI, STRATA_FLIGHT_USER,
STRATA_FLIGHT_PASSWORD, and STRATA_FLIGHT_CA, the PEM certificate to trust for a grpc+tls://
URI, which runs only a count over TLS). The script prints one JSON object with what each check saw; the Rust
test asserts on it. A check that fails in an unexpected way raises, so the script exits
non-zero with the traceback.
"""

import json
import os

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow

URI = os.environ["STRATA_FLIGHT_URI"]
USER = os.environ["STRATA_FLIGHT_USER"]
PASSWORD = os.environ["STRATA_FLIGHT_PASSWORD"]
CA = os.environ.get("STRATA_FLIGHT_CA")


def connect(password=PASSWORD):
    options = {"username": USER, "password": password}
    if CA:
        with open(CA, encoding="ascii") as pem:
            options["adbc.flight.sql.client_option.tls_root_certs"] = pem.read()
    return flight_sql.connect(URI, db_kwargs=options)


def error_text(run):
    """The error `run` raises, as text; None when it succeeds."""
    try:
        run()
    except Exception as error:  # noqa: BLE001 - any driver error is the answer here
        return f"{type(error).__name__}: {error}"
    return None


def wrong_password():
    with connect("not-a-key") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchall()


def tables_of(objects):
    """(schema, table) of every table in an adbc_get_objects answer, and thermostat's columns."""
    tables, columns = [], None
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"] or []:
            for table in schema["db_schema_tables"] or []:
                tables.append([schema["db_schema_name"], table["table_name"]])
                if schema["db_schema_name"] == "public" and table["table_name"] == "thermostat":
                    columns = [c["column_name"] for c in table["table_columns"] or []]
    return tables, columns


def over_tls():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM thermostat")
        print(json.dumps({"tls_count": cur.fetchone()[0]}))


def main():
    if CA:
        over_tls()
        return
    seen = {}
    with connect() as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT name, tmp FROM thermostat ORDER BY timestamp")
            table = cur.fetch_arrow_table()
            seen["rows"] = {"name": table["name"].to_pylist(), "tmp": table["tmp"].to_pylist()}

            cur.execute(
                "SELECT name, temp FROM thermostat WHERE name = $1 ORDER BY timestamp",
                parameters=("t2",),
            )
            seen["parameters"] = [list(row) for row in cur.fetchall()]
            cur.execute("SELECT count(*) AS n FROM thermostat WHERE temp > $1", parameters=(22,))
            seen["parameters_int"] = [list(row) for row in cur.fetchall()]

            seen["syntax_error"] = error_text(lambda: cur.execute("SELEC name FROM thermostat"))
            seen["insert"] = error_text(
                lambda: cur.execute("INSERT INTO thermostat (name) VALUES ('x')")
            )

        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        seen["tables"], seen["thermostat_columns"] = tables_of(objects)
        schema = conn.adbc_get_table_schema("thermostat", db_schema_filter="public")
        seen["table_schema"] = schema.names
        assert isinstance(schema, pyarrow.Schema)
        info = conn.adbc_get_info()
        seen["vendor_name"] = info.get("vendor_name")
        seen["vendor_version"] = info.get("vendor_version")
    seen["wrong_password"] = error_text(wrong_password)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
