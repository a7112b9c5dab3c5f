//! Alias rewriting on the SQL AST, before DataFusion plans the statement.
//!
//! DataFusion 55 has no hidden columns, so a field's aliases cannot be extra columns of the table
//! (they would show in `SELECT *`). Instead every identifier that names an alias of a field of a
//! metric table in scope is replaced by the field's display name; an unnamed select-list item
//! `temp` becomes `temperature AS temp` so the output keeps the name the query used.
//!
//! Scoping rules:
//! - Each `SELECT` is a scope holding its `FROM` tables (joins included). An unqualified name is
//!   looked up in the innermost `SELECT` first, then in enclosing `SELECT`s (correlated
//!   subqueries). A query's `ORDER BY` sees the tables of all of that query's `SELECT`s.
//! - A name that is a real column of a table in the scope, an output column of a derived table or
//!   CTE in the scope, or a select-list alias the user wrote in that scope, is never rewritten.
//! - Qualified names (`t.temp`, `thermostat.temp`) resolve through the table alias or name.
//! - Ambiguity: an unqualified alias that maps to fields of two different tables in one scope is
//!   left alone, so DataFusion reports the unknown column and the user qualifies it.
//! - CTE names shadow metric names, like SQL does.
//!
//! Identifiers are compared the way DataFusion does: unquoted identifiers are lowercased.
//!
//! Unquoted names that match nothing exactly resolve case-insensitively when unambiguous
//! ([`case`]): a table reference becomes the quoted registered name with the folded name as
//! its alias (`FROM MY_TABLE` -> `FROM "MY_TABLE" AS my_table`, so `my_table.temp` still
//! qualifies), a column reference the quoted real name (`temp` -> `"Temp" AS temp`). Column
//! names are looked up exactly in every enclosing scope first, then ignoring case from the
//! innermost out; a scope with a source whose columns are not known from the text (a table
//! function other than `strata_raw('metric')`, `SELECT *` in a subquery, a system table) stops
//! the case-insensitive lookup,
//! since the name may be one of its columns. Several candidates refuse the statement with
//! [`AmbiguousName`].

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, Query, Select,
    SelectItem, SetExpr, TableAlias, TableFactor, TableFunctionArgs, TableWithJoins, Value,
    VisitMut, VisitorMut,
};
use strata_format::model::TableAliases;

mod case;

use case::{fold, Candidate, Folded};
pub use case::{AmbiguousName, NameKind};

/// Name of the catalog and of the schema holding metric tables; qualified table references are
/// resolved against them.
pub const CATALOG_NAME: &str = "strata";
pub const METRIC_SCHEMA: &str = "public";
/// The table function that reads a metric's rows under their incoming names.
pub const RAW_FUNCTION: &str = "strata_raw";

/// The metric tables a rewrite can resolve, by every name they are registered under.
#[derive(Debug, Default, Clone)]
pub struct AliasResolver {
    tables: HashMap<String, Arc<TableAliases>>,
    /// The columns `strata_raw('name')` reads, by every name of the metric: `timestamp` and
    /// its incoming names.
    raw_columns: HashMap<String, Arc<Vec<String>>>,
}

