//! The command line: every subcommand, flag and environment variable of the `strata` binary.
//!
//! Help text is part of the product: each subcommand's long help carries a runnable example, so
//! `strata <cmd> --help` is enough to use it without the README.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use strata_client::DEFAULT_URL;

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a multi-tenant store for IoT and time-series events where schema is optional and late",
    long_about = "Strata stores JSON events from devices as they arrive, makes them queryable by SQL at once, \
and lets you declare types, canonical names, aliases, renames and hidden fields later, as metadata, \
without rewriting data.\n\n\
Run a server with `strata serve`; every other command is a client of a running server \
(`--url`, env STRATA_URL) authenticated by a key (`--key`, env STRATA_KEY).",
    after_help = "Quick start:\n  \
strata serve --data-dir ./strata-data &\n  \
export STRATA_OPERATOR_TOKEN=$(cat ./strata-data/operator.token)\n  \
strata tenant create dpi                  # prints the tenant's admin key\n  \
export STRATA_KEY=<admin key>\n  \
strata write events.ndjson\n  \
strata sql 'SELECT * FROM thermostat LIMIT 10'"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Strata server (HTTP API; Postgres wire address reserved)
    #[command(
        long_about = "Run the Strata server: the HTTP API on --http and the Postgres wire \
protocol on --pg, storing everything under --data-dir.\n\n\
On first start the server creates an operator token, writes it to DIR/operator.token (mode 0600) \
and logs that path; set STRATA_OPERATOR_TOKEN to choose it instead. Logs go to stderr; set \
RUST_LOG (default `info`) to change the level. SIGTERM or SIGINT (Ctrl-C) stops the server \
gracefully: in-flight requests finish, then the stores close.\n\n\
Examples:\n  \
strata serve\n  \
strata serve --data-dir /var/lib/strata --http 0.0.0.0:8686 --pg 0.0.0.0:5433 \\\n    --tls-cert cert.pem --tls-key key.pem\n  \
STRATA_OPERATOR_TOKEN=secret RUST_LOG=debug strata serve --max-body-bytes 33554432\n  \
strata serve --smtp-url 'smtp://alerts:pw@mail.example.com:587?tls=required' --smtp-from alerts@example.com \\\n    \
--sms-url 'https://SID:TOKEN@api.twilio.com/2010-04-01/Accounts/SID/Messages.json' --sms-from +15550000"
    )]
    Serve(Box<ServeArgs>),

    /// Manage tenants (operator token required)
    #[command(subcommand_required = true)]
    Tenant {
        #[command(flatten)]
        conn: OperatorConnection,
        #[command(subcommand)]
        command: TenantCommand,
    },

    /// Create, list and revoke the tenant's API keys (admin key required)
    #[command(subcommand_required = true)]
    Key {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: KeyCommand,
    },

    /// Show or change the tenant's ingest settings (metric keys, timestamp patterns)
    #[command(subcommand_required = true)]
    Settings {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: SettingsCommand,
    },

    /// Inspect and change the schema: metrics, fields, types, aliases, renames, hidden fields
    #[command(subcommand_required = true)]
    Schema {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: SchemaCommand,
    },

    /// Send events from an NDJSON, JSON or CSV file (or stdin) to the server
    #[command(
        long_about = "Send events from a file (or `-` for stdin) to POST /api/v1/write in \
batches of NDJSON.\n\n\
Formats: ndjson (one JSON object per line), json (a JSON array of objects, or one or more \
objects), csv (a header row, then one event per row; every value is sent as a JSON string and \
empty cells are omitted). Without --format the format comes from the file extension \
(.ndjson/.jsonl, .json, .csv) or, failing that, from the first non-blank byte (`[` json, `{` \
ndjson, anything else csv).\n\n\
Each event names its metric under `metrictype` (or the tenant's metric keys); --metric supplies \
it for every event. A batch that fails with a connection error or a 5xx is retried with backoff \
up to 5 times; that is safe because an identical re-sent event is stored once.\n\n\
At the end the totals are printed, then every rejected event with its line number in the input \
and the reason. Exit code: 0 all accepted, 3 some events rejected (the others stored), 1 failure, 2 a usage error.\n\n\
Examples:\n  \
strata write events.ndjson\n  \
strata write readings.csv --metric thermostat\n  \
gzip -dc dump.json.gz | strata write - --format json --batch-size 10000"
    )]
    Write(WriteArgs),

    /// Run a SQL query, or start an interactive SQL shell
    #[command(
        long_about = "Run one SQL query against the tenant's data and print the result, or, \
with no query, start an interactive shell reading from stdin.\n\n\
Tables are the tenant's metrics (by name or any alias); system tables live in schema `strata` \
(`strata.errors`, `strata.unknown_fields`).\n\n\
Shell: the prompt is `strata> `; a statement may span lines and runs at its `;` (not one inside \
quotes or comments), and several statements on a line run in order. `\\q` quits, `\\s` shows \
the statements run so far, `\\?` or `\\h` the shell's help. With stdin not a terminal it runs \
a script (`strata sql < file.sql`, or `-f file.sql`) and exits 1 if any statement failed; \
-o FILE writes the results to FILE.\n\n\
--live keeps the query running (POST /api/v1/sql/live) and redraws the answer as events are \
committed: a filter over one metric (a tail) adds the new matching rows (the last 1,000 are \
shown), any other query is re-run at most every --min-interval-ms. With --format json each \
event is printed as one JSON line. Ctrl-C stops it.\n\n\
Examples:\n  \
strata sql 'SELECT name, avg(temperature) FROM thermostat GROUP BY name'\n  \
strata sql --live 'SELECT name, temperature FROM thermostat WHERE temperature > 90'\n  \
strata sql --format csv 'SELECT * FROM \"new machine\"' > out.csv\n  \
strata sql"
    )]
    Sql(SqlArgs),

    /// Compact the tenant's hot data into the cold tier now
    #[command(
        long_about = "Compact the tenant's hot data into the cold (Parquet) tier now, \
instead of waiting for the background compactor, and print the new watermark, the number of \
files written and the number of rows moved.\n\n\
Example:\n  \
strata compact --key $STRATA_KEY"
    )]
    Compact {
        #[command(flatten)]
        conn: Connection,
    },

    /// Where alert notifications go: webhooks, email and SMS (admin key required)
    #[command(
        subcommand_required = true,
        long_about = "Manage the tenant's notification channels (/api/v1/channels): a \
webhook (a JSON POST, signed with HMAC-SHA256 when the channel has a secret), email (through \
the server's --smtp-url relay) or SMS (through the server's --sms-url gateway). Alert rules name \
the channels they notify.\n\n\
Example:\n  \
strata channel create ops --kind webhook --webhook-url https://hooks.example.com/strata --secret s3cret\n  \
strata channel test ops"
    )]
    Channel {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: ChannelCommand,
    },

    /// Alert rules over SQL, over each written event, or on silence (admin key required)
    #[command(
        subcommand_required = true,
        long_about = "Manage the tenant's alert rules (/api/v1/alerts). Three kinds: `query` \
(SQL run every N seconds; each result row is one alert instance), `event` (a condition checked \
on every written batch of a metric) and `absence` (fires when a metric, a device or a field sent \
nothing for a while, under any of its names).\n\n\
Here --json is `alert create`'s rule body; the other subcommands take --json for raw output.\n\n\
Example:\n  \
strata alert create hot --kind query --every 10s --channel ops \\\n    \
--sql \"SELECT name, avg(temp) AS value FROM thermostat WHERE timestamp > now() - INTERVAL '5 minutes' GROUP BY name\" \\\n    \
--condition 'value > 30'\n  \
strata alert list"
    )]
    Alert {
        #[command(flatten)]
        conn: ServerConnection,
        #[command(subcommand)]
        command: AlertCommand,
    },

    /// Rollups: continuous aggregates that stay equal to their SQL (admin key required)
    #[command(
        subcommand_required = true,
        long_about = "Manage the tenant's rollups (/api/v1/rollups). A rollup is one GROUP BY \
over one metric whose time bucket is selected as `timestamp` (date_bin with a fixed interval, or \
date_trunc by second, minute, hour, day or week). It is read like a metric of its name and \
equals its SQL over the raw data, late events and re-sends included. Creating or altering one \
backfills it over the existing data while queries read the previous version.\n\n\
Example:\n  \
strata rollup create thermostat_1m \\\n    \
\"SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, name, avg(temp) AS temp FROM thermostat GROUP BY 1, 2\"\n  \
strata rollup show thermostat_1m --wait\n  \
strata sql \"SELECT * FROM thermostat_1m ORDER BY timestamp DESC LIMIT 10\""
    )]
    Rollup {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: RollupCommand,
    },

    /// Silences: mute the notifications whose labels match, for a while (admin key required)
    #[command(
        subcommand_required = true,
        long_about = "Manage silences (/api/v1/silences). While a silence is active, a \
notification whose labels (plus `alert` = the rule's name) match every matcher is recorded as \
`silenced` and not sent; an instance still firing when the silence ends is notified then.\n\n\
Example:\n  \
strata silence create --matcher alert=hot --matcher name=truck_7 --for 2h --comment maintenance\n  \
strata silence list"
    )]
    Silence {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: SilenceCommand,
    },

    /// Sources: NATS JetStream streams and MQTT broker topics consumed into the tenant (admin key required)
    #[command(
        subcommand_required = true,
        long_about = "Manage the tenant's sources (/api/v1/sources): external queues and \
brokers the server consumes into this tenant, with the same rules as /api/v1/write. `nats` \
is a durable JetStream pull consumer on a stream and subject; `mqtt` subscribes to topic \
filters on a broker with QoS 1 and a persistent session. Messages are acknowledged to the \
broker only once their events are durable. Each source runs on the server, survives restarts, \
reconnects with backoff, and shows its status, counts, last error and lag.\n\n\
Examples:\n  \
strata source add --kind nats --broker-url nats://127.0.0.1:4222 --stream DEVICES --subject 'devices.>'\n  \
strata source add --kind mqtt --broker-url mqtt://broker:1883 --topic 'plant/#' --username u --password p\n  \
strata source list\n  \
strata source remove 3f9c0a1b2c3d4e5f"
    )]
    Source {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: SourceCommand,
    },

    /// Print a shell completion script for strata
    #[command(
        long_about = "Print a completion script for every strata command and flag.\n\n\
Examples:\n  \
strata completions bash > ~/.local/share/bash-completion/completions/strata\n  \
strata completions zsh > \"${fpath[1]}/_strata\"\n  \
strata completions fish > ~/.config/fish/completions/strata.fish"
    )]
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print strata's man page, or write one page per command into a directory
    #[command(
        long_about = "Print the strata(1) man page (roff) on stdout, or with --out-dir write \
strata.1 and one page per command (strata-serve.1, strata-sql.1, ...) into DIR.\n\n\
Examples:\n  \
strata man | man -l -\n  \
strata man --out-dir /usr/local/share/man/man1"
    )]
    Man {
        /// Directory for one page per command (created when missing)
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },

    /// Benchmarks: workload generator, ingest, freshness, recent-window, aliases, compaction,
    /// analytics against DataFusion and DuckDB, alerts (see docs/benchmarks.md)
    #[cfg(feature = "bench")]
    #[command(subcommand_required = true)]
    Bench(Box<crate::commands::bench::BenchArgs>),
}

