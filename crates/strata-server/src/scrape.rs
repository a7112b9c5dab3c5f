//! The gauges `GET /metrics` computes when it is scraped (issue 20): build information, the hot
//! tier's size, and the cold tier's size and watermark ages read from the catalog, rendered in
//! the Prometheus text format after the recorder's counters and histograms.
//!
//! They are computed here rather than set in the recorder because the recorder never forgets a
//! label set: a deleted metric's watermark age would be exported forever.

use std::fmt::Write as _;

use strata_catalog::CatalogError;
use strata_core::now_ms;

use crate::state::AppState;

/// Metrics whose watermark age is exported with `tenant` and `metric` labels: the ones with the
/// oldest watermarks, as those are what an operator is looking for. The cap keeps a scrape's
/// size and Prometheus's series count bounded however many metrics tenants create; the
/// unlabelled maximum covers the rest.
pub const WATERMARK_LABELLED_METRICS: usize = 100;

/// One gauge family: its name, help text and samples (label pairs, value).
struct Gauge {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Gauge {
    fn single(name: &'static str, help: &'static str, value: f64) -> Self {
        Gauge {
            name,
            help,
            samples: vec![(Vec::new(), value)],
        }
    }
}

/// A metric's cold watermark, as read for the scrape.
struct Watermark {
    tenant: String,
    metric: String,
    age_seconds: f64,
}

/// Appends the scrape-time gauges to `out`.
pub async fn render(state: &AppState, out: &mut String) -> Result<(), CatalogError> {
    let mut gauges = vec![build_info(), start_time(state)];
    gauges.extend(hot_tier(state).await);
    gauges.extend(cold_tier(state).await?);
    for gauge in &gauges {
        write_gauge(out, gauge);
    }
    Ok(())
}

fn build_info() -> Gauge {
    Gauge {
        name: "strata_build_info",
        help: "The running build: always 1, with the version in labels.",
        samples: vec![(
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("datafusion", datafusion::DATAFUSION_VERSION.to_string()),
                (
                    "target",
                    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
                ),
            ],
            1.0,
        )],
    }
}

fn start_time(state: &AppState) -> Gauge {
    Gauge::single(
        "strata_start_time_seconds",
        "When the server started, in seconds since the Unix epoch.",
        state.started_at_ms() as f64 / 1000.0,
    )
}

/// Partition sizes come from fjall's metadata (no scan), read off the async workers.
async fn hot_tier(state: &AppState) -> Vec<Gauge> {
    let hot = state.hot().clone();
    let partitions = tokio::task::spawn_blocking(move || hot.partitions())
        .await
        .unwrap_or_default();
    let disk_bytes: u64 = partitions.iter().map(|p| p.disk_bytes).sum();
    vec![
        Gauge::single(
            "strata_hot_disk_bytes",
            "Bytes of the hot tier's flushed tables on disk (excludes the write-ahead log).",
            disk_bytes as f64,
        ),
        Gauge::single(
            "strata_hot_partitions",
            "Weekly hot partitions, archived weeks included.",
            partitions.len() as f64,
        ),
        Gauge::single(
            "strata_hot_buffered_rows",
            "Rows in the hot tier's write buffer (durable in its log, not yet in its tables).",
            state.hot().buffered_rows() as f64,
        ),
        Gauge::single(
            "strata_hot_last_sequence",
            "The highest committed write sequence number.",
            state.hot().last_seq() as f64,
        ),
    ]
}

