//! Makes operators whose output can dwarf their input yield to the scheduler, so a cancelled or
//! timed-out query stops within milliseconds instead of running on.
//!
//! A query is cancelled by aborting its task (`engine.rs`), which tokio can only do when the task
//! returns `Pending`. DataFusion's own rule (`EnsureCooperative`) makes leaves and exchanges spend
//! tokio's cooperative budget, but a join can emit many batches per input batch: a cross join
//! of two 100,000-row series emits 100,000 batches for each 8,192-row input batch, so the task
//! never returned `Pending` for seconds at a time and the deadline was honoured only at 65-79 s
//! for a 30 s limit (issue 24 defect 2). Wrapping the output of every join (and `UNNEST`) in
//! DataFusion's `CooperativeExec` makes each of their batches spend budget, so the task yields at
//! least every 128 batches.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::ExecutionPlan;

/// The physical optimizer rule; runs after DataFusion's own rules.
#[derive(Debug, Default)]
pub struct YieldingJoins;

impl PhysicalOptimizerRule for YieldingJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if multiplies_rows(node.as_ref()) {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "yielding_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn multiplies_rows(node: &dyn ExecutionPlan) -> bool {
    let any: &dyn std::any::Any = node;
    any.is::<CrossJoinExec>()
        || any.is::<NestedLoopJoinExec>()
        || any.is::<HashJoinExec>()
        || any.is::<SortMergeJoinExec>()
        || any.is::<SymmetricHashJoinExec>()
        || any.is::<UnnestExec>()
}