/// How a client command reaches a server and authenticates.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the Strata server
    #[arg(long, env = "STRATA_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// API key of the tenant (sent as `Authorization: Bearer <key>`)
    #[arg(long, env = "STRATA_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// Print the server's raw JSON answer instead of human-readable output
    #[arg(long, global = true)]
    pub json: bool,
}

/// Like [`Connection`], but the key is the operator token.
#[derive(Debug, Clone, Args)]
pub struct OperatorConnection {
    /// Base URL of the Strata server
    #[arg(long, env = "STRATA_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// Operator token (the content of DATA_DIR/operator.token); falls back to STRATA_KEY
    #[arg(
        long,
        env = "STRATA_OPERATOR_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub key: Option<String>,
    /// Print the server's raw JSON answer instead of human-readable output
    #[arg(long, global = true)]
    pub json: bool,
}

/// Like [`Connection`] without the global `--json` switch, which `strata alert create --json RULE`
/// takes for the rule body; each other `alert` subcommand has its own `--json` ([`RawJson`]).
#[derive(Debug, Clone, Args)]
pub struct ServerConnection {
    /// Base URL of the Strata server
    #[arg(long, env = "STRATA_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// API key of the tenant (sent as `Authorization: Bearer <key>`)
    #[arg(long, env = "STRATA_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
}

impl ServerConnection {
    pub fn with_json(self, json: bool) -> Connection {
        Connection {
            url: self.url,
            key: self.key,
            json,
        }
    }
}

/// The `--json` output switch of one subcommand.
#[derive(Debug, Clone, Copy, Args)]
pub struct RawJson {
    /// Print the server's raw JSON answer instead of human-readable output
    #[arg(long)]
    pub json: bool,
}

