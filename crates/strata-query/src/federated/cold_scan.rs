//! The branches that read below the cut: cold files (DataFusion's Parquet scan, pruned by time
//! and series, re-sends filtered out, then recombined) and late-index rows (recombined at
//! planning time into one in-memory batch).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column as FieldColumn, DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::{disjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Operator};
use datafusion::physical_expr::expressions::{in_list, lit, BinaryExpr, Column};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::ExecutionPlan;
use strata_catalog::ColdFile;
use strata_cold::ColdAccess;
use strata_core::FieldType;
use strata_format::cold_file::{
    fixed_fields, storage_arrow_type, FIXED_COLUMNS, HASH_COLUMN, SERIES_COLUMN, TIMESTAMP_COLUMN,
};
use strata_format::model::{ColumnSpec, UTC};
use strata_format::recombine::RawBatchBuilder;
use strata_storage::HotRow;

use super::exec::ColdRecombineExec;
use crate::scan::ScanSpec;

/// The branches for `[start, cut)`: the cold files overlapping it, with the late rows' content
/// hashes excluded (re-sends of compacted rows), and the late rows themselves.
pub(super) fn below_cut(
    spec: &ScanSpec,
    access: &ColdAccess,
    manifest_files: &[ColdFile],
    late_in_range: Vec<HotRow>,
    start: i64,
    cut: i64,
) -> Result<Vec<Arc<dyn ExecutionPlan>>> {
    let mut branches = Vec::new();
    let files: Vec<&ColdFile> = manifest_files
        .iter()
        .filter(|f| f.max_ts_ms >= start && f.min_ts_ms < cut)
        .collect();
    let excluded: Vec<u64> = late_in_range.iter().map(|r| r.content_hash).collect();
    if !files.is_empty() {
        branches.push(cold_branch(spec, access, &files, start, cut, &excluded)?);
    }
    if !late_in_range.is_empty() {
        branches.push(late_branch(spec, late_in_range)?);
    }
    Ok(branches)
}

/// The raw Parquet scan (with time and re-send filters) plus the recombinator.
fn cold_branch(
    spec: &ScanSpec,
    access: &ColdAccess,
    files: &[&ColdFile],
    start: i64,
    cut: i64,
    excluded_hashes: &[u64],
) -> Result<Arc<dyn ExecutionPlan>> {
    let file_schema = file_schema(spec, files);
    // What the scan decodes: the series column serves only row-group and page pruning
    // (statistics), and the hash column only the re-send exclusion, so neither is decoded
    // when not needed; they are random-looking 64-bit values, the costliest columns to read.
    let exclude_resends = !excluded_hashes.is_empty();
    let mut decoded: Vec<usize> = vec![0];
    if exclude_resends {
        decoded.push(2);
    }
    decoded.extend(FIXED_COLUMNS..file_schema.fields().len());
    let decoded_schema = Arc::new(file_schema.project(&decoded)?);

    let mut predicate = time_predicate(start, cut);
    // The time range prunes files, row groups and pages; the filter above the scan applies it
    // exactly, with the re-send exclusion, on the decoded columns.
    let mut pruning = predicate.clone();
    if exclude_resends {
        let list = excluded_hashes
            .iter()
            .map(|h| lit(ScalarValue::UInt64(Some(*h))))
            .collect();
        // Decoded right after the timestamp.
        let hash = Arc::new(Column::new(HASH_COLUMN, 1)) as Arc<dyn PhysicalExpr>;
        let not_resent = in_list(hash, list, &true, &decoded_schema)?;
        predicate = Arc::new(BinaryExpr::new(predicate, Operator::And, not_resent));
    }
    if let Some(series_in) = series_pruning(spec, files, &file_schema)? {
        pruning = Arc::new(BinaryExpr::new(pruning, Operator::And, series_in));
    }
    if let Some(on_fields) = file_predicate(spec, &file_schema) {
        pruning = Arc::new(BinaryExpr::new(pruning, Operator::And, on_fields));
    }
    // The predicate is evaluated while decoding (late materialization): its columns are
    // decoded first and the others only for the rows that pass, cheapest filters first.
    let source = ParquetSource::new(file_schema)
        .with_predicate(pruning)
        .with_pushdown_filters(true)
        .with_reorder_filters(true)
        .with_enable_page_index(true);
    let config = FileScanConfigBuilder::new(access.url.clone(), Arc::new(source))
        .with_file_groups(file_groups(files))
        .with_projection_indices(Some(decoded))?
        .build();
    let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);
    Ok(Arc::new(ColdRecombineExec::new(spec.clone(), filtered)))
}