impl AliasResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a table under one of its names (display name or alias).
    pub fn add_table(&mut self, name: &str, aliases: Arc<TableAliases>) {
        self.tables.insert(name.to_string(), aliases);
    }

    /// Registers the columns `strata_raw(name)` reads, so unquoted names resolve in them
    /// ignoring case as they do in the metric's table.
    pub fn add_raw_columns(&mut self, name: &str, columns: Arc<Vec<String>>) {
        self.raw_columns.insert(name.to_string(), columns);
    }

    /// The columns of `strata_raw('metric')` when `name` and `args` are that call.
    fn raw_outputs(&self, name: &ObjectName, args: &TableFunctionArgs) -> Option<Outputs> {
        let function = last_part(name)?;
        if function != RAW_FUNCTION {
            return None;
        }
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(value)))] =
            args.args.as_slice()
        else {
            return None;
        };
        let Value::SingleQuotedString(metric) = &value.value else {
            return None;
        };
        let columns = self.raw_columns.get(metric)?;
        Some(Outputs {
            names: columns.as_ref().clone(),
            complete: true,
        })
    }

    /// Rewrites every alias reference in `statement` in place, and resolves unquoted names
    /// that match only ignoring case; refuses a name that matches several that way.
    pub fn rewrite<T: VisitMut>(&self, statement: &mut T) -> Result<(), AmbiguousName> {
        let mut visitor = Rewriter {
            resolver: self,
            frames: Vec::new(),
            ctes: Vec::new(),
        };
        match statement.visit(&mut visitor) {
            ControlFlow::Break(ambiguous) => Err(ambiguous),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    fn metric(&self, name: &ObjectName) -> Option<Arc<TableAliases>> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|part| match part {
                ObjectNamePart::Identifier(ident) => Some(normalize(ident)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let table = match parts.as_slice() {
            [table] => table,
            [schema, table] if schema == METRIC_SCHEMA => table,
            [catalog, schema, table] if catalog == CATALOG_NAME && schema == METRIC_SCHEMA => table,
            _ => return None,
        };
        self.tables.get(table).cloned()
    }
}

/// The name DataFusion will use for an identifier (it lowercases ASCII letters only).
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// The output column names of a derived table or CTE as far as the text tells, and whether
/// that is all of them (no `*`, no unnamed expression).
#[derive(Debug, Clone, Default)]
struct Outputs {
    names: Vec<String>,
    complete: bool,
}

impl Outputs {
    /// Column aliases written after a table (`AS t(a, b)`): complete when there are any.
    fn declared(names: Vec<String>) -> Outputs {
        Outputs {
            complete: !names.is_empty(),
            names,
        }
    }
}

#[derive(Debug)]
enum Source {
    Metric {
        qualifier: String,
        table: Arc<TableAliases>,
    },
    /// A derived table, CTE reference or table function: its columns are known only by name, if
    /// at all.
    Opaque {
        qualifier: Option<String>,
        outputs: Outputs,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum FrameKind {
    Query,
    Select,
}

#[derive(Debug)]
struct Frame {
    kind: FrameKind,
    sources: Vec<Source>,
    select_aliases: HashSet<String>,
}

struct Rewriter<'a> {
    resolver: &'a AliasResolver,
    frames: Vec<Frame>,
    ctes: Vec<HashMap<String, Outputs>>,
}

enum Resolution {
    /// Rewrite to this display name.
    Rewrite(String),
    /// Known and must stay as written (a real column, a select alias, ambiguous).
    Keep,
    /// Not known in this frame; look further out.
    Unknown,
}

impl Rewriter<'_> {
    fn cte(&self, name: &ObjectName) -> Option<Outputs> {
        if name.0.len() != 1 {
            return None;
        }
        let ObjectNamePart::Identifier(ident) = &name.0[0] else {
            return None;
        };
        let key = normalize(ident);
        self.ctes
            .iter()
            .rev()
            .find_map(|ctes| ctes.get(&key).cloned())
    }

    fn sources_of(&self, from: &[TableWithJoins], sources: &mut Vec<Source>) {
        for table in from {
            self.source_of(&table.relation, sources);
            for join in &table.joins {
                self.source_of(&join.relation, sources);
            }
        }
    }

    fn source_of(&self, factor: &TableFactor, sources: &mut Vec<Source>) {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let alias_name = alias.as_ref().map(|a| normalize(&a.name));
                let alias_columns = Outputs::declared(
                    alias
                        .as_ref()
                        .map(|a| a.columns.iter().map(|c| normalize(&c.name)).collect())
                        .unwrap_or_default(),
                );
                if args.is_none() {
                    if let Some(outputs) = self.cte(name) {
                        let qualifier = alias_name.or_else(|| last_part(name));
                        let outputs = if alias_columns.complete {
                            alias_columns
                        } else {
                            outputs
                        };
                        sources.push(Source::Opaque { qualifier, outputs });
                        return;
                    }
                    if let Some(table) = self.resolver.metric(name) {
                        if !alias_columns.complete {
                            let qualifier =
                                alias_name.or_else(|| last_part(name)).unwrap_or_default();
                            sources.push(Source::Metric { qualifier, table });
                            return;
                        }
                    }
                }
                let raw = args
                    .as_ref()
                    .filter(|_| !alias_columns.complete)
                    .and_then(|args| self.resolver.raw_outputs(name, args));
                sources.push(Source::Opaque {
                    qualifier: alias_name.or_else(|| last_part(name)),
                    outputs: raw.unwrap_or(alias_columns),
                });
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut outputs = Outputs::declared(
                    alias
                        .as_ref()
                        .map(|a| a.columns.iter().map(|c| normalize(&c.name)).collect())
                        .unwrap_or_default(),
                );
                if !outputs.complete {
                    outputs = query_output_names(subquery);
                }
                sources.push(Source::Opaque {
                    qualifier: alias.as_ref().map(|a| normalize(&a.name)),
                    outputs,
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.sources_of(std::slice::from_ref(table_with_joins.as_ref()), sources),
            _ => sources.push(Source::Opaque {
                qualifier: None,
                outputs: Outputs::default(),
            }),
        }
    }

    fn resolve_in_frame(frame: &Frame, name: &str, innermost: bool) -> Resolution {
        if innermost && frame.select_aliases.contains(name) {
            return Resolution::Keep;
        }
        let mut candidates: Vec<&String> = Vec::new();
        for source in &frame.sources {
            match source {
                Source::Metric { table, .. } => {
                    if table.columns.contains(name) {
                        return Resolution::Keep;
                    }
                    if let Some(display) = table.aliases.get(name) {
                        candidates.push(display);
                    }
                }
                Source::Opaque { outputs, .. } => {
                    if outputs.names.iter().any(|o| o == name) {
                        return Resolution::Keep;
                    }
                }
            }
        }
        candidates.sort();
        candidates.dedup();
        match candidates.as_slice() {
            [] => Resolution::Unknown,
            [display] => Resolution::Rewrite((*display).clone()),
            _ => {
                tracing::debug!(alias = name, "ambiguous field alias left unrewritten");
                Resolution::Keep
            }
        }
    }

    fn frames_in_scope(&self) -> impl Iterator<Item = (usize, &Frame)> {
        let innermost = self.frames.len().saturating_sub(1);
        self.frames
            .iter()
            .enumerate()
            .rev()
            // A query frame only serves its own ORDER BY (when it is innermost); inside a SELECT
            // the SELECT's own frame is the scope.
            .filter(move |(index, frame)| frame.kind == FrameKind::Select || *index == innermost)
            .map(move |(index, frame)| (innermost - index, frame))
    }

    /// An unqualified column reference: exactly in every enclosing scope first, then ignoring
    /// case from the innermost scope out.
    fn resolve_unqualified(&self, ident: &Ident) -> Result<Option<String>, AmbiguousName> {
        let name = normalize(ident);
        for (depth, frame) in self.frames_in_scope() {
            match Self::resolve_in_frame(frame, &name, depth == 0) {
                Resolution::Rewrite(display) => return Ok(Some(display)),
                Resolution::Keep => return Ok(None),
                Resolution::Unknown => {}
            }
        }
        if ident.quote_style.is_some() {
            return Ok(None);
        }
        let folded = fold(&ident.value);
        for (_, frame) in self.frames_in_scope() {
            let Some(candidates) = Self::folded_in_frame(frame, &folded) else {
                // A source whose columns the text does not tell may hold the name exactly.
                return Ok(None);
            };
            match case::choose(&ident.value, &candidates) {
                Folded::None => {}
                found => return column_resolution(ident, found),
            }
        }
        Ok(None)
    }

    /// Every column, alias and known derived-table output of `frame` equal to `folded`
    /// ignoring case; `None` when a source's columns are not all known.
    fn folded_in_frame<'f>(frame: &'f Frame, folded: &str) -> Option<Vec<Candidate<'f>>> {
        let mut candidates = Vec::new();
        for (index, source) in frame.sources.iter().enumerate() {
            match source {
                Source::Metric { qualifier, table } => {
                    case::table_columns(index, Some(qualifier), table, folded, &mut candidates)
                }
                Source::Opaque { outputs, .. } if !outputs.complete => return None,
                Source::Opaque { qualifier, outputs } => {
                    for name in outputs.names.iter().filter(|n| fold(n) == folded) {
                        candidates.push(Candidate {
                            source: index,
                            qualifier: qualifier.as_deref(),
                            matched: name,
                            target: name,
                        });
                    }
                }
            }
        }
        Some(candidates)
    }

    /// The source a qualifier names exactly, innermost scope first.
    fn source_named(&self, qualifier: &str) -> Option<&Source> {
        self.frames_in_scope()
            .flat_map(|(_, frame)| frame.sources.iter())
            .find(|source| source.qualifier() == Some(qualifier))
    }

    /// The one source of the innermost scope that has any whose qualifier equals the unquoted
    /// `qualifier` ignoring case.
    fn source_named_folded(&self, qualifier: &Ident) -> Option<&Source> {
        let folded = fold(&qualifier.value);
        for (_, frame) in self.frames_in_scope() {
            let mut matching = frame
                .sources
                .iter()
                .filter(|source| source.qualifier().is_some_and(|q| fold(q) == folded));
            match (matching.next(), matching.next()) {
                (Some(source), None) => return Some(source),
                (Some(_), Some(_)) => return None,
                (None, _) => {}
            }
        }
        None
    }

    /// The replacement qualifier and column of `qualifier.column` (`None`: the part stays).
    fn resolve_qualified(
        &self,
        qualifier: &Ident,
        column: &Ident,
    ) -> Result<(Option<String>, Option<String>), AmbiguousName> {
        let (source, renamed) = match self.source_named(&normalize(qualifier)) {
            Some(source) => (source, None),
            None if qualifier.quote_style.is_none() => match self.source_named_folded(qualifier) {
                Some(source) => (source, source.qualifier().map(str::to_string)),
                None => return Ok((None, None)),
            },
            None => return Ok((None, None)),
        };
        let Source::Metric { qualifier, table } = source else {
            return Ok((renamed, None));
        };
        let name = normalize(column);
        if table.columns.contains(&name) {
            return Ok((renamed, None));
        }
        if let Some(display) = table.aliases.get(&name) {
            return Ok((renamed, Some(display.clone())));
        }
        if column.quote_style.is_some() {
            return Ok((renamed, None));
        }
        let mut candidates = Vec::new();
        case::table_columns(
            0,
            Some(qualifier),
            table,
            &fold(&column.value),
            &mut candidates,
        );
        let found = column_resolution(column, case::choose(&column.value, &candidates))?;
        Ok((renamed, found))
    }

    /// The replacement for a column reference, if it names an alias or matches a name only
    /// ignoring case.
    fn rewritten(&self, expr: &Expr) -> Result<Option<Expr>, AmbiguousName> {
        match expr {
            Expr::Identifier(ident) => Ok(self
                .resolve_unqualified(ident)?
                .map(|display| Expr::Identifier(display_ident(&display)))),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let last = parts.len() - 1;
                let (qualifier, column) = self.resolve_qualified(&parts[last - 1], &parts[last])?;
                if qualifier.is_none() && column.is_none() {
                    return Ok(None);
                }
                let mut parts = parts.clone();
                if let Some(qualifier) = qualifier {
                    parts[last - 1] = display_ident(&qualifier);
                }
                if let Some(column) = column {
                    parts[last] = display_ident(&column);
                }
                Ok(Some(Expr::CompoundIdentifier(parts)))
            }
            _ => Ok(None),
        }
    }

    /// Resolves the unquoted metric table names in the `FROM` of each `SELECT` of `body`
    /// (subqueries are visited as queries of their own).
    fn resolve_tables_in(&self, body: &mut SetExpr) -> Result<(), AmbiguousName> {
        match body {
            SetExpr::Select(select) => self.resolve_table_names(&mut select.from),
            SetExpr::SetOperation { left, right, .. } => {
                self.resolve_tables_in(left)?;
                self.resolve_tables_in(right)
            }
            _ => Ok(()),
        }
    }

    fn resolve_table_names(&self, from: &mut [TableWithJoins]) -> Result<(), AmbiguousName> {
        for table in from {
            self.resolve_table_name(&mut table.relation)?;
            for join in &mut table.joins {
                self.resolve_table_name(&mut join.relation)?;
            }
        }
        Ok(())
    }

    /// `FROM MY_TABLE` for a metric registered only as `MY_TABLE` becomes `FROM "MY_TABLE" AS
    /// my_table`: the alias is the qualifier DataFusion would have given the unquoted name, so
    /// references qualified by it (`MY_TABLE.temp`, which folds to `my_table.temp`) still work.
    fn resolve_table_name(&self, factor: &mut TableFactor) -> Result<(), AmbiguousName> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                if self.cte(name).is_some() {
                    return Ok(());
                }
                let Some(ident) = case::metric_table_ident(name) else {
                    return Ok(());
                };
                if ident.quote_style.is_some() {
                    return Ok(());
                }
                let Some(registered) = case::table_name(self.resolver.tables.iter(), ident)? else {
                    return Ok(());
                };
                let folded = normalize(ident);
                *ident = display_ident(&registered);
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::new(folded),
                        columns: Vec::new(),
                        at: None,
                    });
                }
                Ok(())
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.resolve_table_names(std::slice::from_mut(table_with_joins.as_mut())),
            _ => Ok(()),
        }
    }
}

