//! The `Compactor`: the one handle the server and the tests hold on the cold tier's jobs. It owns
//! their shared state and runs them one at a time in this process (so garbage collection never
//! sees a file that a running compaction has written but not committed yet); the jobs
//! themselves are in `jobs/`.

use std::sync::Arc;

use strata_core::TenantId;
use strata_storage::HotStore;

use crate::jobs::partitions::Retiring;
use crate::jobs::retype::KeptAsIs;
use crate::jobs::{compact, gc, CompactionReport, CompactorConfig, GcReport, JobCatalog, JobState};
use crate::{ColdError, ColdStore};

pub struct Compactor {
    state: JobState,
    /// Re-typing attempts that kept a file as it is (see `jobs/retype.rs`).
    kept_as_is: KeptAsIs,
    /// Hot weeks retired and waiting for their grace period (see `jobs/partitions.rs`).
    retiring: Retiring,
    /// One compaction or collection at a time in this process.
    lock: tokio::sync::Mutex<()>,
}

impl Compactor {
    pub fn new(
        catalog: impl Into<JobCatalog>,
        hot: Arc<HotStore>,
        cold: ColdStore,
        config: CompactorConfig,
    ) -> Self {
        Compactor {
            state: JobState {
                catalog: catalog.into(),
                hot,
                cold,
                config,
            },
            kept_as_is: KeptAsIs::default(),
            retiring: Retiring::default(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> &CompactorConfig {
        &self.state.config
    }

    pub fn cold(&self) -> &ColdStore {
        &self.state.cold
    }

    /// Compacts every tenant; failures are logged and recorded per tenant.
    pub async fn compact_everything(&self) {
        let tenants = match self.state.catalog.tenants.list_tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::warn!(%error, "listing tenants for compaction failed");
                return;
            }
        };
        for tenant in tenants {
            if let Err(error) = self.compact_tenant(tenant.id).await {
                tracing::warn!(%error, tenant = %tenant.name, "background compaction failed");
            }
        }
    }

    /// Compacts every live metric of the tenant, re-types its files, and records the outcome
    /// for `/api/v1/status`.
    pub async fn compact_tenant(&self, tenant: TenantId) -> Result<CompactionReport, ColdError> {
        let _guard = self.lock.lock().await;
        compact::compact_tenant(&self.state, &self.kept_as_is, tenant).await
    }

    /// Deletes orphan objects (written by a compaction that never committed), retired files past
    /// their grace period, and hot partitions past retention that every metric has compacted;
    /// applies cold retention and purges deleted metrics.
    pub async fn collect_garbage(&self) -> Result<GcReport, ColdError> {
        let _guard = self.lock.lock().await;
        gc::collect_garbage(&self.state, &self.retiring).await
    }
}
