//! The query runtime: SQL parsing, planning and execution run on a tokio runtime of their own,
//! never on the threads that accept requests and acknowledge writes.
//!
//! Why (issue 24): on the shared runtime one tenant's CPU-bound query (a cross join of two
//! 100,000-row series) occupied both worker threads of a 2-core machine, so another tenant's
//! `SELECT count(*)` waited 76.7 s, its write ack 78.4 s, and the query's own 30 s deadline fired
//! only at 65-79 s because the timer shared the starved threads. Here:
//! - the query threads can run at a lower OS priority ([`QUERY_THREAD_NICENESS`], 0 for now);
//! - queries are spread over [`QUERY_LANES`] runtimes, so a short query never queues behind a
//!   long one's tasks inside one runtime; the kernel shares the cores between lanes;
//! - deadlines and cancellation are watched from the request side, whose threads stay responsive,
//!   and dropping a result aborts the query task (see `engine.rs`);
//! - every query thread has a large stack ([`QUERY_THREAD_STACK_BYTES`]), since DataFusion plans
//!   and evaluates expressions recursively; together with the expression depth limit in
//!   `limits.rs` no statement can overflow it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

use crate::error::QueryError;

/// Stack of each query thread. Planning a 4,096-deep expression (the limit in `limits.rs`) used
/// about 20 MiB in a debug build; 64 MiB leaves room. It is address space, not memory: pages are
/// touched only by deep statements.
pub const QUERY_THREAD_STACK_BYTES: usize = 64 * 1024 * 1024;

/// `nice` value of query threads relative to the rest of the process (0). At 10 (Linux weight
/// 110 against 1024) a busy ingest load starved queries: a `count(*)` racing compaction and four
/// writers hit its 30 s limit in `api_cold.rs`. Equal priority keeps queries and requests on
/// the kernel's fair share, as before the query runtime existed; the lanes still keep a short
/// query from queueing behind a long one. At equal priority the release benchmark (`strata bench
/// isolation`, docs/benchmarks.md) kept another tenant's count(*) p99 at 20 ms and its write-ack
/// p99 at 6 ms next to a cross join, well under the 100 ms target, so lowering it is not needed.
pub const QUERY_THREAD_NICENESS: i32 = 0;

/// Runtimes ("lanes") that queries are spread over. Within one tokio runtime a task that
/// is not finished simply waits for a worker, so a short query queued behind a cross join's
/// tasks waited 124 ms at the median and 1.4 s at p99 when there was one runtime (a one-off curl
/// loop against a debug build on a loaded machine, not a benchmark; `strata bench isolation` is
/// the benchmark, docs/benchmarks.md). Separate lanes have separate threads, which
/// the kernel time-slices fairly, so a new query starts at once on an idle lane.
pub const QUERY_LANES: usize = 8;

/// Handles to the dedicated query runtimes. Cheap to clone; the runtimes stop (without waiting
/// for running queries) when the last clone is dropped.
#[derive(Clone)]
pub struct QueryRuntime {
    lanes: Arc<Vec<Lane>>,
}

struct Lane {
    owner: Owner,
    /// Queries running on this lane.
    running: Arc<AtomicUsize>,
}

struct Owner {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another runtime's thread (tokio panics); shutting
        // down in the background is allowed anywhere and abandons queries mid-flight, which only
        // happens at process exit or in tests.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for QueryRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRuntime")
            .field("lanes", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

impl QueryRuntime {
    /// Starts [`QUERY_LANES`] runtimes of `threads` worker threads each (at least one), named
    /// `strata-query`. Idle threads cost only their (untouched) stack reservation.
    pub fn start(threads: usize) -> Result<QueryRuntime, QueryError> {
        let lanes = (0..QUERY_LANES)
            .map(|_| {
                Ok(Lane {
                    owner: start_lane(threads)?,
                    running: Arc::new(AtomicUsize::new(0)),
                })
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        Ok(QueryRuntime {
            lanes: Arc::new(lanes),
        })
    }

    /// Runs `work` on the lane with the fewest running queries.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        let lane = self
            .lanes
            .iter()
            .min_by_key(|lane| lane.running.load(Ordering::Relaxed))
            .unwrap_or(&self.lanes[0]);
        let running = RunningGuard::enter(lane.running.clone());
        lane.owner.handle.spawn(async move {
            let _running = running;
            work.await;
        })
    }
}

/// Counts a query as running on its lane until the task ends or is aborted (the future, and
/// this guard with it, is dropped either way).
struct RunningGuard(Arc<AtomicUsize>);

impl RunningGuard {
    fn enter(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        RunningGuard(counter)
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn start_lane(threads: usize) -> Result<Owner, QueryError> {
    let runtime = Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("strata-query")
        .thread_stack_size(QUERY_THREAD_STACK_BYTES)
        .on_thread_start(lower_this_thread_priority)
        .enable_all()
        .build()
        .map_err(|e| QueryError::Internal(format!("starting the query runtime: {e}")))?;
    let handle = runtime.handle().clone();
    Ok(Owner {
        runtime: Some(runtime),
        handle,
    })
}

/// Lowers the calling thread's scheduling priority. Linux applies `setpriority` to a single
/// thread when given its thread id; elsewhere this does nothing.
fn lower_this_thread_priority() {
    #[cfg(target_os = "linux")]
    if QUERY_THREAD_NICENESS != 0 {
        // SAFETY: gettid has no preconditions; setpriority only reads its integer arguments.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, QUERY_THREAD_NICENESS)
        };
        if result != 0 {
            tracing::debug!("could not lower the query thread's priority");
        }
    }
}