impl OperatorConnection {
    /// The operator token may also come from STRATA_KEY, so one exported variable is enough for
    /// an operator who only manages tenants.
    pub fn into_connection(self) -> Connection {
        let key = self
            .key
            .or_else(|| std::env::var("STRATA_KEY").ok().filter(|k| !k.is_empty()));
        Connection {
            url: self.url,
            key,
            json: self.json,
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory holding the catalog, the hot tier, the cold tier and the operator token
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./strata-data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API
    #[arg(
        long = "http",
        env = "STRATA_HTTP_ADDR",
        default_value = "127.0.0.1:8686"
    )]
    pub http_addr: SocketAddr,
    /// Address of the Postgres wire protocol
    #[arg(long = "pg", env = "STRATA_PG_ADDR", default_value = "127.0.0.1:5433")]
    pub pg_addr: SocketAddr,
    /// Address of the MQTT listener (off unless given), e.g. 127.0.0.1:1883. Devices connect
    /// with username = tenant, password = a write key, and publish JSON events to
    /// `<metric>` or `<metric>/<device>` (or the tenant's `mqtt_topics` templates)
    #[arg(long = "mqtt", env = "STRATA_MQTT_ADDR")]
    pub mqtt_addr: Option<SocketAddr>,
    /// Serve MQTT without TLS on a non-loopback address. Tenant keys are the passwords and
    /// would cross the network in clear text.
    #[arg(long, env = "STRATA_MQTT_ALLOW_INSECURE")]
    pub mqtt_allow_insecure: bool,
    /// MQTT connections open at once; more are closed as they arrive
    #[arg(long, env = "STRATA_MQTT_MAX_CONNECTIONS", default_value_t = strata_node::MQTT_MAX_CONNECTIONS)]
    pub mqtt_max_connections: usize,
    /// Address of the Arrow Flight SQL listener (off unless given), e.g. 127.0.0.1:8687.
    /// Clients (ADBC, JDBC, the arrow-flight client) log in with username = tenant,
    /// password = a read or admin key, and get a bearer token
    #[arg(long = "flight", env = "STRATA_FLIGHT_ADDR")]
    pub flight_addr: Option<SocketAddr>,
    /// Serve Flight SQL without TLS on a non-loopback address. Tenant keys are the passwords
    /// and would cross the network in clear text.
    #[arg(long, env = "STRATA_FLIGHT_ALLOW_INSECURE")]
    pub flight_allow_insecure: bool,
    /// Flight SQL connections open at once; more are closed as they arrive
    #[arg(long, env = "STRATA_FLIGHT_MAX_CONNECTIONS", default_value_t = strata_node::FLIGHT_MAX_CONNECTIONS)]
    pub flight_max_connections: usize,
    /// PEM certificate chain for TLS on the Postgres, MQTT and Flight SQL ports (needs --tls-key)
    #[arg(long, env = "STRATA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the Postgres, MQTT and Flight SQL ports (needs --tls-cert)
    #[arg(long, env = "STRATA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the Postgres port without TLS on a non-loopback address. Tenant keys are the
    /// passwords and would cross the network in clear text.
    #[arg(long, env = "STRATA_PG_ALLOW_INSECURE")]
    pub pg_allow_insecure: bool,
    /// Largest request body accepted on /api/v1/write, in bytes
    #[arg(long, env = "STRATA_MAX_BODY_BYTES", default_value_t = strata_core::Limits::default().write_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest single event inside a write body, in bytes
    #[arg(long, env = "STRATA_MAX_EVENT_BYTES", default_value_t = strata_core::Limits::default().event_bytes)]
    pub max_event_bytes: usize,
    /// Most fields (after flattening nested objects) in one event
    #[arg(long, env = "STRATA_MAX_FIELDS_PER_EVENT", default_value_t = strata_core::Limits::default().fields_per_event)]
    pub max_fields_per_event: usize,
    /// Largest request body on the schema, key, tenant and settings endpoints, in bytes
    #[arg(long, env = "STRATA_MAX_ADMIN_BODY_BYTES", default_value_t = strata_core::Limits::default().admin_body_bytes)]
    pub max_admin_body_bytes: usize,
    /// Largest raw payload kept in the error log for one rejected event, in bytes
    #[arg(long, env = "STRATA_MAX_ERROR_PAYLOAD_BYTES", default_value_t = strata_core::Limits::default().error_payload_bytes)]
    pub max_error_payload_bytes: usize,
    /// Most distinct field names (keys as devices sent them) one metric may hold; an event that
    /// would add names beyond it is rejected (and kept in the error log)
    #[arg(long, env = "STRATA_MAX_FIELD_NAMES_PER_METRIC", default_value_t = strata_core::Limits::default().field_names_per_metric)]
    pub max_field_names_per_metric: usize,
    /// Committed write batches (one per request) the event stream holds for a slow consumer
    /// (alert rules, live queries, rollups); past that the consumer re-reads what it missed
    /// from the hot tier
    #[arg(long, env = "STRATA_EVENT_STREAM_BATCHES", default_value_t = strata_core::Limits::default().event_stream_batches, value_parser = parse_stream_batches, hide_short_help = true)]
    pub event_stream_batches: usize,
    /// Memory one tenant's SQL session may hold at once (sorts, joins, aggregations), in bytes;
    /// a query needing more fails with a clear error
    #[arg(long, env = "STRATA_QUERY_MEMORY_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub query_memory_bytes: usize,
    /// Wall-clock limit for one SQL query, planning and streaming included, in seconds
    #[arg(long, env = "STRATA_QUERY_TIMEOUT_SECS", default_value_t = 30)]
    pub query_timeout_secs: u64,
    /// Threads that plan and run SQL queries, at a lower OS priority than the threads that
    /// accept requests and acknowledge writes. Default: one per core
    #[arg(long, env = "STRATA_QUERY_THREADS")]
    pub query_threads: Option<usize>,
    /// Where compacted (cold) Parquet files go: a directory, or a URL: file:///srv/cold,
    /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix. Cloud credentials come from
    /// the AWS_*, GOOGLE_* and AZURE_* variables (AWS_ENDPOINT + AWS_ALLOW_HTTP=true for MinIO
    /// and other S3-compatible stores); startup fails if the store cannot be listed.
    /// Default: DATA_DIR/cold
    #[arg(long, env = "STRATA_COLD_URL")]
    pub cold_url: Option<String>,
    /// Hot rows older than this many seconds are compacted into the cold tier
    #[arg(long, env = "STRATA_COMPACT_AFTER_SECS", default_value_t = 3600)]
    pub compact_after_secs: u64,
    /// Seconds between background compactions; 0 turns them off (POST /api/v1/compact still works)
    #[arg(long, env = "STRATA_COMPACT_INTERVAL_SECS", default_value_t = 300)]
    pub compact_interval_secs: u64,
    /// Which tier federated scans prefer: cost (cheapest estimated plan), cold or hot. For tests
    /// and benchmarks that compare tiers.
    #[arg(
        long,
        env = "STRATA_PLAN_TIER",
        value_enum,
        default_value = "cost",
        hide_short_help = true
    )]
    pub plan_tier: PlanTierArg,
    /// Milliseconds between rollup maintenance cycles: how far a rollup may lag the writes
    /// (GET /api/v1/rollups/NAME?sync=true waits for the next cycle instead)
    #[arg(long, env = "STRATA_ROLLUP_CYCLE_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub rollup_cycle_ms: u64,
    /// Minutes of source data one rollup backfill step recomputes (each step commits its
    /// progress, so a restart resumes there)
    #[arg(long, env = "STRATA_ROLLUP_BACKFILL_CHUNK_MINS", default_value_t = 1440, value_parser = clap::value_parser!(u64).range(1..=525_600), hide_short_help = true)]
    pub rollup_backfill_chunk_mins: u64,
    /// Weekly hot partitions older than this many days are dropped once fully compacted
    #[arg(long, env = "STRATA_HOT_RETENTION_DAYS", default_value_t = 56)]
    pub hot_retention_days: u64,
    /// Seconds a replaced or expired cold file stays readable for queries planned before it
    /// left the manifest; it is deleted after that
    #[arg(long, env = "STRATA_RETIRED_GRACE_SECS", default_value_t = 600)]
    pub retired_grace_secs: u64,
    /// Seconds after `DELETE /api/v1/schema/metrics/{metric}` before the metric's rows (hot and
    /// cold) are purged by the background job
    #[arg(long, env = "STRATA_PURGE_DELETED_AFTER_SECS", default_value_t = 7 * 86_400)]
    pub purge_deleted_after_secs: u64,
    /// Seconds a field stays hidden before the compactor purges its values from cold files (a
    /// hide is a soft delete: undoing it within this window loses nothing); the hot copies go
    /// when their weekly partition ages off
    #[arg(long, env = "STRATA_PURGE_HIDDEN_AFTER_SECS", default_value_t = 7 * 86_400)]
    pub purge_hidden_after_secs: u64,
    /// Seconds a connection may take to send a complete request head; also how long an idle
    /// keep-alive connection stays open waiting for its next request
    #[arg(long, env = "STRATA_HTTP_HEADER_TIMEOUT_SECS", default_value_t = strata_node::DEFAULT_HEADER_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_secs: u64,
    /// Most HTTP connections open at once; one more is answered 503 and closed
    #[arg(long, env = "STRATA_HTTP_MAX_CONNECTIONS", default_value_t = strata_node::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub http_max_connections: usize,
    /// Let GET /metrics answer clients on other hosts. Off, it answers only loopback clients:
    /// it needs no key, and it names every tenant's metrics
    #[arg(long, env = "STRATA_ALLOW_REMOTE_METRICS")]
    pub allow_remote_metrics: bool,
    /// Log line format on stderr: text for people, json (one object per line, with the span
    /// fields) for log collectors
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Rows the hot tier keeps in its write buffer (durable in its write-ahead log, readable by
    /// every query) before it flushes them into its tables in one sorted bulk ingestion. Bounds
    /// the buffer's memory: about 175 MB per million rows of 12 values. Writes wait for the flusher
    /// when 4 times this many rows are buffered.
    #[arg(long, env = "STRATA_HOT_FLUSH_ROWS", default_value_t = strata_node::HOT_FLUSH_ROWS, value_parser = clap::value_parser!(u64).range(1..), hide_short_help = true)]
    pub hot_flush_rows: u64,
    /// Seconds after which buffered rows are flushed even if fewer than --hot-flush-rows: bounds
    /// how much write-ahead log a restart replays
    #[arg(long, env = "STRATA_HOT_FLUSH_SECS", default_value_t = strata_node::HOT_FLUSH_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..), hide_short_help = true)]
    pub hot_flush_secs: u64,
    /// Profile the values devices send (JSON kinds, how strings parse, ranges, samples, which
    /// names occur together), the evidence behind GET /api/v1/schema/suggestions. Off, only
    /// the unknown-field statistics are kept
    #[arg(long, env = "STRATA_PROFILING", value_enum, default_value_t = Switch::On)]
    pub profiling: Switch,
    /// Acknowledge writes before they are fsync'd. Loses acknowledged events on a crash; for
    /// benchmarks only.
    #[arg(long, hide_short_help = true)]
    pub unsafe_no_fsync: bool,
    /// SMTP relay for email channels: smtp://127.0.0.1:2525 (plain),
    /// smtp://user:pass@mail.example.com:587?tls=required (STARTTLS), smtps://mail.example.com:465
    /// (TLS). Without it, email channels are refused
    #[arg(
        long,
        env = "STRATA_SMTP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// PEM file of certificates to trust for the SMTP relay's TLS (STARTTLS or smtps://) besides
    /// the system's roots: a private relay's CA or its self-signed certificate
    #[arg(long, env = "STRATA_SMTP_CA_FILE", value_name = "PEM")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// Sender address of alert emails, e.g. alerts@example.com. Default: strata@localhost
    #[arg(long, env = "STRATA_SMTP_FROM", value_name = "ADDR")]
    pub smtp_from: Option<String>,
    /// Twilio-compatible Messages API for SMS channels, credentials in the URL (sent as HTTP
    /// Basic auth): https://SID:TOKEN@api.twilio.com/2010-04-01/Accounts/SID/Messages.json.
    /// Without it, SMS channels are refused
    #[arg(
        long,
        env = "STRATA_SMS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub sms_url: Option<String>,
    /// Sender number of alert SMS (the `From` of each message), E.164: +15550000
    #[arg(long, env = "STRATA_SMS_FROM", value_name = "NUMBER")]
    pub sms_from: Option<String>,
    /// Let webhook channels target loopback, private, link-local and CGNAT addresses (refused
    /// by default so a tenant cannot reach the server's own network)
    #[arg(long, env = "STRATA_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,
    /// How often, in milliseconds, query and absence rules are checked for being due; bounds
    /// how late past its interval a rule is evaluated
    #[arg(long, env = "STRATA_ALERT_TICK_MS", value_name = "MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub alert_tick_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PlanTierArg {
    Cost,
    Cold,
    Hot,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first admin key
    #[command(
        long_about = "Create a tenant (POST /api/v1/tenants) and print its first admin \
key. The key is shown once; store it.\n\n\
The operator token comes from --key, env STRATA_OPERATOR_TOKEN or env STRATA_KEY.\n\n\
Example:\n  \
STRATA_OPERATOR_TOKEN=$(cat strata-data/operator.token) strata tenant create dpi"
    )]
    Create {
        /// Name of the new tenant (also its Postgres user name)
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key with a role
    #[command(
        long_about = "Create an API key (POST /api/v1/keys) and print it. The secret is \
shown once.\n\nRoles: read (SQL and schema reads), write (writes only), admin (everything).\n\n\
Example:\n  strata key create --role write"
    )]
    Create {
        /// What the key may do
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List the tenant's keys (ids and roles; never secrets)
    #[command(
        long_about = "List the tenant's keys (GET /api/v1/keys): id and role, never the \
secret.\n\nExample:\n  strata key list"
    )]
    List,
    /// Revoke a key by its id
    #[command(
        long_about = "Revoke a key (DELETE /api/v1/keys/{id}); requests made with it fail \
from now on. Find the id with `strata key list`.\n\nExample:\n  strata key revoke 3"
    )]
    Revoke {
        /// Id of the key, as shown by `strata key list`
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Read,
    Write,
    Admin,
}

