//! Derived fields (issue 17): a field defined by a SQL expression over other fields of its
//! metric (`temp_c = (temp_f - 32) * 5 / 9`), computed on read. Nothing is stored for it.
//!
//! [`resolve`] turns each derived column's text into a logical expression over stored columns
//! only (a derived field reading another is inlined), typed, cast to the declared type when there
//! is one, and sets the column's SQL type. The scan computes the projected ones in a
//! `ProjectionExec` above the stored columns (see `table.rs`), which is how EXPLAIN shows them
//! and how WHERE, GROUP BY, rollups and alert rules use them like any column.
//!
//! Names in an expression resolve like names in `/sql`: a field's display name or alias, or, when
//! unambiguous, the same name in another case. A name that resolves to nothing, a qualified name,
//! and a cycle are refused with the place named.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, ScalarValue};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, TryCast};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut, ExprWithAlias};
use std::sync::Arc;
use strata_core::RESERVED_FIELD_NAME;
use strata_format::model::{timestamp_type, MetricModel};
use strata_format::recombine::CONVERSION_INPUT;

/// Longest chain of derived fields reading derived fields: deeper is refused, so inlining stays
/// small and no expression tree grows without bound.
pub const MAX_DERIVED_DEPTH: usize = 8;

/// One derived column, resolved.
#[derive(Debug, Clone)]
pub struct DerivedColumn {
    /// Position in the model's `columns`.
    pub index: usize,
    pub name: String,
    /// Over stored columns (and `timestamp`) only, already of the column's data type.
    pub expr: Expr,
}

/// The resolved derived columns of one model.
#[derive(Debug, Clone, Default)]
pub struct DerivedColumns {
    columns: Vec<DerivedColumn>,
}

impl DerivedColumns {
    /// The derived column at model column `index`, if that column is derived.
    pub fn at(&self, index: usize) -> Option<&DerivedColumn> {
        self.columns.iter().find(|c| c.index == index)
    }

