// node-postgres (npm `pg`) against a running `strata serve`, driven by
// crates/strata/tests/it/pg_clients.rs. Connection details come from the environment
// (STRATA_PG_HOST, STRATA_PG_PORT, STRATA_PG_USER, STRATA_PG_PASSWORD, STRATA_PG_METRIC).
// Prints one JSON object; any unexpected failure exits non-zero with its message.

import { createRequire } from 'node:module';
import pg from 'pg';

const metric = process.env.STRATA_PG_METRIC ?? 'thermostat';
const table = `"${metric.replaceAll('"', '""')}"`;

const config = {
  host: process.env.STRATA_PG_HOST,
  port: Number(process.env.STRATA_PG_PORT),
  user: process.env.STRATA_PG_USER,
  password: process.env.STRATA_PG_PASSWORD,
  database: 'strata',
  connectionTimeoutMillis: 20000,
};

// Dates become ISO text so the Rust side compares strings, not JS Date objects.
const plain = (rows) =>
  rows.map((row) =>
    Object.fromEntries(
      Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]),
    ),
  );

async function main() {
  const out = { pg: createRequire(import.meta.url)('pg/package.json').version };
  const client = new pg.Client(config);
  await client.connect();
  try {
    // An unnamed parameterized query: Parse/Bind/Execute with $1, $2.
    const param = await client.query(
      `SELECT name, reading, temperature FROM ${table} WHERE reading >= $1 AND name = $2 ORDER BY reading`,
      [5, "it's sensor-3"],
    );
    out.parameterized = {
      rows: plain(param.rows),
      types: param.fields.map((f) => f.dataTypeID),
    };

    // A named prepared statement: parsed once, then bound and executed with each value.
    out.prepared = [];
    for (const reading of [3, 150, 249, 100000]) {
      const result = await client.query({
        name: 'strata_by_reading',
        text: `SELECT "timestamp", name, reading FROM ${table} WHERE reading = $1`,
        values: [reading],
      });
      out.prepared.push({ reading, rows: plain(result.rows) });
    }

    // A timestamp parameter from a JS Date.
    const since = await client.query(
      `SELECT count(*) AS n FROM ${table} WHERE "timestamp" >= $1`,
      [new Date(Date.UTC(2015, 0, 12, 10, 12, 15) + 245 * 1000)],
    );
    out.since = plain(since.rows);

    try {
      await client.query('SELECT * FROM no_such_metric WHERE x = $1', [1]);
      out.unknown_table = null;
    } catch (error) {
      out.unknown_table = error.code;
    }
  } finally {
    await client.end();
  }

  const bad = new pg.Client({ ...config, password: 'not-a-strata-key' });
  try {
    await bad.connect();
    out.bad_password = null;
    await bad.end();
  } catch (error) {
    out.bad_password = { code: error.code, message: error.message };
  }

  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((error) => {
  process.stderr.write(`node_pg_check failed: ${error.stack ?? error}\n`);
  process.exit(1);
});