impl RoleArg {
    pub fn as_role(self) -> strata_core::Role {
        match self {
            RoleArg::Read => strata_core::Role::Read,
            RoleArg::Write => strata_core::Role::Write,
            RoleArg::Admin => strata_core::Role::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show the tenant's settings
    #[command(
        long_about = "Show the tenant's ingest settings (GET /api/v1/settings): the keys \
that name an event's metric, in order, and the extra timestamp patterns.\n\n\
Example:\n  strata settings show"
    )]
    Show,
    /// Change the tenant's settings; only the given settings change
    #[command(
        long_about = "Change the tenant's ingest settings (PATCH /api/v1/settings). Only \
the settings given are sent; the others keep their value.\n\n\
--metric-keys: the keys that name an event's metric, first present wins \
(comma-separated).\n\
--timestamp-patterns: extra strftime patterns for timestamps (repeat the flag; patterns may \
contain commas).\n\n\
Examples:\n  \
strata settings set --metric-keys metrictype,source\n  \
strata settings set --timestamp-patterns '%d/%m/%Y %H:%M' --timestamp-patterns '%Y%m%d%H%M%S'"
    )]
    Set(SettingsSetArgs),
}

#[derive(Debug, Args)]
pub struct SettingsSetArgs {
    /// Keys that name an event's metric, in order of precedence (comma-separated)
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub metric_keys: Option<Vec<String>>,
    /// A strftime pattern accepted for timestamps; repeat for several
    #[arg(long = "timestamp-patterns", alias = "timestamp-pattern")]
    pub timestamp_patterns: Option<Vec<String>>,
    /// Delete cold data older than this many days (0 keeps it forever)
    #[arg(long)]
    pub cold_retention_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Show metrics, their fields and the unknown fields devices sent
    #[command(
        long_about = "Show the schema (GET /api/v1/schema): each metric with its aliases, \
its declared fields (type, aliases, hidden) and the unknown fields devices sent (how often, \
which JSON types, when last seen).\n\n\
Examples:\n  strata schema show\n  strata schema show thermostat\n  strata schema show --json"
    )]
    Show {
        /// Show only this metric (its name or any alias)
        metric: Option<String>,
    },
    /// Show every schema version: number, time and change
    #[command(
        long_about = "Show every schema version (GET /api/v1/schema/history): its number, \
when it was made and what changed.\n\nExample:\n  strata schema history"
    )]
    History,
    /// Show schema suggestions with their evidence; apply or dismiss one
    #[command(
        long_about = "Show what Strata suggests for the schema (GET /api/v1/schema/suggestions), \
surest first: types for unknown fields (\"99.8% of 41,200 values read as double; \
counter-examples: n/a\"), aliases for names that never occur together and look alike (a \
firmware rename, an abbreviation, a unit suffix), aliases for names queries use that do not \
exist, and hiding fields devices stopped sending. Suggestions come from profiles kept at \
ingest and from query usage; nothing scans stored data.\n\n\
--apply ID makes the change through the normal versioned schema path; --dismiss ID hides the \
suggestion for good.\n\n\
Examples:\n  strata schema suggest\n  strata schema suggest --apply type-3-1f2e3d4c5b6a7988\n  \
strata schema suggest --dismiss alias-3-0123456789abcdef\n  strata schema suggest --stale-days 7 --json"
    )]
    Suggest {
        /// Apply the suggestion with this id
        #[arg(long, conflicts_with = "dismiss")]
        apply: Option<String>,
        /// Dismiss the suggestion with this id for good
        #[arg(long)]
        dismiss: Option<String>,
        /// Days without a value after which a field is suggested hidden (default 30)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        stale_days: Option<u32>,
    },
    /// Create a metric, optionally with aliases
    #[command(
        long_about = "Create a metric (POST /api/v1/schema/metrics). Metrics are also \
created on first sight by writes; create one ahead to give it aliases.\n\n\
Example:\n  strata schema create-metric thermostat --alias machine1 --alias machine1b"
    )]
    CreateMetric {
        /// Display name of the metric
        name: String,
        /// Another name of the metric; repeat for several
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// Declare a metric and its fields from one sample event
    #[command(
        long_about = "Declare a metric and typed fields from one sample event (a JSON \
object in a file, or `-` for stdin).\n\n\
The metric is named by --metric, else by the event's metric key (`metrictype` or the tenant's \
configured metric keys). It is created if needed (an existing metric is fine), then every field \
is declared with a type inferred from the sample: JSON boolean -> boolean, integer -> integer, \
other number -> double, RFC 3339 text -> timestamp, other text -> string, array -> string. \
Nested objects flatten to dotted names (`gps.lat`) as on ingest. `timestamp` and the metric key \
are skipped, and so are null values (their type cannot be inferred).\n\n\
Example:\n  strata schema create --from-sample event.json --metric thermostat"
    )]
    Create {
        /// File holding one sample event (a JSON object), or `-` for stdin
        #[arg(long = "from-sample", value_name = "FILE")]
        from_sample: PathBuf,
        /// Name of the metric (default: the sample's metric key)
        #[arg(long)]
        metric: Option<String>,
    },
    /// Rename a metric, change its aliases, timestamp aliases/patterns or series keys
    #[command(
        long_about = "Change a metric (PATCH /api/v1/schema/metrics/{metric}). Only the \
options given are sent. A rename keeps the old name working as an alias.\n\n\
Examples:\n  \
strata schema alter-metric machine1 --rename-to thermostat\n  \
strata schema alter-metric thermostat --add-alias t1 --remove-alias machine1b\n  \
strata schema alter-metric thermostat --timestamp-alias ts --timestamp-pattern '%d/%m/%Y %H:%M'\n  \
strata schema alter-metric thermostat --series-key name --series-key site"
    )]
    AlterMetric(AlterMetricArgs),
    /// Delete a metric (soft: its name can be reused)
    #[command(
        long_about = "Delete a metric (DELETE /api/v1/schema/metrics/{metric}). It \
disappears from SQL at once; its data is kept until retention removes it, and the name can be \
reused for a new, empty metric.\n\nExample:\n  strata schema delete-metric \"old machine\""
    )]
    DeleteMetric {
        /// The metric (its name or any alias)
        metric: String,
    },
    /// Drop a field: hidden at once and its data purged at the next compaction
    #[command(
        long_about = "Drop a field (DELETE /api/v1/schema/metrics/{metric}/fields/{field}). \
FIELD may be a declared field or an unknown field's incoming name. It is hidden at once, with \
no undo window: the next compaction purges its values from every cold file (hot copies go \
when their weekly partition ages off). Declaring it visible again shows only what is sent \
afterwards.\n\nExample:\n  strata schema drop-field thermostat debug_blob"
    )]
    DropField {
        /// The metric (its name or any alias)
        metric: String,
        /// The field (its name or any alias) or an unknown field's incoming name
        field: String,
    },
    /// Merge another metric into this one (no data rewrite)
    #[command(
        long_about = "Merge metric FROM into METRIC (POST /api/v1/schema/metrics/{metric}/merge). \
FROM's names become aliases of METRIC, whose table then reads the rows and cold files of both, \
each exactly once, with no data rewrite; later writes to FROM land in METRIC. Fields join by \
name; a clash (types or derived expressions that differ, a field joining two) is refused with \
the clash named.\n\nExample:\n  strata schema merge-metric thermostat --from thermo"
    )]
    MergeMetric {
        /// The metric that stays (its name or any alias)
        metric: String,
        /// The metric merged into it
        #[arg(long)]
        from: String,
    },
    /// Declare a field: its type, aliases, hidden flag
    #[command(
        long_about = "Declare a field (PUT /api/v1/schema/metrics/{metric}/fields/{field}). \
FIELD may be the incoming name of an unknown field, which becomes declared.\n\n\
Types: string, boolean, integer, double, timestamp, binary (synonyms: varchar, text, bool, \
bigint, int, long, float, bytes).\n\n\
Examples:\n  strata schema declare-field thermostat temperature --type double --alias temp --alias tmp\n  \
strata schema declare-field oven temp_c --expression '(temp_f - 32) * 5 / 9'\n  \
strata schema declare-field climate temperature --type double --alias tempF --conversion 'tempF=(tempF - 32) * 5 / 9'"
    )]
    DeclareField(DeclareFieldArgs),
    /// Rename a field, change its type, aliases or hidden flag
    #[command(
        long_about = "Change a field (PATCH /api/v1/schema/metrics/{metric}/fields/{field}). \
Only the options given are sent. A rename keeps the old name working as an alias.\n\n\
Examples:\n  \
strata schema alter-field thermostat temp --rename-to temperature\n  \
strata schema alter-field thermostat temperature --type double --add-alias t\n  \
strata schema alter-field thermostat secret --hidden true"
    )]
    AlterField(AlterFieldArgs),
}

