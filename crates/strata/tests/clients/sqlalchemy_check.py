"""SQLAlchemy 2 (postgresql+psycopg) and pandas against a running `strata serve`, driven by
crates/strata/tests/it/pg_clients.rs (issue 20). Connection details come from the environment
as for psycopg_check.py; prints one JSON object with what each step saw.
"""

import json
import os

import pandas
import sqlalchemy

url = sqlalchemy.URL.create(
    "postgresql+psycopg",
    username=os.environ["STRATA_PG_USER"],
    password=os.environ["STRATA_PG_PASSWORD"],
    host=os.environ["STRATA_PG_HOST"],
    port=int(os.environ["STRATA_PG_PORT"]),
    database="strata",
)
metric = os.environ.get("STRATA_PG_METRIC", "thermostat")
engine = sqlalchemy.create_engine(url)
with engine.connect() as connection:
    version = connection.execute(sqlalchemy.text("SELECT version()")).scalar()
    setting = connection.execute(
        sqlalchemy.text("SELECT current_setting('server_version_num')")
    ).scalar()
tables = sqlalchemy.inspect(engine).get_table_names()
frame = pandas.read_sql(
    f'SELECT timestamp, temperature, reading FROM "{metric}" ORDER BY timestamp LIMIT 3', engine
)
print(
    json.dumps(
        {
            "server_version_info": list(engine.dialect.server_version_info),
            "version": version,
            "server_version_num": setting,
            "tables": tables,
            "dtypes": {name: str(dtype) for name, dtype in frame.dtypes.items()},
            "rows": len(frame),
        }
    )
)
