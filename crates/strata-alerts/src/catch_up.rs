//! Catching up after a lag: the rows the committed-event stream dropped for the alert consumer
//! are re-read from the hot tier and fed to the event and absence rules, so a burst of writes
//! that outruns evaluation delays alerts instead of losing them.

use std::collections::BTreeSet;

use strata_core::{MetricId, TenantId};

use crate::engine::{compiled_for, on_batch};
use crate::rule::RuleKind;
use crate::service::Inner;

/// Feeds the rules every row committed with a sequence number in `(after_seq, before_seq)`
/// for the metrics that event and absence rules watch.
pub(crate) async fn missed(inner: &Inner, after_seq: u64, before_seq: u64) {
    let started = std::time::Instant::now();
    let mut rows = 0;
    for (tenant, metric) in watched(inner).await {
        rows += reread(inner, tenant, metric, after_seq, before_seq).await;
    }
    tracing::info!(
        rows,
        after_seq,
        before_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "alert rules re-read the rows the event stream dropped"
    );
}

/// The (tenant, metric) pairs of the event and absence rules that compile now.
async fn watched(inner: &Inner) -> BTreeSet<(TenantId, MetricId)> {
    let mut pairs = BTreeSet::new();
    for rule in inner.rules_snapshot() {
        if matches!(rule.spec.kind, RuleKind::Query { .. }) {
            continue;
        }
        let Ok(snapshot) = inner.schemas.schema(rule.row.tenant).await else {
            continue;
        };
        if let Some(compiled) = compiled_for(&rule, &snapshot) {
            pairs.insert((rule.row.tenant, compiled.metric));
        }
    }
    pairs
}

/// Re-reads one metric on a blocking thread, feeding each chunk to the rules as it comes.
async fn reread(
    inner: &Inner,
    tenant: TenantId,
    metric: MetricId,
    after_seq: u64,
    before_seq: u64,
) -> usize {
    let (mut received, scan) = inner
        .stream
        .reread_chunks(tenant, metric, after_seq, before_seq);
    while let Some(chunk) = received.recv().await {
        on_batch(inner, tenant, &chunk).await;
    }
    match scan.await {
        Ok(Ok(rows)) => rows,
        Ok(Err(error)) => {
            tracing::error!(%error, "re-reading the rows alert rules missed");
            0
        }
        Err(error) => {
            tracing::error!(%error, "the re-read of missed rows panicked");
            0
        }
    }
}