#[derive(Debug, Args)]
pub struct AlterMetricArgs {
    /// The metric (its name or any alias)
    pub metric: String,
    /// New display name
    #[arg(long)]
    pub rename_to: Option<String>,
    /// Alias to add; repeat for several
    #[arg(long = "add-alias")]
    pub add_aliases: Vec<String>,
    /// Alias to remove; repeat for several
    #[arg(long = "remove-alias")]
    pub remove_aliases: Vec<String>,
    /// Key that carries the event time for this metric; repeat for several
    #[arg(long = "timestamp-alias")]
    pub timestamp_aliases: Vec<String>,
    /// strftime pattern accepted for this metric's timestamps; repeat for several
    #[arg(long = "timestamp-pattern")]
    pub timestamp_patterns: Vec<String>,
    /// Field identifying one device or series, in order; repeat for several
    #[arg(long = "series-key")]
    pub series_keys: Vec<String>,
    /// Days of raw data kept for this metric (when shorter than the tenant's cold retention;
    /// rollups over it keep their buckets); 0 clears it
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// How numeric timestamps of later events are read: ms (default), s, us, ns, or auto (by
    /// magnitude)
    #[arg(long, value_name = "UNIT")]
    pub timestamp_unit: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeclareFieldArgs {
    /// The metric (its name or any alias)
    pub metric: String,
    /// The field's name (may be an unknown field's incoming name)
    pub field: String,
    /// Declared type (string, boolean, integer, double, timestamp, binary)
    #[arg(long = "type", value_parser = parse_field_type)]
    pub field_type: Option<strata_core::FieldType>,
    /// Another name of the field; repeat for several
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// Hide the field from SQL
    #[arg(long)]
    pub hidden: bool,
    /// Make it a derived field: a SQL expression over other fields of the metric, computed on
    /// read (nothing is stored)
    #[arg(long, value_name = "SQL")]
    pub expression: Option<String>,
    /// Convert one name's values on read, as NAME=SQL over that name (`tempF=(tempF - 32) * 5 /
    /// 9`); the name must be the field's or one of its aliases; repeat for several
    #[arg(long = "conversion", value_name = "NAME=SQL", value_parser = parse_conversion)]
    pub conversions: Vec<(String, String)>,
}

fn parse_conversion(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, sql)) if !name.trim().is_empty() && !sql.trim().is_empty() => {
            Ok((name.trim().to_string(), sql.trim().to_string()))
        }
        _ => Err(format!(
            "{text:?} is not NAME=SQL (for example tempF='(tempF - 32) * 5 / 9')"
        )),
    }
}

