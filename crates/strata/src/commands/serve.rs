//! `strata serve`: maps flags onto [`strata_node::ServeConfig`] and runs the server until
//! SIGTERM or SIGINT.

use std::future::Future;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ServeArgs;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = serve_config(args);
    check_alert_gateways(&config.alerts)?;
    if !config.sync {
        tracing::warn!(
            "--unsafe-no-fsync: writes are acknowledged before they are durable; a crash loses \
             acknowledged events. Use only for benchmarks."
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Queries run on their own runtimes with 64 MiB stacks (strata-query/src/runtime.rs), but
        // the Postgres door parses statements here; 16 MiB keeps that far from an overflow for
        // anything under the expression depth limit.
        .thread_stack_size(REQUEST_THREAD_STACK_BYTES)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // Install the handlers before the server starts so a signal during startup is not lost
        // to the default action (which would kill the process without closing the stores).
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        strata_node::run(config, shutdown)
            .await
            .context("server failed")
    })
}

fn serve_config(args: ServeArgs) -> strata_node::ServeConfig {
    let limits = limits(&args);
    let query = query_config(&args);
    let compaction = compactor_config(&args);
    let alerts = alert_config(&args);
    strata_node::ServeConfig {
        data_dir: args.data_dir,
        http_addr: args.http_addr,
        pg_addr: args.pg_addr,
        pg_allow_insecure: args.pg_allow_insecure,
        mqtt: args.mqtt_addr.map(|addr| strata_node::MqttListen {
            addr,
            allow_insecure: args.mqtt_allow_insecure,
            max_connections: args.mqtt_max_connections,
        }),
        flight: args.flight_addr.map(|addr| strata_node::FlightListen {
            addr,
            allow_insecure: args.flight_allow_insecure,
            max_connections: args.flight_max_connections,
        }),
        pg_tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(strata_node::TlsPaths { cert, key }),
            _ => None,
        },
        // Env only: a token on the command line would show in `ps` and shell history.
        operator_token: std::env::var("STRATA_OPERATOR_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        limits,
        sync: !args.unsafe_no_fsync,
        profiling: args.profiling == crate::cli::Switch::On,
        hot_flush_rows: usize::try_from(args.hot_flush_rows).unwrap_or(usize::MAX),
        hot_flush_interval: std::time::Duration::from_secs(args.hot_flush_secs),
        query,
        cold_location: args.cold_url,
        compaction,
        compact_interval: (args.compact_interval_secs > 0)
            .then(|| std::time::Duration::from_secs(args.compact_interval_secs)),
        http: strata_node::HttpConfig {
            header_read_timeout: std::time::Duration::from_secs(args.http_header_timeout_secs),
            max_connections: args.http_max_connections,
            allow_remote_metrics: args.allow_remote_metrics,
        },
        alerts,
        rollups: strata_node::RollupConfig {
            cycle_interval: std::time::Duration::from_millis(args.rollup_cycle_ms),
            backfill_chunk_ms: i64::try_from(args.rollup_backfill_chunk_mins)
                .unwrap_or(1440)
                .saturating_mul(60_000),
            ..strata_node::RollupConfig::default()
        },
    }
}

fn alert_config(args: &ServeArgs) -> strata_node::AlertConfig {
    strata_node::AlertConfig {
        tick: std::time::Duration::from_millis(args.alert_tick_ms.max(10)),
        smtp: args.smtp_url.clone().map(|url| strata_node::SmtpConfig {
            url,
            from: args
                .smtp_from
                .clone()
                .unwrap_or_else(|| "strata@localhost".to_string()),
            ca_file: args.smtp_ca_file.clone(),
        }),
        sms: args.sms_url.clone().map(|url| strata_node::SmsConfig {
            url,
            from: args.sms_from.clone().unwrap_or_default(),
        }),
        allow_private_webhooks: args.allow_private_webhooks,
        public_url: String::new(),
    }
}

/// A typo in the relay or gateway settings fails `strata serve`, not the first alert.
fn check_alert_gateways(alerts: &strata_node::AlertConfig) -> anyhow::Result<()> {
    if let Some(smtp) = &alerts.smtp {
        smtp.check().map_err(anyhow::Error::msg)?;
    }
    if let Some(sms) = &alerts.sms {
        sms.check().map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

fn limits(args: &ServeArgs) -> strata_core::Limits {
    strata_core::Limits {
        write_body_bytes: args.max_body_bytes,
        event_bytes: args.max_event_bytes,
        fields_per_event: args.max_fields_per_event,
        admin_body_bytes: args.max_admin_body_bytes,
        error_payload_bytes: args.max_error_payload_bytes,
        field_names_per_metric: args.max_field_names_per_metric,
        event_stream_batches: args.event_stream_batches,
    }
}

fn query_config(args: &ServeArgs) -> strata_node::QueryConfig {
    strata_node::QueryConfig {
        memory_limit_bytes: args.query_memory_bytes,
        timeout: std::time::Duration::from_secs(args.query_timeout_secs),
        threads: args
            .query_threads
            .unwrap_or_else(|| strata_node::QueryConfig::default().threads),
        tier_preference: match args.plan_tier {
            crate::cli::PlanTierArg::Cost => strata_node::TierPreference::Cost,
            crate::cli::PlanTierArg::Cold => strata_node::TierPreference::Cold,
            crate::cli::PlanTierArg::Hot => strata_node::TierPreference::Hot,
        },
        ..Default::default()
    }
}

fn compactor_config(args: &ServeArgs) -> strata_node::CompactorConfig {
    strata_node::CompactorConfig {
        min_age: std::time::Duration::from_secs(args.compact_after_secs),
        hot_retention: std::time::Duration::from_secs(
            args.hot_retention_days.saturating_mul(86_400),
        ),
        retired_grace: std::time::Duration::from_secs(args.retired_grace_secs),
        purge_deleted_after: std::time::Duration::from_secs(args.purge_deleted_after_secs),
        purge_hidden_after: std::time::Duration::from_secs(args.purge_hidden_after_secs),
        ..Default::default()
    }
}

/// Stack of each request thread (the default is 2 MiB).
const REQUEST_THREAD_STACK_BYTES: usize = 16 * 1024 * 1024;

/// Resolves on the first SIGTERM or SIGINT. A second signal while draining exits at once:
/// acknowledged writes are already durable, so only in-flight requests are cut short.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name} received: shutting down gracefully (send again to exit at once)");
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            tracing::warn!("second signal received: exiting without draining");
            std::process::exit(130);
        });
    })
}
