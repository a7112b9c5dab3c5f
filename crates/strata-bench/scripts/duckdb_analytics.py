"""DuckDB side of `strata bench analytics`: runs the same queries on the same cold Parquet files.

Usage: python duckdb_analytics.py SPEC.json, or SPEC on stdin with `-` (the benchmark embeds
this file and runs it as `python -c <this file> -`, the spec on stdin).

SPEC.json:
  {"tables": {"readings": {"files": ["/…/x.parquet", …], "columns": ["lat", …]}, …},
   "queries": [{"name": "last-loc", "sql": "SELECT …"}, …],
   "runs": 10, "warmup": 1, "threads": 2}

`columns` are columns every query may name; one that no file holds (a workload with no renamed
trucks has no `lat`) is added to the view as a NULL text column, as a table schema would.

Prints one JSON object on stdout:
  {"duckdb_version": "1.4.2", "threads": 2,
   "queries": [{"name": …, "times_ms": [...], "rows": [[...], ...], "error": null}, ...]}

Each time covers execute + fetchall, so DuckDB materializes the whole answer, as the other
engines do. Values are made JSON-friendly only (dates as ISO text, decimals as floats); the
benchmark normalizes and compares them.
"""

import datetime
import decimal
import json
import os
import sys
import time


def json_value(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity; keep them visible as text rather than failing.
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    return "'" + text.replace("'", "''") + "'"


def create_view(con, table, spec):
    files = "[" + ", ".join(quote_literal(f) for f in spec["files"]) + "]"
    # union_by_name: files of one metric may hold different columns (a day without renamed
    # trucks has no `lat`); missing ones read as NULL.
    source = f"read_parquet({files}, union_by_name = true)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    extra = [
        f"CAST(NULL AS VARCHAR) AS {quote_ident(column)}"
        for column in spec.get("columns", [])
        if column not in present
    ]
    select = ", ".join(["*"] + extra)
    con.execute(f"CREATE VIEW {quote_ident(table)} AS SELECT {select} FROM {source}")


def main():
    if len(sys.argv) != 2:
        print("usage: duckdb_analytics.py SPEC.json|-", file=sys.stderr)
        return 2
    if sys.argv[1] == "-":
        spec = json.load(sys.stdin)
    else:
        with open(sys.argv[1], encoding="utf-8") as handle:
            spec = json.load(handle)
    # The JSON answer gets stdout to itself: anything a library writes to file descriptor 1
    # from C (DuckDB draws its progress bar there, "\r 41% ▕██…", once a query runs for more
    # than 2 s) goes to stderr instead, where it cannot corrupt the answer.
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    import duckdb  # imported late so a missing module is reported by the caller's probe first

    con = duckdb.connect(database=":memory:")
    # A progress bar is noise in a benchmark; it also costs a little time on long queries.
    con.execute("SET enable_progress_bar = false")
    threads = int(spec.get("threads") or 0)
    if threads > 0:
        con.execute(f"SET threads = {threads}")
    # Cold timestamps are UTC instants (TIMESTAMP WITH TIME ZONE here): date_trunc and extract
    # must work in UTC, as in Strata and DataFusion.
    con.execute("SET TimeZone = 'UTC'")
    for table, table_spec in spec["tables"].items():
        create_view(con, table, table_spec)

    runs = int(spec["runs"])
    warmup = int(spec.get("warmup", 0))
    results = []
    for query in spec["queries"]:
        result = {"name": query["name"], "times_ms": [], "rows": [], "error": None}
        try:
            for attempt in range(warmup + runs):
                started = time.perf_counter()
                rows = con.execute(query["sql"]).fetchall()
                elapsed_ms = (time.perf_counter() - started) * 1000.0
                if attempt >= warmup:
                    result["times_ms"].append(elapsed_ms)
                result["rows"] = rows
            result["rows"] = [[json_value(cell) for cell in row] for row in result["rows"]]
        except Exception as error:  # reported per query; the other queries still run
            result["error"] = f"{type(error).__name__}: {error}"
            result["rows"] = []
        results.append(result)
    threads_used = con.execute("SELECT current_setting('threads')").fetchone()[0]
    json.dump(
        {"duckdb_version": duckdb.__version__, "threads": threads_used, "queries": results},
        answer,
    )
    answer.write("\n")
    answer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