#[derive(Debug, Args)]
pub struct AlterFieldArgs {
    /// The metric (its name or any alias)
    pub metric: String,
    /// The field (its name or any alias)
    pub field: String,
    /// New display name
    #[arg(long)]
    pub rename_to: Option<String>,
    /// New declared type (string, boolean, integer, double, timestamp, binary)
    #[arg(long = "type", value_parser = parse_field_type)]
    pub field_type: Option<strata_core::FieldType>,
    /// Alias to add; repeat for several
    #[arg(long = "add-alias")]
    pub add_aliases: Vec<String>,
    /// Alias to remove; repeat for several
    #[arg(long = "remove-alias")]
    pub remove_aliases: Vec<String>,
    /// Hide (true) or show (false) the field in SQL
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub hidden: Option<bool>,
}

fn parse_field_type(text: &str) -> Result<strata_core::FieldType, String> {
    text.parse()
        .map_err(|e: strata_core::UnknownFieldType| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    Ndjson,
    Json,
    Csv,
}

/// Most events one batch may hold: far above any useful batch, far below what would exhaust
/// memory.
pub const MAX_BATCH_SIZE: usize = 1_000_000;

#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Input file, or `-` for stdin
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
    /// Metric of every event (sent as ?metric=); otherwise each event names its own
    #[arg(long)]
    pub metric: Option<String>,
    /// Input format (default: from the extension or the first non-blank byte)
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Most events per request
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH_SIZE as u64))]
    pub batch_size: u64,
    /// Most bytes per request; keep it below the server's --max-body-bytes
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub batch_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// The SQL query; omit it for an interactive shell
    pub query: Option<String>,
    /// Run the statements of this file (`;`-separated, as in the shell) instead of a query
    #[arg(short = 'f', long, conflicts_with = "query")]
    pub file: Option<std::path::PathBuf>,
    /// Write results to this file (created or truncated) instead of stdout; errors still go to
    /// stderr
    #[arg(short = 'o', long, conflicts_with = "live")]
    pub output: Option<std::path::PathBuf>,
    /// Output format (--json is the same as --format json)
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
    /// Keep the query running and redraw its answer as events arrive
    #[arg(long, requires = "query")]
    pub live: bool,
    /// The shell's history file, kept across sessions (an empty value keeps history for the
    /// session only). Default: ~/.strata_history
    #[arg(long, env = "STRATA_HISTORY", value_name = "FILE")]
    pub history: Option<std::path::PathBuf>,
    /// With --live: least time between two re-runs of a query that is not a tail
    #[arg(long, requires = "live", value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub min_interval_ms: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a webhook, email or SMS channel
    #[command(
        long_about = "Create a notification channel (POST /api/v1/channels).\n\n\
webhook: --webhook-url (http or https) receives each notification as a JSON POST. With \
--secret, each request carries `X-Strata-Signature: sha256=<hex HMAC-SHA256 of the body>`. \
--timeout bounds one delivery (default 5s, at most 60s). Loopback and private addresses are \
refused unless the server runs with --allow-private-webhooks.\n\
email: each --to is a recipient address; the server needs --smtp-url.\n\
sms: each --to is an E.164 number (+ then 8-15 digits); the server needs --sms-url.\n\n\
Names are 1-64 characters of A-Z a-z 0-9 _ . -\n\n\
Examples:\n  \
strata channel create ops --kind webhook --webhook-url https://hooks.example.com/strata --secret s3cret --timeout 10s\n  \
strata channel create mail --kind email --to oncall@example.com --to ops@example.com\n  \
strata channel create pager --kind sms --to +15550100"
    )]
    Create(ChannelCreateArgs),
    /// List the channels (never their secrets)
    #[command(
        long_about = "List the tenant's channels (GET /api/v1/channels): name, kind, target \
(webhook URL or recipients), whether a secret is set, timeout and creation time. Secrets are \
never shown.\n\nExample:\n  strata channel list"
    )]
    List,
    /// Delete a channel no rule uses any more
    #[command(
        long_about = "Delete a channel (DELETE /api/v1/channels/{name}). A channel that a rule \
still names is refused (409): remove it from the rule first.\n\nExample:\n  \
strata channel delete ops"
    )]
    Delete {
        /// Name of the channel
        name: String,
    },
    /// Send one test notification through a channel now
    #[command(
        long_about = "Send one test notification (state `test`, alert `test`) through a \
channel now (POST /api/v1/channels/{name}/test), bypassing the outbox, and report whether it \
was delivered. A failure (refused connection, non-2xx answer, SMTP error) is printed with the \
reason and exits 1.\n\nExample:\n  strata channel test ops"
    )]
    Test {
        /// Name of the channel
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelKindArg {
    Webhook,
    Email,
    Sms,
}

impl ChannelKindArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKindArg::Webhook => "webhook",
            ChannelKindArg::Email => "email",
            ChannelKindArg::Sms => "sms",
        }
    }
}

