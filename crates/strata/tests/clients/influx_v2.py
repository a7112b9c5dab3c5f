"""Writes line protocol to Strata with the official InfluxDB 2 Python client (issue 19).

Usage: influx_v2.py URL KEY. Writes three points through the synchronous write API (one under
the alias `tmp`, one of a new metric), then a batch with a malformed line, and prints one JSON
line: {"written": 3, "partial_error": "<the client's error text>"}.
"""

import json
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

T0_MS = 1_800_000_000_000


def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    with InfluxDBClient(url=url, token=key, org="any") as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        points = [
            Point("thermostat").tag("name", "py1").field("temp", 21.5).time(T0_MS, WritePrecision.MS),
            Point("thermostat").tag("name", "py1").field("tmp", 22.0).time(T0_MS + 1000, WritePrecision.MS),
            Point("boiler").tag("site", "north").field("pressure", 2).time(T0_MS, WritePrecision.MS),
        ]
        write.write(bucket="anything", record=points, write_precision=WritePrecision.MS)
        partial_error = None
        try:
            write.write(
                bucket="anything",
                record="thermostat,name=py2 temp=1 1800000002000\nthermostat,name=py2 temp=\n"
                "thermostat,name=py2 temp=3 1800000003000",
                write_precision=WritePrecision.MS,
            )
        except ApiException as error:
            partial_error = f"{error.status} {error.body}"
    print(json.dumps({"written": len(points), "partial_error": partial_error}))


if __name__ == "__main__":
    main()