impl Source {
    fn qualifier(&self) -> Option<&str> {
        match self {
            Source::Metric { qualifier, .. } => Some(qualifier),
            Source::Opaque { qualifier, .. } => qualifier.as_deref(),
        }
    }
}

/// A case-insensitive lookup's outcome for `written` as a column name.
fn column_resolution(written: &Ident, found: Folded) -> Result<Option<String>, AmbiguousName> {
    match found {
        Folded::One(name) => Ok(Some(name)),
        Folded::None => Ok(None),
        Folded::Ambiguous(candidates) => Err(AmbiguousName {
            kind: NameKind::Column,
            written: written.value.clone(),
            candidates,
        }),
    }
}

fn display_ident(display: &str) -> Ident {
    // Quoted so the display name keeps its case and may contain spaces.
    Ident::with_quote('"', display)
}

fn last_part(name: &ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(ident) => Some(normalize(ident)),
        _ => None,
    }
}

fn for_each_select(body: &SetExpr, f: &mut dyn FnMut(&Select)) {
    match body {
        SetExpr::Select(select) => f(select),
        SetExpr::SetOperation { left, right, .. } => {
            for_each_select(left, f);
            for_each_select(right, f);
        }
        _ => {}
    }
}

fn select_aliases(select: &Select, out: &mut HashSet<String>) {
    for item in &select.projection {
        if let SelectItem::ExprWithAlias { alias, .. } = item {
            out.insert(normalize(alias));
        }
    }
}