#[derive(Debug, Args)]
pub struct ChannelCreateArgs {
    /// Name of the channel (1-64 characters of A-Z a-z 0-9 _ . -)
    pub name: String,
    /// What the channel sends
    #[arg(long, value_enum)]
    pub kind: ChannelKindArg,
    /// webhook: the http(s) URL that receives each notification (--url is the Strata server)
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// webhook: secret of the X-Strata-Signature HMAC-SHA256 header
    #[arg(long)]
    pub secret: Option<String>,
    /// webhook: how long one delivery may take, e.g. 5s (the default; at most 60s)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// email: a recipient address; sms: an E.164 number such as +15550100. Repeat for several
    #[arg(long = "to", value_name = "RECIPIENT")]
    pub to: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RollupCommand {
    /// Define a rollup and start its backfill
    Create {
        name: String,
        /// The rollup's SQL (a time-bucketed GROUP BY over one metric)
        sql: String,
        /// Wait until the backfill is complete, showing its progress
        #[arg(long)]
        wait: bool,
    },
    /// List the tenant's rollups with state and progress
    List,
    /// Show one rollup
    Show {
        name: String,
        /// Wait until the backfill is complete, showing its progress
        #[arg(long)]
        wait: bool,
        /// Answer once the rollup reflects every write acknowledged before this command
        #[arg(long)]
        sync: bool,
    },
    /// Change a rollup's SQL: the new version backfills while queries read the old one
    Alter {
        name: String,
        sql: String,
        /// Wait until the new version is complete, showing its progress
        #[arg(long)]
        wait: bool,
    },
    /// Delete a rollup and its stored rows
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Create a rule from flags, from --json or from --file
    #[command(
        long_about = "Create an alert rule (POST /api/v1/alerts), from flags or from a JSON \
body (--json TEXT, or --file FILE, `-` for stdin; a NAME given with them replaces the body's \
name). Durations are `<n><unit>` with unit ms, s, m, h or d.\n\n\
query: --sql runs every --every (default 10s, 1s to 1d); each result row is one instance, keyed \
by its columns other than `value`. --condition tests `value` (`value > 30`); without it every \
row fires. --no-data says what an empty result means.\n\
event: --condition is a SQL boolean over --metric's fields, checked on every written batch; \
instances are the metric's series (or --by fields).\n\
absence: fires when an instance (one per --by value set, or the whole metric) sent no event, \
or no non-null --field under any of its names, for --for.\n\
All: --for (pending time before firing), --keep-firing-for, --repeat-interval (default 4h), \
--group-wait, --send-resolved, --channel (repeat), --label k=v (static labels).\n\n\
Examples:\n  \
strata alert create hot --kind query --every 10s --for 1m --channel ops \\\n    \
--sql \"SELECT name, avg(temp) AS value FROM thermostat WHERE timestamp > now() - INTERVAL '1 minute' GROUP BY name\" \\\n    \
--condition 'value > 30'\n  \
strata alert create fault --kind event --metric thermostat --condition \"temp > 90 AND status = 'fault'\" --channel ops\n  \
strata alert create silent --kind absence --metric thermostat --by name --field temp --for 5m --channel pager\n  \
strata alert create --json '{\"name\":\"fault\",\"kind\":\"event\",\"metric\":\"thermostat\",\"condition\":\"temp > 90\",\"channels\":[\"ops\"]}'\n  \
strata alert create --file rule.json"
    )]
    Create(Box<AlertCreateArgs>),
    /// List the rules with their health and instances
    #[command(
        long_about = "List the tenant's rules (GET /api/v1/alerts): kind, health, how many \
instances fire, channels and when each was last evaluated. --json prints every rule's \
definition and instances.\n\nExamples:\n  strata alert list\n  strata alert list --json"
    )]
    List {
        #[command(flatten)]
        output: RawJson,
    },
    /// Show one rule: its definition and each instance's state
    #[command(
        long_about = "Show one rule (GET /api/v1/alerts/{name}): its definition, health, last \
error, and each instance with its labels, state (normal, pending, firing, nodata, error), \
value and since when.\n\nExample:\n  strata alert show hot"
    )]
    Show {
        /// Name of the rule
        name: String,
        #[command(flatten)]
        output: RawJson,
    },
    /// Delete a rule (its pending notifications are still delivered)
    #[command(
        long_about = "Delete a rule (DELETE /api/v1/alerts/{name}). Notifications it already \
queued are still delivered.\n\nExample:\n  strata alert delete hot"
    )]
    Delete {
        /// Name of the rule
        name: String,
        #[command(flatten)]
        output: RawJson,
    },
    /// Evaluate a rule now and show what would fire, notifying nobody
    #[command(
        long_about = "Evaluate a rule now (POST /api/v1/alerts/{name}/test) and show each \
instance with its value and whether it is active. Nothing is notified and no state changes. \
Event rules are evaluated over the metric's last 5 minutes of events; absence rules show each \
known instance's current silence.\n\nExample:\n  strata alert test hot"
    )]
    Test {
        /// Name of the rule
        name: String,
        #[command(flatten)]
        output: RawJson,
    },
    /// Acknowledge firing instances: no repeat notifications until they resolve
    #[command(
        long_about = "Acknowledge a rule's firing instances (POST /api/v1/alerts/{name}/ack): \
they get no repeat notifications until they resolve. --label k=v (repeat) picks the instance \
with those labels; without it, every instance is acknowledged.\n\nExamples:\n  \
strata alert ack hot --label name=truck_7\n  strata alert ack hot"
    )]
    Ack {
        /// Name of the rule
        name: String,
        /// A label of the instance to acknowledge, as key=value; repeat for several
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        labels: Vec<(String, String)>,
        #[command(flatten)]
        output: RawJson,
    },
}

#[derive(Debug, Args)]
pub struct AlertCreateArgs {
    /// Name of the rule (1-64 characters of A-Z a-z 0-9 _ . -); with --json or --file, replaces
    /// the body's name
    #[arg(required_unless_present_any = ["json", "file"])]
    pub name: Option<String>,
    /// The whole rule as JSON, as POST /api/v1/alerts takes it
    #[arg(long, value_name = "RULE", conflicts_with_all = ["file", "rule_flags"])]
    pub json: Option<String>,
    /// A file holding the rule as JSON, or `-` for stdin
    #[arg(long, value_name = "FILE", conflicts_with = "rule_flags")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub flags: RuleFlags,
}