/// The file schema: timestamp, series, hash, then each needed name with one type for all files
/// (text when files disagree; the recombinator casts to the declared type anyway).
fn file_schema(spec: &ScanSpec, files: &[&ColdFile]) -> SchemaRef {
    let mut needed: Vec<&str> = Vec::new();
    for column in &spec.columns {
        for source in &column.sources {
            if !needed.contains(&source.name.as_str()) {
                needed.push(source.name.as_str());
            }
        }
    }
    let mut types: HashMap<&str, DataType> = HashMap::new();
    for file in files {
        for column in &file.columns {
            let name = column.name.as_str();
            if !needed.contains(&name) {
                continue;
            }
            let data_type = column
                .storage_type
                .parse::<FieldType>()
                .map(storage_arrow_type)
                .unwrap_or(DataType::Utf8);
            match types.get(name) {
                None => {
                    types.insert(name, data_type);
                }
                Some(existing) if *existing != data_type => {
                    types.insert(name, DataType::Utf8);
                }
                Some(_) => {}
            }
        }
    }
    let mut fields = fixed_fields().to_vec();
    for name in &needed {
        if let Some(data_type) = types.get(name) {
            fields.push(Field::new(*name, data_type.clone(), true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// `start <= timestamp < cut` (only the upper bound for an open start), on column 0.
fn time_predicate(start: i64, cut: i64) -> Arc<dyn PhysicalExpr> {
    let timestamp = || Arc::new(Column::new(TIMESTAMP_COLUMN, 0)) as Arc<dyn PhysicalExpr>;
    let ms = |v: i64| lit(ScalarValue::TimestampMillisecond(Some(v), Some(UTC.into())));
    let below_cut = Arc::new(BinaryExpr::new(timestamp(), Operator::Lt, ms(cut)));
    if start == i64::MIN {
        return below_cut;
    }
    let from_start = Arc::new(BinaryExpr::new(timestamp(), Operator::GtEq, ms(start)));
    Arc::new(BinaryExpr::new(from_start, Operator::And, below_cut))
}

/// The query's field filters as one predicate on the files' own columns, keeping at least
/// every row the filter above the scan keeps. A filter `P(f)` qualifies when each field it reads
/// is stored with its SQL type under every incoming name the files hold (no cast: the stored
/// value is the recombined value). A field with several names becomes an OR over them,
/// `P(name1) OR P(name2)`: the recombined value is the first non-null name's (or NULL when all
/// are, and then `P` of any name is `P(NULL)`), so whenever `P(f)` holds, one branch holds. At
/// most one field per filter may have several names (the branches would multiply).
fn file_predicate(spec: &ScanSpec, file_schema: &SchemaRef) -> Option<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(file_schema.as_ref().clone()).ok()?;
    let props = ExecutionProps::new();
    let mut predicate: Option<Arc<dyn PhysicalExpr>> = None;
    for filter in spec.file_filters.iter().flat_map(split_conjunction) {
        let Some(on_file) = on_file_columns(spec, file_schema, filter) else {
            continue;
        };
        let context = PhysicalPlanningContext::default();
        let Ok(physical) = create_physical_expr(&on_file, &df_schema, &props, &context) else {
            continue;
        };
        predicate = Some(match predicate {
            None => physical,
            Some(so_far) => Arc::new(BinaryExpr::new(so_far, Operator::And, physical)),
        });
    }
    predicate
}

/// `filter` over the stored columns (see [`file_predicate`]), or `None` when it does not qualify.
fn on_file_columns(spec: &ScanSpec, file_schema: &Schema, filter: &Expr) -> Option<Expr> {
    let mut stored: HashMap<String, Vec<String>> = HashMap::new();
    for column in filter.column_refs() {
        let field = spec.model.columns.iter().find(|c| c.name == column.name)?;
        stored.insert(column.name.clone(), stored_names(field, file_schema)?);
    }
    let branches = stored.values().map(Vec::len).max().unwrap_or(1);
    if stored.values().filter(|names| names.len() > 1).count() > 1 {
        return None;
    }
    let rewritten: Option<Vec<Expr>> = (0..branches)
        .map(|branch| {
            filter
                .clone()
                .transform(|expr| {
                    let Expr::Column(column) = &expr else {
                        return Ok(Transformed::no(expr));
                    };
                    let Some(names) = stored.get(&column.name) else {
                        return Ok(Transformed::no(expr));
                    };
                    let name = &names[branch.min(names.len() - 1)];
                    Ok(Transformed::yes(Expr::Column(
                        FieldColumn::new_unqualified(name),
                    )))
                })
                .ok()
                .map(|t| t.data)
        })
        .collect();
    disjunction(rewritten?)
}

/// The incoming names of `field` that the files hold, when each is stored with the field's SQL
/// type; `None` when one needs a cast or when the files hold none of them.
fn stored_names(field: &ColumnSpec, file_schema: &Schema) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for source in &field.sources {
        match file_schema.field_with_name(&source.name) {
            Ok(stored) if stored.data_type() == &field.data_type => names.push(source.name.clone()),
            Ok(_) => return None,
            Err(_) => {}
        }
    }
    (!names.is_empty()).then_some(names)
}

/// `_strata_series IN (...)` for pruning only (the query's own filter is re-applied above the
/// scan), and only when every file's series column was computed under the metric's current keys.
fn series_pruning(
    spec: &ScanSpec,
    files: &[&ColdFile],
    file_schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let same_generation = files
        .iter()
        .all(|f| f.series_generation == spec.model.series_generation);
    let Some(series) = spec.cold_series.as_ref().filter(|_| same_generation) else {
        return Ok(None);
    };
    let list = series
        .iter()
        .map(|h| lit(ScalarValue::UInt64(Some(*h))))
        .collect();
    let column = Arc::new(Column::new(SERIES_COLUMN, 1)) as Arc<dyn PhysicalExpr>;
    Ok(Some(in_list(column, list, &false, file_schema)?))
}

/// Two groups so both cores decode when there are several files.
fn file_groups(files: &[&ColdFile]) -> Vec<FileGroup> {
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(), Vec::new()];
    for (i, file) in files.iter().enumerate() {
        groups[i % 2].push(PartitionedFile::new(file.path.clone(), file.bytes));
    }
    groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(FileGroup::new)
        .collect()
}

/// Late-index rows, read at planning time, recombined into one in-memory batch.
fn late_branch(spec: &ScanSpec, rows: Vec<HotRow>) -> Result<Arc<dyn ExecutionPlan>> {
    let mut builder = RawBatchBuilder::new(&spec.columns, rows.len());
    for row in rows {
        builder.push(row.timestamp_ms, row.values);
    }
    let (batch, _failures) = builder
        .finish(&spec.schema, spec.timestamp_at, &spec.columns)
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
    let exec: Arc<dyn ExecutionPlan> =
        MemorySourceConfig::try_new_exec(&[vec![batch]], spec.schema.clone(), None)?;
    Ok(exec)
}