    fn by_name(&self, name: &str) -> Option<&Expr> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.expr)
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Positions in `model.columns` of the stored columns the derived columns read.
    pub fn inputs(&self, model: &MetricModel) -> Vec<usize> {
        let mut inputs: Vec<usize> = Vec::new();
        for derived in &self.columns {
            for column in derived.expr.column_refs() {
                let at = model.columns.iter().position(|c| c.name == column.name);
                if let Some(at) = at.filter(|at| !inputs.contains(at)) {
                    inputs.push(at);
                }
            }
        }
        inputs
    }

    /// `batch` (the model's SQL shape: `timestamp`, then its columns, then anything else) with
    /// each derived column computed from the stored ones, for the paths that build rows
    /// themselves: live tails and event alert rules.
    pub fn compute(&self, batch: RecordBatch) -> Result<RecordBatch, DataFusionError> {
        if self.columns.is_empty() {
            return Ok(batch);
        }
        let schema = DFSchema::try_from(batch.schema().as_ref().clone())?;
        let mut columns = batch.columns().to_vec();
        for derived in &self.columns {
            let expr = DEFAULT_STATE.create_physical_expr(derived.expr.clone(), &schema)?;
            let value = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
            if let Some(slot) = columns.get_mut(derived.index + 1) {
                *slot = value;
            }
        }
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

/// Functions the paths outside a tenant session resolve and compute derived fields with.
static DEFAULT_STATE: LazyLock<SessionState> =
    LazyLock::new(|| SessionStateBuilder::new().with_default_features().build());

/// [`resolve`] with DataFusion's built-in functions, for the paths that build rows themselves
/// (live tails, event alert rules); a field that does not resolve reads NULL, as in SQL.
pub fn prepare(model: &mut MetricModel) -> DerivedColumns {
    let mut failures = compile_conversions(model, &DEFAULT_STATE);
    let derived = if model.columns.iter().any(|c| c.is_derived()) {
        let (derived, derived_failures) = resolve(model, &DEFAULT_STATE);
        failures.extend(derived_failures);
        derived
    } else {
        DerivedColumns::default()
    };
    for failure in failures {
        tracing::debug!(metric = %model.name, "{failure}; it reads NULL");
    }
    derived
}

/// Compiles the conversion of every name that carries one (see [`compile_conversion`]). One
/// that does not compile stays uncompiled, so that name reads NULL, and is reported.
pub fn compile_conversions(model: &mut MetricModel, state: &SessionState) -> Vec<DerivedError> {
    let mut failures = Vec::new();
    for column in &mut model.columns {
        let data_type = column.data_type.clone();
        for source in &mut column.sources {
            let name = source.name.clone();
            let Some(conversion) = &mut source.conversion else {
                continue;
            };
            match compile_conversion(&name, &conversion.text, &data_type, state) {
                Ok(expr) => conversion.compiled = Some(expr),
                Err(message) => failures.push(error(
                    &column.name,
                    format!("the conversion of {name:?} {message}"),
                )),
            }
        }
    }
    failures
}

/// Whether `text` compiles as the conversion of name `name` into a field of `field_type`: the
/// check a declaration makes, with the place of a failure named.
pub fn check_conversion(
    name: &str,
    text: &str,
    field_type: Option<strata_core::FieldType>,
) -> Result<(), String> {
    let data_type = strata_format::model::arrow_type_of(field_type);
    compile_conversion(name, text, &data_type, &DEFAULT_STATE)
        .map(|_| ())
        .map_err(|message| format!("the conversion of {name:?} {message}"))
}

/// A conversion's text as a physical expression over one column, [`CONVERSION_INPUT`]: the
/// name's values cast to the field's type. The expression names them by the name itself (in
/// any case) or `value`; any other name is refused.
fn compile_conversion(
    name: &str,
    text: &str,
    data_type: &DataType,
    state: &SessionState,
) -> Result<Arc<dyn PhysicalExpr>, String> {
    let ast = parse_resolving(text, state, |ident| {
        let own = ident.value.eq_ignore_ascii_case(name)
            || ident.value.eq_ignore_ascii_case(CONVERSION_INPUT);
        own.then(|| CONVERSION_INPUT.to_string()).ok_or_else(|| {
            format!(
                "reads {:?} (at {}); a conversion reads only its own name, {name:?} or `value`",
                ident.value,
                place(ident)
            )
        })
    })?;
    let input = Schema::new(vec![Field::new(CONVERSION_INPUT, data_type.clone(), true)]);
    let schema = DFSchema::try_from(input).map_err(|e| e.to_string())?;
    let expr = state
        .create_logical_expr_from_sql_expr(
            ExprWithAlias {
                expr: ast,
                alias: None,
            },
            &schema,
        )
        .map_err(|e| format!("does not plan: {e}"))?;
    state
        .create_physical_expr(expr, &schema)
        .map_err(|e| format!("does not plan: {e}"))
}

/// Why a derived field does not resolve; the message names the place.
#[derive(Debug, Clone, thiserror::Error)]
#[error("derived field {field:?}: {message}")]
pub struct DerivedError {
    pub field: String,
    pub message: String,
}

/// `metric` as it would be with field `field` (a name or alias of a field, or a new name)
/// derived from `expression`; returns the field's display name.
pub fn define(
    metric: &mut strata_catalog::Metric,
    field: &str,
    field_type: Option<strata_core::FieldType>,
    expression: &str,
) -> String {
    if let Some(existing) = metric
        .fields
        .iter_mut()
        .find(|f| f.names.iter().any(|n| n == field))
    {
        existing.expression = Some(expression.to_string());
        existing.field_type = field_type;
        return existing.name.clone();
    }
    metric.fields.push(strata_catalog::Field {
        id: strata_core::FieldId(0),
        name: field.to_string(),
        field_type,
        names: vec![field.to_string()],
        hidden: false,
        hidden_since_ms: None,
        expression: Some(expression.to_string()),
        conversions: Default::default(),
    });
    field.to_string()
}

/// Resolves every derived column of `model` and sets its data type. One that does not resolve
/// is reported and reads NULL of its declared type, so one bad definition never breaks the
/// table (declaration refuses them; see `QueryEngine::check_derived`).
pub fn resolve(
    model: &mut MetricModel,
    state: &SessionState,
) -> (DerivedColumns, Vec<DerivedError>) {
    let mut failures = Vec::new();
    let mut parsed: HashMap<usize, Parsed> = HashMap::new();
    for (index, column) in model.columns.iter().enumerate() {
        let Some(text) = &column.expression else {
            continue;
        };
        match parse(model, index, text, state) {
            Ok(found) => {
                parsed.insert(index, found);
            }
            Err(message) => failures.push(error(&column.name, message)),
        }
    }
    let order = order(model, &parsed, &mut failures);
    let mut resolved = DerivedColumns::default();
    let mut planning = stored_schema(model);
    for index in order {
        let Some(found) = parsed.remove(&index) else {
            continue;
        };
        let column = &model.columns[index];
        let declared = column
            .field_type
            .is_some()
            .then(|| column.data_type.clone());
        match plan(found, &planning, &resolved, declared, state) {
            Ok((expr, data_type)) => {
                planning = with_field(&planning, &column.name, &data_type);
                let name = column.name.clone();
                model.columns[index].data_type = data_type;
                resolved.columns.push(DerivedColumn { index, name, expr });
            }
            Err(message) => failures.push(error(&column.name, message)),
        }
    }
    for (index, column) in model.columns.iter().enumerate() {
        if column.is_derived() && resolved.at(index).is_none() {
            let null = ScalarValue::try_from(&column.data_type).unwrap_or(ScalarValue::Null);
            let expr = Expr::Literal(null, None);
            let name = column.name.clone();
            resolved.columns.push(DerivedColumn { index, name, expr });
        }
    }
    (resolved, failures)
}

fn error(field: &str, message: String) -> DerivedError {
    DerivedError {
        field: field.to_string(),
        message,
    }
}

/// One expression parsed, its names resolved to column names, and the derived columns it reads.
struct Parsed {
    ast: ast::Expr,
    reads_derived: Vec<usize>,
}

fn parse(
    model: &MetricModel,
    index: usize,
    text: &str,
    state: &SessionState,
) -> Result<Parsed, String> {
    let mut reads_derived = Vec::new();
    let ast = parse_resolving(text, state, |ident| match column_of(model, ident)? {
        Some(found) if found == index => Err(format!(
            "it reads itself ({:?} at {})",
            ident.value,
            place(ident)
        )),
        Some(found) => {
            if model.columns[found].is_derived() {
                reads_derived.push(found);
            }
            Ok(model.columns[found].name.clone())
        }
        None => Ok(ident.value.clone()),
    })?;
    Ok(Parsed { ast, reads_derived })
}

/// Parses one SQL expression (no `AS name`, no qualified names) and replaces each identifier
/// by the column name `resolve` gives it, quoted so the planner takes it as it is.
fn parse_resolving(
    text: &str,
    state: &SessionState,
    mut resolve: impl FnMut(&ast::Ident) -> Result<String, String>,
) -> Result<ast::Expr, String> {
    let dialect = state.config().options().sql_parser.dialect;
    let parsed = state
        .sql_to_expr_with_alias(text, &dialect)
        .map_err(|e| format!("the expression does not parse: {e}"))?;
    if let Some(alias) = parsed.alias {
        return Err(format!(
            "the expression may not name its result ({:?} at {})",
            alias.value,
            place(&alias)
        ));
    }
    let mut ast = parsed.expr;
    let outcome = visit_expressions_mut(&mut ast, |expr| {
        match expr {
            ast::Expr::Identifier(ident) => match resolve(ident) {
                Ok(column) => {
                    ident.value = column;
                    ident.quote_style = Some('"');
                }
                Err(message) => return ControlFlow::Break(message),
            },
            ast::Expr::CompoundIdentifier(parts) => {
                let first = parts.first().map(place).unwrap_or_default();
                return ControlFlow::Break(format!(
                    "qualified names are not allowed in the expression (at {first})"
                ));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    });
    match outcome {
        ControlFlow::Break(message) => Err(message),
        ControlFlow::Continue(()) => Ok(ast),
    }
}

fn place(ident: &ast::Ident) -> String {
    let start = ident.span.start;
    format!("line {}, column {}", start.line, start.column)
}

/// The column an identifier names: `None` for `timestamp`. Exact names and aliases first, then a
/// unique match ignoring case.
fn column_of(model: &MetricModel, ident: &ast::Ident) -> Result<Option<usize>, String> {
    let name = ident.value.as_str();
    if name == RESERVED_FIELD_NAME {
        return Ok(None);
    }
    let answers_to = |column: &strata_format::model::ColumnSpec, wanted: &dyn Fn(&str) -> bool| {
        wanted(&column.name) || column.aliases.iter().any(|a| wanted(a))
    };
    if let Some(found) = model
        .columns
        .iter()
        .position(|c| answers_to(c, &|n| n == name))
    {
        return Ok(Some(found));
    }
    let folded: Vec<usize> = (0..model.columns.len())
        .filter(|i| answers_to(&model.columns[*i], &|n| n.eq_ignore_ascii_case(name)))
        .collect();
    match folded.as_slice() {
        [one] if ident.quote_style.is_none() => Ok(Some(*one)),
        [] | [_] => Err(format!("no field named {name:?} (at {})", place(ident))),
        _ => Err(format!(
            "{name:?} matches several fields in different cases; quote the exact name (at {})",
            place(ident)
        )),
    }
}

/// Derived columns in an order where each comes after those it reads; a cycle or a chain deeper
/// than [`MAX_DERIVED_DEPTH`] is reported for every field on it and leaves them out.
fn order(
    model: &MetricModel,
    parsed: &HashMap<usize, Parsed>,
    failures: &mut Vec<DerivedError>,
) -> Vec<usize> {
    let mut done: Vec<usize> = Vec::new();
    let mut failed: Vec<usize> = Vec::new();
    let mut starts: Vec<usize> = parsed.keys().copied().collect();
    starts.sort_unstable();
    for start in starts {
        let mut path = Vec::new();
        visit(
            model,
            parsed,
            start,
            &mut path,
            &mut done,
            &mut failed,
            failures,
        );
    }
    done
}

fn visit(
    model: &MetricModel,
    parsed: &HashMap<usize, Parsed>,
    at: usize,
    path: &mut Vec<usize>,
    done: &mut Vec<usize>,
    failed: &mut Vec<usize>,
    failures: &mut Vec<DerivedError>,
) -> bool {
    if done.contains(&at) {
        return true;
    }
    if failed.contains(&at) {
        return false;
    }
    let name = |i: &usize| format!("{:?}", model.columns[*i].name);
    if let Some(from) = path.iter().position(|p| *p == at) {
        let mut cycle: Vec<String> = path[from..].iter().map(name).collect();
        cycle.push(name(&at));
        let message = format!(
            "derived fields read each other in a cycle: {}",
            cycle.join(" -> ")
        );
        for member in &path[from..] {
            failures.push(error(&model.columns[*member].name, message.clone()));
            failed.push(*member);
        }
        return false;
    }
    if path.len() >= MAX_DERIVED_DEPTH {
        let message = format!(
            "derived fields read each other more than {MAX_DERIVED_DEPTH} deep: {}",
            path.iter().map(name).collect::<Vec<_>>().join(" -> ")
        );
        failures.push(error(&model.columns[at].name, message));
        failed.push(at);
        return false;
    }
    let Some(found) = parsed.get(&at) else {
        // Its own definition failed to parse, reported already.
        return false;
    };
    path.push(at);
    let ok = found
        .reads_derived
        .iter()
        .all(|next| visit(model, parsed, *next, path, done, failed, failures));
    path.pop();
    if ok {
        done.push(at);
    } else if !failed.contains(&at) {
        failures.push(error(
            &model.columns[at].name,
            "it reads a derived field that does not resolve".to_string(),
        ));
        failed.push(at);
    }
    ok
}

/// `timestamp` and every stored column, as the planner sees them.
fn stored_schema(model: &MetricModel) -> Schema {
    let mut fields = vec![Field::new(RESERVED_FIELD_NAME, timestamp_type(), false)];
    for column in model.columns.iter().filter(|c| !c.is_derived()) {
        fields.push(Field::new(&column.name, column.data_type.clone(), true));
    }
    Schema::new(fields)
}

fn with_field(schema: &Schema, name: &str, data_type: &DataType) -> Schema {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(name, data_type.clone(), true));
    Schema::new(fields)
}

/// Plans one expression against the stored and already resolved columns, inlines the derived
/// ones it reads, and casts it to the declared type (a failed cast reads NULL, as stored values
/// of the wrong type do).
fn plan(
    parsed: Parsed,
    planning: &Schema,
    resolved: &DerivedColumns,
    declared: Option<DataType>,
    state: &SessionState,
) -> Result<(Expr, DataType), String> {
    let schema = DFSchema::try_from(planning.clone()).map_err(|e| e.to_string())?;
    let expr = state
        .create_logical_expr_from_sql_expr(
            ExprWithAlias {
                expr: parsed.ast,
                alias: None,
            },
            &schema,
        )
        .map_err(|e| format!("the expression does not plan: {e}"))?;
    let inlined = expr
        .transform(|e| {
            if let Expr::Column(column) = &e {
                let derived = planning
                    .index_of(&column.name)
                    .ok()
                    .and_then(|_| resolved.by_name(&column.name));
                if let Some(found) = derived {
                    return Ok(Transformed::yes(found.clone()));
                }
            }
            Ok(Transformed::no(e))
        })
        .map_err(|e| e.to_string())?
        .data;
    let data_type = inlined
        .get_type(&schema)
        .map_err(|e| format!("the expression does not plan: {e}"))?;
    match declared {
        Some(declared) if declared != data_type => {
            let cast = Expr::TryCast(TryCast::new(Box::new(inlined), declared.clone()));
            Ok((cast, declared))
        }
        _ => Ok((inlined, data_type)),
    }
}