/// A rule given by flags instead of JSON.
#[derive(Debug, Args)]
#[group(id = "rule_flags", multiple = true)]
pub struct RuleFlags {
    /// Kind of rule
    #[arg(long, value_enum, required_unless_present_any = ["json", "file"])]
    pub kind: Option<RuleKindArg>,
    /// query: the SELECT to evaluate (aliases apply, as in `strata sql`)
    #[arg(long)]
    pub sql: Option<String>,
    /// query: a condition over the result's `value` column (`value > 30`); event: a SQL
    /// boolean over the metric's fields (`temp > 90 AND status = 'fault'`)
    #[arg(long)]
    pub condition: Option<String>,
    /// query: how often to evaluate, 1s to 1d (default 10s)
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
    /// query: what an empty result means (default nodata)
    #[arg(long, value_enum)]
    pub no_data: Option<NoDataArg>,
    /// event, absence: the metric (its name or any alias)
    #[arg(long)]
    pub metric: Option<String>,
    /// event, absence: a field whose values key the instances; repeat for several
    #[arg(long = "by", value_name = "FIELD")]
    pub by: Vec<String>,
    /// absence: fire when this field had no non-null value (under any of its names) for --for
    #[arg(long)]
    pub field: Option<String>,
    /// event: the column whose value (of the last matching row) an instance reports
    #[arg(long, value_name = "COLUMN")]
    pub value: Option<String>,
    /// Pending time before an active instance fires (default 0s, at most 7d); absence: the
    /// silence that fires (required, at least 1s)
    #[arg(long = "for", value_name = "DURATION")]
    pub for_: Option<String>,
    /// How long an instance keeps firing after its condition stops holding (default 0s)
    #[arg(long, value_name = "DURATION")]
    pub keep_firing_for: Option<String>,
    /// Interval between repeat notifications while firing (default 4h, at least 1s)
    #[arg(long, value_name = "DURATION")]
    pub repeat_interval: Option<String>,
    /// Window within which transitions to one state go out as one notification (default 0s,
    /// at most 1h)
    #[arg(long, value_name = "DURATION")]
    pub group_wait: Option<String>,
    /// Notify when a firing instance resolves (default true)
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub send_resolved: Option<bool>,
    /// A channel to notify (see `strata channel list`); repeat for several
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// A static label added to every notification, as key=value; repeat for several
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleKindArg {
    Query,
    Event,
    Absence,
}

impl RuleKindArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKindArg::Query => "query",
            RuleKindArg::Event => "event",
            RuleKindArg::Absence => "absence",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NoDataArg {
    /// A rule-level instance in state nodata, no notification; the others resolve
    #[value(name = "nodata")]
    NoData,
    /// Every instance resolves
    Ok,
    /// The rule-level instance fires
    Firing,
    /// Nothing changes
    #[value(name = "keep_last")]
    KeepLast,
}

impl NoDataArg {
    pub fn as_str(self) -> &'static str {
        match self {
            NoDataArg::NoData => "nodata",
            NoDataArg::Ok => "ok",
            NoDataArg::Firing => "firing",
            NoDataArg::KeepLast => "keep_last",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Add a source: the server starts consuming it at once
    #[command(
        long_about = "Add a source (POST /api/v1/sources) from flags or from --config.\n\n\
nats: --broker-url nats://host:4222, --stream (an existing JetStream stream), --subject (a subject \
filter such as devices.>), optional --durable (the consumer's name; strata-<id> by default).\n\
mqtt: --broker-url mqtt://host:1883, one or more --topic filters (+ and # allowed), optional \
--username/--password and --client-id (the persistent session's id; strata-<id> by default).\n\
Both: optional --metric, the metric of every event (as ?metric= on /api/v1/write); without it \
an MQTT topic of one or two levels names the metric (thermostat, thermostat/truck_7), and \
otherwise events name their own (metrictype).\n\n\
Examples:\n  \
strata source add --kind nats --broker-url nats://127.0.0.1:4222 --stream DEVICES --subject 'devices.>' --metric reading\n  \
strata source add --kind mqtt --broker-url mqtt://broker:1883 --topic 'thermostat/+'\n  \
strata source add --config '{\"kind\":\"nats\",\"url\":\"nats://127.0.0.1:4222\",\"stream\":\"S\",\"subject\":\"a.>\"}'"
    )]
    Add(Box<SourceAddArgs>),
    /// List the sources with status, counts, last error and lag (never passwords)
    List,
    /// Show one source
    Show {
        /// The source's id (from `strata source list`)
        id: String,
    },
    /// Remove a source: its consumer stops and it is not restarted
    Remove {
        /// The source's id (from `strata source list`)
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct SourceAddArgs {
    /// The whole source as JSON (the POST /api/v1/sources body); no other flag with it
    #[arg(long, value_name = "JSON", conflicts_with_all = ["kind", "source_url", "stream", "subject", "durable", "topic", "username", "password", "token", "client_id", "ca_file", "metric"])]
    pub config: Option<String>,
    /// What the source consumes
    #[arg(long, value_enum, required_unless_present = "config")]
    pub kind: Option<SourceKindArg>,
    /// The broker: nats://host:port, tls://host:port, mqtt://host:port or mqtts://host:port
    /// (--url is the Strata server)
    #[arg(long = "broker-url", value_name = "URL")]
    pub source_url: Option<String>,
    /// nats: the JetStream stream
    #[arg(long)]
    pub stream: Option<String>,
    /// nats: the subject filter, e.g. devices.>
    #[arg(long)]
    pub subject: Option<String>,
    /// nats: the durable consumer's name
    #[arg(long)]
    pub durable: Option<String>,
    /// mqtt: a topic filter; repeat for several
    #[arg(long = "topic", value_name = "FILTER")]
    pub topic: Vec<String>,
    /// The broker user
    #[arg(long)]
    pub username: Option<String>,
    /// The broker password (never shown back)
    #[arg(long)]
    pub password: Option<String>,
    /// nats: the authentication token, instead of a user (never shown back)
    #[arg(long, conflicts_with = "username")]
    pub token: Option<String>,
    /// mqtt: the persistent session's client id
    #[arg(long)]
    pub client_id: Option<String>,
    /// tls:// and mqtts://: PEM CA certificates (absolute path on the server) to verify the
    /// broker with, instead of the system's
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<String>,
    /// The metric of every event, as ?metric= on /api/v1/write
    #[arg(long)]
    pub metric: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKindArg {
    Nats,
    Mqtt,
}

impl SourceKindArg {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKindArg::Nats => "nats",
            SourceKindArg::Mqtt => "mqtt",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence the notifications whose labels match, until a time or for a while
    #[command(
        long_about = "Create a silence (POST /api/v1/silences). Each --matcher key=value is an \
exact match on a notification's labels; the key `alert` matches the rule's name. The silence \
lasts from --starts (default now) until --until (RFC 3339) or for --for (a duration such as \
30m, 2h or 1d). Prints the silence's id, which `strata silence delete` takes.\n\n\
Examples:\n  \
strata silence create --matcher alert=hot --matcher name=truck_7 --for 2h --comment 'sensor swap'\n  \
strata silence create --matcher site=plant_2 --starts 2026-03-01T22:00:00Z --until 2026-03-02T02:00:00Z"
    )]
    Create(SilenceCreateArgs),
    /// List the silences, active or not
    #[command(
        long_about = "List the tenant's silences (GET /api/v1/silences): id, matchers, start, \
end, comment and whether each is active now.\n\nExample:\n  strata silence list"
    )]
    List,
    /// Delete a silence by its id
    #[command(
        long_about = "Delete a silence (DELETE /api/v1/silences/{id}); notifications it held \
back for instances still firing go out then. Find the id with `strata silence list`.\n\n\
Example:\n  strata silence delete 01J9Z3K6Q2"
    )]
    Delete {
        /// Id of the silence, as shown by `strata silence list`
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct SilenceCreateArgs {
    /// A label the silenced notifications carry, as key=value (`alert` = the rule's name);
    /// repeat for several
    #[arg(long = "matcher", value_name = "KEY=VALUE", value_parser = parse_key_value, required = true)]
    pub matchers: Vec<(String, String)>,
    /// When the silence ends (RFC 3339, e.g. 2026-03-02T02:00:00Z)
    #[arg(
        long,
        value_name = "TIME",
        required_unless_present = "for_",
        conflicts_with = "for_"
    )]
    pub until: Option<String>,
    /// How long the silence lasts from its start, e.g. 90m, 2h or 1d
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub for_: Option<std::time::Duration>,
    /// When the silence starts (RFC 3339). Default: now
    #[arg(long, value_name = "TIME")]
    pub starts: Option<String>,
    /// Why the silence exists
    #[arg(long)]
    pub comment: Option<String>,
}

/// `key=value` (split at the first `=`; the key must not be empty).
/// `--event-stream-batches`: at least one batch, at most a million (each holds its rows).
fn parse_stream_batches(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=1_000_000) => Ok(n),
        _ => Err(format!("{text:?} is not a batch count from 1 to 1000000")),
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A duration as the API writes them: `<n><unit>` with unit ms, s, m, h or d, or a plain number
/// of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("expected a duration such as 500ms, 30s, 5m, 2h or 1d, got {text:?}");
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(millis_per_unit)
        .map(std::time::Duration::from_millis)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn metric_keys_split_on_commas_and_patterns_repeat() {
        let cli = Cli::try_parse_from([
            "strata",
            "settings",
            "set",
            "--metric-keys",
            "metrictype,source",
            "--timestamp-patterns",
            "%d/%m/%Y, %H:%M",
            "--timestamp-patterns",
            "%Y",
        ])
        .unwrap();
        let Command::Settings {
            command: SettingsCommand::Set(args),
            ..
        } = cli.command
        else {
            panic!("parsed into the wrong command");
        };
        assert_eq!(
            args.metric_keys.unwrap(),
            vec!["metrictype".to_string(), "source".to_string()]
        );
        assert_eq!(
            args.timestamp_patterns.unwrap(),
            vec!["%d/%m/%Y, %H:%M".to_string(), "%Y".to_string()]
        );
    }

    #[test]
    fn field_type_synonyms_and_bad_types() {
        let cli = Cli::try_parse_from([
            "strata",
            "schema",
            "declare-field",
            "m",
            "f",
            "--type",
            "bigint",
        ])
        .unwrap();
        let Command::Schema {
            command: SchemaCommand::DeclareField(args),
            ..
        } = cli.command
        else {
            panic!("parsed into the wrong command");
        };
        assert_eq!(args.field_type, Some(strata_core::FieldType::Integer));
        let err = Cli::try_parse_from([
            "strata",
            "schema",
            "declare-field",
            "m",
            "f",
            "--type",
            "decimal",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("unknown type"), "{err}");
    }

    #[test]
    fn batch_size_zero_is_refused() {
        assert!(Cli::try_parse_from(["strata", "write", "x.ndjson", "--batch-size", "0"]).is_err());
    }
}