/// Cold files, bytes and rows over every tenant, and each metric's watermark age.
async fn cold_tier(state: &AppState) -> Result<Vec<Gauge>, CatalogError> {
    let (mut files, mut bytes, mut rows, mut metrics) = (0u64, 0u64, 0u64, 0u64);
    let mut watermarks = Vec::new();
    let now_ms = now_ms();
    let tenants = state.tenants().list_tenants().await?;
    for tenant in &tenants {
        let schema = state.schemas().schema(tenant.id).await?;
        for metric in &schema.metrics {
            metrics += 1;
            let manifest = state.manifest().cold_manifest(tenant.id, metric.id).await?;
            files += manifest.files.len() as u64;
            bytes += manifest.files.iter().map(|f| f.bytes).sum::<u64>();
            rows += manifest.files.iter().map(|f| f.rows).sum::<u64>();
            if let Some(watermark) = manifest.watermark {
                watermarks.push(Watermark {
                    tenant: tenant.name.clone(),
                    metric: metric.name.clone(),
                    age_seconds: (now_ms - watermark.watermark_ms).max(0) as f64 / 1000.0,
                });
            }
        }
    }
    let mut gauges = vec![
        Gauge::single("strata_tenants", "Tenants.", tenants.len() as f64),
        Gauge::single(
            "strata_metrics",
            "Live metrics over all tenants.",
            metrics as f64,
        ),
        Gauge::single(
            "strata_cold_files",
            "Live cold Parquet files.",
            files as f64,
        ),
        Gauge::single(
            "strata_cold_bytes",
            "Bytes of live cold files.",
            bytes as f64,
        ),
        Gauge::single("strata_cold_rows", "Rows in live cold files.", rows as f64),
    ];
    gauges.extend(watermark_gauges(watermarks));
    Ok(gauges)
}

/// The oldest watermark's age, and the [`WATERMARK_LABELLED_METRICS`] oldest by name.
fn watermark_gauges(mut watermarks: Vec<Watermark>) -> Vec<Gauge> {
    watermarks.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
    let oldest = watermarks.first().map_or(0.0, |w| w.age_seconds);
    watermarks.truncate(WATERMARK_LABELLED_METRICS);
    let samples = watermarks
        .into_iter()
        .map(|w| {
            (
                vec![("tenant", w.tenant), ("metric", w.metric)],
                w.age_seconds,
            )
        })
        .collect();
    vec![
        Gauge::single(
            "strata_cold_watermark_age_max_seconds",
            "Age of the oldest cold watermark: how far the least compacted metric lags.",
            oldest,
        ),
        Gauge {
            name: "strata_cold_watermark_age_seconds",
            help: "Age of a metric's cold watermark (every row older is in the cold tier); \
                   the 100 oldest metrics only.",
            samples,
        },
    ]
}

/// One family in the Prometheus text exposition format (version 0.0.4).
fn write_gauge(out: &mut String, gauge: &Gauge) {
    let _ = writeln!(out, "# HELP {} {}", gauge.name, gauge.help);
    let _ = writeln!(out, "# TYPE {} gauge", gauge.name);
    for (labels, value) in &gauge.samples {
        out.push_str(gauge.name);
        if !labels.is_empty() {
            out.push('{');
            for (index, (name, value)) in labels.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{name}=\"{}\"", escape_label(value));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// Label values escape backslash, double quote and line feed; nothing else is special.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let gauge = Gauge {
            name: "g",
            help: "h",
            samples: vec![(vec![("metric", "a\"b\\c\nd".to_string())], 1.5)],
        };
        let mut out = String::new();
        write_gauge(&mut out, &gauge);
        assert_eq!(
            out,
            "# HELP g h\n# TYPE g gauge\ng{metric=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }

    #[test]
    fn only_the_oldest_watermarks_are_labelled() {
        let watermarks = (0..250)
            .map(|i| Watermark {
                tenant: "t".into(),
                metric: format!("m{i}"),
                age_seconds: f64::from(i),
            })
            .collect();
        let gauges = watermark_gauges(watermarks);
        assert_eq!(gauges[0].samples[0].1, 249.0);
        let labelled = &gauges[1].samples;
        assert_eq!(labelled.len(), WATERMARK_LABELLED_METRICS);
        assert_eq!(labelled[0].0[1].1, "m249");
        assert_eq!(labelled[99].0[1].1, "m150");
    }
}