/// Best-effort output column names of a subquery, complete unless it has `*`, an unnamed
/// expression or is not a plain `SELECT`.
fn query_output_names(query: &Query) -> Outputs {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Outputs::default();
    };
    let mut outputs = Outputs {
        names: Vec::new(),
        complete: true,
    };
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                outputs.names.push(normalize(ident))
            }
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) if !parts.is_empty() => {
                outputs.names.extend(parts.last().map(normalize))
            }
            SelectItem::ExprWithAlias { alias, .. } => outputs.names.push(normalize(alias)),
            _ => outputs.complete = false,
        }
    }
    outputs
}

/// A lookup's result as the visitor's control flow: an ambiguous name stops the rewrite.
fn flow<T>(result: Result<T, AmbiguousName>) -> ControlFlow<AmbiguousName, T> {
    match result {
        Ok(value) => ControlFlow::Continue(value),
        Err(ambiguous) => ControlFlow::Break(ambiguous),
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = AmbiguousName;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<AmbiguousName> {
        let mut ctes = HashMap::new();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let mut outputs = Outputs::declared(
                    cte.alias
                        .columns
                        .iter()
                        .map(|c| normalize(&c.name))
                        .collect(),
                );
                if !outputs.complete {
                    outputs = query_output_names(&cte.query);
                }
                ctes.insert(normalize(&cte.alias.name), outputs);
            }
        }
        self.ctes.push(ctes);
        // Before the scopes are built from them, so they see the resolved names.
        flow(self.resolve_tables_in(&mut query.body))?;
        let mut sources = Vec::new();
        let mut aliases = HashSet::new();
        for_each_select(&query.body, &mut |select| {
            self.sources_of(&select.from, &mut sources);
            select_aliases(select, &mut aliases);
        });
        self.frames.push(Frame {
            kind: FrameKind::Query,
            sources,
            select_aliases: aliases,
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<AmbiguousName> {
        self.frames.pop();
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<AmbiguousName> {
        let mut sources = Vec::new();
        self.sources_of(&select.from, &mut sources);
        let mut aliases = HashSet::new();
        select_aliases(select, &mut aliases);
        self.frames.push(Frame {
            kind: FrameKind::Select,
            sources,
            select_aliases: aliases,
        });
        // `SELECT temp` must still output a column named `temp`.
        for item in select.projection.iter_mut() {
            if let SelectItem::UnnamedExpr(expr) = item {
                let alias = match expr {
                    Expr::Identifier(ident) => ident.clone(),
                    Expr::CompoundIdentifier(parts) => match parts.last() {
                        Some(last) => last.clone(),
                        None => continue,
                    },
                    _ => continue,
                };
                if let Some(replacement) = flow(self.rewritten(expr))? {
                    *item = SelectItem::ExprWithAlias {
                        expr: replacement,
                        alias,
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _select: &mut Select) -> ControlFlow<AmbiguousName> {
        self.frames.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<AmbiguousName> {
        if let Some(replacement) = flow(self.rewritten(expr))? {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn resolver() -> AliasResolver {
        let thermostat = Arc::new(TableAliases {
            columns: ["timestamp", "temperature", "humidity", "name"]
                .into_iter()
                .map(String::from)
                .collect(),
            aliases: [
                ("temp", "temperature"),
                ("tmp", "temperature"),
                ("hum", "humidity"),
            ]
            .into_iter()
            .map(|(a, d)| (a.to_string(), d.to_string()))
            .collect(),
        });
        let machine = Arc::new(TableAliases {
            columns: ["timestamp", "Gallons", "temp_c"]
                .into_iter()
                .map(String::from)
                .collect(),
            aliases: [("gal", "Gallons"), ("temp", "temp_c")]
                .into_iter()
                .map(|(a, d)| (a.to_string(), d.to_string()))
                .collect(),
        });
        let mut resolver = AliasResolver::new();
        resolver.add_table("thermostat", thermostat.clone());
        resolver.add_table("machine1", thermostat);
        resolver.add_table("new machine", machine);
        resolver
    }

    fn rewrite(sql: &str) -> String {
        rewrite_with(&resolver(), sql).unwrap()
    }

    fn rewrite_with(resolver: &AliasResolver, sql: &str) -> Result<String, AmbiguousName> {
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        resolver.rewrite(&mut statements[0])?;
        Ok(statements[0].to_string())
    }

    fn table(columns: &[&str], aliases: &[(&str, &str)]) -> Arc<TableAliases> {
        Arc::new(TableAliases {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            aliases: aliases
                .iter()
                .map(|(a, d)| (a.to_string(), d.to_string()))
                .collect(),
        })
    }

    /// `resolver()` plus names that differ from others only in case: metric `MY_TABLE` (also
    /// `MyAlias`) whose field `Level` has the alias `LEVEL` and whose field `velocity` has the
    /// alias `SPEED` next to a field `Speed`; metrics `Dup` and `DUP`; `lower` and `LOWER`.
    fn case_resolver() -> AliasResolver {
        let mut resolver = resolver();
        let my_table = table(
            &["timestamp", "Temp", "Level", "Speed", "velocity"],
            &[("LEVEL", "Level"), ("SPEED", "velocity"), ("tmp_f", "Temp")],
        );
        resolver.add_table("MY_TABLE", my_table.clone());
        resolver.add_table("MyAlias", my_table);
        resolver.add_table("Other", table(&["timestamp", "Temp"], &[]));
        resolver.add_table("Dup", table(&["timestamp"], &[]));
        resolver.add_table("DUP", table(&["timestamp"], &[]));
        resolver.add_table("lower", table(&["timestamp"], &[]));
        resolver.add_table("LOWER", table(&["timestamp", "x"], &[]));
        resolver
    }

    fn case(sql: &str) -> String {
        rewrite_with(&case_resolver(), sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn ambiguous(sql: &str) -> AmbiguousName {
        match rewrite_with(&case_resolver(), sql) {
            Err(ambiguous) => ambiguous,
            Ok(rewritten) => panic!("{sql} resolved to {rewritten}"),
        }
    }

    #[test]
    fn projection_keeps_the_queried_name() {
        assert_eq!(
            rewrite("SELECT temp, humidity FROM thermostat"),
            r#"SELECT "temperature" AS temp, humidity FROM thermostat"#
        );
        assert_eq!(
            rewrite("SELECT t.tmp FROM machine1 AS t"),
            r#"SELECT t."temperature" AS tmp FROM machine1 AS t"#
        );
    }

    #[test]
    fn every_clause_is_rewritten() {
        assert_eq!(
            rewrite(
                "SELECT avg(temp) AS a FROM thermostat WHERE tmp > 1 GROUP BY hum HAVING max(temp) > 2 ORDER BY hum"
            ),
            r#"SELECT avg("temperature") AS a FROM thermostat WHERE "temperature" > 1 GROUP BY "humidity" HAVING max("temperature") > 2 ORDER BY "humidity""#
        );
    }

    #[test]
    fn select_aliases_real_columns_and_derived_outputs_are_kept() {
        assert_eq!(
            rewrite("SELECT humidity AS temp FROM thermostat ORDER BY temp"),
            "SELECT humidity AS temp FROM thermostat ORDER BY temp"
        );
        assert_eq!(
            rewrite("SELECT temp FROM (SELECT temperature AS temp FROM thermostat) s"),
            "SELECT temp FROM (SELECT temperature AS temp FROM thermostat) s"
        );
    }

    #[test]
    fn ctes_subqueries_and_joins_are_scoped() {
        assert_eq!(
            rewrite("WITH w AS (SELECT temp FROM thermostat) SELECT temp FROM w"),
            r#"WITH w AS (SELECT "temperature" AS temp FROM thermostat) SELECT temp FROM w"#
        );
        assert_eq!(
            rewrite("SELECT name FROM thermostat t WHERE tmp > (SELECT avg(temp) FROM machine1)"),
            r#"SELECT name FROM thermostat t WHERE "temperature" > (SELECT avg("temperature") FROM machine1)"#
        );
        // Correlated: `hum` is resolved in the enclosing SELECT's table.
        assert_eq!(
            rewrite(
                r#"SELECT name FROM thermostat t WHERE EXISTS (SELECT 1 FROM "new machine" m WHERE m.gal > t.hum)"#
            ),
            r#"SELECT name FROM thermostat t WHERE EXISTS (SELECT 1 FROM "new machine" m WHERE m."Gallons" > t."humidity")"#
        );
        assert_eq!(
            rewrite(
                r#"SELECT t.temp, m.temp FROM thermostat t JOIN "new machine" m ON t.tmp = m.gal"#
            ),
            r#"SELECT t."temperature" AS temp, m."temp_c" AS temp FROM thermostat t JOIN "new machine" m ON t."temperature" = m."Gallons""#
        );
    }

    #[test]
    fn ambiguous_unqualified_alias_is_left_alone() {
        assert_eq!(
            rewrite(r#"SELECT temp FROM thermostat, "new machine""#),
            r#"SELECT temp FROM thermostat, "new machine""#
        );
        // Unambiguous names still resolve in the same query.
        assert_eq!(
            rewrite(r#"SELECT gal FROM thermostat, "new machine""#),
            r#"SELECT "Gallons" AS gal FROM thermostat, "new machine""#
        );
    }

    #[test]
    fn cte_named_like_a_metric_shadows_it_and_unquoted_names_fold() {
        assert_eq!(
            rewrite("WITH thermostat AS (SELECT 1 AS x) SELECT temp FROM thermostat"),
            "WITH thermostat AS (SELECT 1 AS x) SELECT temp FROM thermostat"
        );
        assert_eq!(
            rewrite("SELECT TEMP FROM public.THERMOSTAT"),
            r#"SELECT "temperature" AS TEMP FROM public.THERMOSTAT"#
        );
        // Quoted identifiers keep their case, and "TEMP" is not an alias.
        assert_eq!(
            rewrite(r#"SELECT "TEMP" FROM thermostat"#),
            r#"SELECT "TEMP" FROM thermostat"#
        );
    }

    #[test]
    fn unquoted_names_resolve_ignoring_case_when_one_matches() {
        // The seed's example.
        assert_eq!(
            case("SELECT temp FROM MY_TABLE"),
            r#"SELECT "Temp" AS temp FROM "MY_TABLE" AS my_table"#
        );
        assert_eq!(
            case("select TEMP from my_table WHERE temp > 1"),
            r#"SELECT "Temp" AS TEMP FROM "MY_TABLE" AS my_table WHERE "Temp" > 1"#
        );
        // An alias of a field resolves ignoring case too, to the field's display name.
        assert_eq!(
            case("SELECT TMP_F FROM my_table ORDER BY tmp_F"),
            r#"SELECT "Temp" AS TMP_F FROM "MY_TABLE" AS my_table ORDER BY "Temp""#
        );
        // A metric alias is a table name like any other.
        assert_eq!(
            case("SELECT timestamp FROM myalias"),
            r#"SELECT timestamp FROM "MyAlias" AS myalias"#
        );
        // An explicit alias is kept; schema-qualified names resolve their last part.
        assert_eq!(
            case("SELECT t.temp FROM public.my_table t"),
            r#"SELECT t."Temp" AS temp FROM public."MY_TABLE" t"#
        );
    }

    #[test]
    fn qualifiers_follow_the_resolved_table() {
        // The added alias is what DataFusion would have called the unquoted table.
        assert_eq!(
            case("SELECT MY_TABLE.TEMP FROM MY_TABLE WHERE my_table.temp > 1"),
            r#"SELECT MY_TABLE."Temp" AS TEMP FROM "MY_TABLE" AS my_table WHERE my_table."Temp" > 1"#
        );
        // A quoted table keeps its case; an unquoted qualifier finds it ignoring case.
        assert_eq!(
            case(r#"SELECT my_table.temp FROM "MY_TABLE""#),
            r#"SELECT "MY_TABLE"."Temp" AS temp FROM "MY_TABLE""#
        );
        assert_eq!(
            case(r#"SELECT x.level FROM MY_TABLE AS "X""#),
            r#"SELECT "X"."Level" AS level FROM "MY_TABLE" AS "X""#
        );
    }

    #[test]
    fn a_field_and_an_alias_differing_only_in_case() {
        // `Level` and its own alias `LEVEL`: one field, so not ambiguous.
        assert_eq!(
            case("SELECT level FROM my_table"),
            r#"SELECT "Level" AS level FROM "MY_TABLE" AS my_table"#
        );
        // `Speed` and `SPEED` (an alias of `velocity`): two fields. Written exactly, each is
        // itself; otherwise the query is refused naming both.
        assert_eq!(
            case("SELECT SPEED, Speed FROM my_table"),
            r#"SELECT "velocity" AS SPEED, "Speed" AS Speed FROM "MY_TABLE" AS my_table"#
        );
        let err = ambiguous("SELECT speed FROM my_table");
        assert_eq!(err.kind, NameKind::Column);
        assert_eq!(err.written, "speed");
        assert_eq!(err.candidates, vec![r#""SPEED""#, r#""Speed""#]);
        assert_eq!(
            err.to_string(),
            r#"column name speed is ambiguous: ignoring case it matches "SPEED", "Speed"; write the one you mean in double quotes"#
        );
        let err = ambiguous("SELECT 1 FROM my_table WHERE sPeEd > 0");
        assert_eq!(err.candidates, vec![r#""SPEED""#, r#""Speed""#]);
    }

    #[test]
    fn ambiguous_tables_and_columns_are_refused_naming_the_candidates() {
        let err = ambiguous("SELECT * FROM dup");
        assert_eq!(err.kind, NameKind::Table);
        assert_eq!(err.candidates, vec![r#""DUP""#, r#""Dup""#]);
        assert!(
            err.to_string().starts_with("table name dup is ambiguous"),
            "{err}"
        );
        // Written exactly as registered, it is that table.
        assert_eq!(case("SELECT * FROM Dup"), r#"SELECT * FROM "Dup" AS dup"#);
        // Two tables of one query each with the column: qualified candidates.
        let err = ambiguous("SELECT temp FROM my_table a, other b");
        assert_eq!(err.candidates, vec![r#"a."Temp""#, r#"b."Temp""#]);
        assert_eq!(
            case("SELECT b.temp FROM my_table a, other b"),
            r#"SELECT b."Temp" AS temp FROM "MY_TABLE" a, "Other" b"#
        );
    }

    #[test]
    fn exact_matches_and_quoted_names_keep_their_meaning() {
        // `LOWER` folds to `lower`, which exists: DataFusion's meaning, untouched.
        assert_eq!(case("SELECT * FROM LOWER"), "SELECT * FROM LOWER");
        // Quoted names are exact: nothing is resolved for them.
        assert_eq!(
            case(r#"SELECT "temp" FROM MY_TABLE"#),
            r#"SELECT "temp" FROM "MY_TABLE" AS my_table"#
        );
        assert_eq!(
            case(r#"SELECT temp FROM "my_table""#),
            r#"SELECT temp FROM "my_table""#
        );
        assert_eq!(case(r#"SELECT * FROM "dup""#), r#"SELECT * FROM "dup""#);
        // An exact match in an enclosing scope wins over a case-insensitive one inside: `temp`
        // is thermostat's alias.
        assert_eq!(
            case("SELECT name FROM thermostat t WHERE EXISTS (SELECT 1 FROM my_table m WHERE temp > 1)"),
            r#"SELECT name FROM thermostat t WHERE EXISTS (SELECT 1 FROM "MY_TABLE" m WHERE "temperature" > 1)"#
        );
        // A CTE named like the folded name shadows the metric.
        assert_eq!(
            case("WITH my_table AS (SELECT 1 AS x) SELECT x FROM MY_TABLE"),
            "WITH my_table AS (SELECT 1 AS x) SELECT x FROM MY_TABLE"
        );
    }

    #[test]
    fn sources_with_unknown_columns_stop_the_case_insensitive_lookup() {
        // `temp` could be a column of the table function's result.
        assert_eq!(
            case("SELECT temp FROM my_table, strata_raw('x') r"),
            r#"SELECT temp FROM "MY_TABLE" AS my_table, strata_raw('x') r"#
        );
        // A subquery's named outputs are known; `*` is not.
        assert_eq!(
            case(r#"SELECT tmp FROM (SELECT level AS "Tmp" FROM my_table) s"#),
            r#"SELECT "Tmp" AS tmp FROM (SELECT "Level" AS "Tmp" FROM "MY_TABLE" AS my_table) s"#
        );
        assert_eq!(
            case("SELECT temp FROM (SELECT * FROM my_table) s"),
            r#"SELECT temp FROM (SELECT * FROM "MY_TABLE" AS my_table) s"#
        );
    }
}
