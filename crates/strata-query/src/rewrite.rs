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

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr, TableFactor,
    TableWithJoins, VisitMut, VisitorMut,
};
use strata_format::model::TableAliases;

/// Name of the catalog and of the schema holding metric tables; qualified table references are
/// resolved against them.
pub const CATALOG_NAME: &str = "strata";
pub const METRIC_SCHEMA: &str = "public";

/// The metric tables a rewrite can resolve, by every name they are registered under.
#[derive(Debug, Default, Clone)]
pub struct AliasResolver {
    tables: HashMap<String, Arc<TableAliases>>,
}

impl AliasResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a table under one of its names (display name or alias).
    pub fn add_table(&mut self, name: &str, aliases: Arc<TableAliases>) {
        self.tables.insert(name.to_string(), aliases);
    }

    /// Rewrites every alias reference in `statement` in place.
    pub fn rewrite<T: VisitMut>(&self, statement: &mut T) {
        let mut visitor = Rewriter {
            resolver: self,
            frames: Vec::new(),
            ctes: Vec::new(),
        };
        // The visitor never breaks.
        let _ = statement.visit(&mut visitor);
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

/// The name DataFusion will use for an identifier.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
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
        outputs: Vec<String>,
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
    ctes: Vec<HashMap<String, Vec<String>>>,
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
    fn cte(&self, name: &ObjectName) -> Option<Vec<String>> {
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
                let alias_columns: Vec<String> = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| normalize(&c.name)).collect())
                    .unwrap_or_default();
                if args.is_none() {
                    if let Some(outputs) = self.cte(name) {
                        let qualifier = alias_name.or_else(|| last_part(name));
                        let outputs = if alias_columns.is_empty() {
                            outputs
                        } else {
                            alias_columns
                        };
                        sources.push(Source::Opaque { qualifier, outputs });
                        return;
                    }
                    if let Some(table) = self.resolver.metric(name) {
                        if alias_columns.is_empty() {
                            let qualifier =
                                alias_name.or_else(|| last_part(name)).unwrap_or_default();
                            sources.push(Source::Metric { qualifier, table });
                            return;
                        }
                    }
                }
                sources.push(Source::Opaque {
                    qualifier: alias_name.or_else(|| last_part(name)),
                    outputs: alias_columns,
                });
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut outputs = alias
                    .as_ref()
                    .map(|a| {
                        a.columns
                            .iter()
                            .map(|c| normalize(&c.name))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if outputs.is_empty() {
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
                outputs: Vec::new(),
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
                    if outputs.iter().any(|o| o == name) {
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

    fn resolve_unqualified(&self, name: &str) -> Option<String> {
        for (depth, frame) in self.frames_in_scope() {
            match Self::resolve_in_frame(frame, name, depth == 0) {
                Resolution::Rewrite(display) => return Some(display),
                Resolution::Keep => return None,
                Resolution::Unknown => {}
            }
        }
        None
    }

    fn resolve_qualified(&self, qualifier: &str, name: &str) -> Option<String> {
        for (_, frame) in self.frames_in_scope() {
            for source in &frame.sources {
                match source {
                    Source::Metric {
                        qualifier: q,
                        table,
                    } if q == qualifier => {
                        if table.columns.contains(name) {
                            return None;
                        }
                        return table.aliases.get(name).cloned();
                    }
                    Source::Opaque {
                        qualifier: Some(q), ..
                    } if q == qualifier => return None,
                    _ => {}
                }
            }
        }
        None
    }

    /// The replacement for a column reference, if it names an alias.
    fn rewritten(&self, expr: &Expr) -> Option<Expr> {
        match expr {
            Expr::Identifier(ident) => {
                let display = self.resolve_unqualified(&normalize(ident))?;
                Some(Expr::Identifier(display_ident(&display)))
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let (column, qualifier) = (&parts[parts.len() - 1], &parts[parts.len() - 2]);
                let display = self.resolve_qualified(&normalize(qualifier), &normalize(column))?;
                let mut parts = parts.clone();
                let last = parts.len() - 1;
                parts[last] = display_ident(&display);
                Some(Expr::CompoundIdentifier(parts))
            }
            _ => None,
        }
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

/// Best-effort output column names of a subquery (empty when not knowable from the text, e.g.
/// `SELECT *`).
fn query_output_names(query: &Query) -> Vec<String> {
    let mut names = Vec::new();
    let SetExpr::Select(select) = query.body.as_ref() else {
        return names;
    };
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => names.push(normalize(ident)),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                if let Some(last) = parts.last() {
                    names.push(normalize(last));
                }
            }
            SelectItem::ExprWithAlias { alias, .. } => names.push(normalize(alias)),
            _ => {}
        }
    }
    names
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let mut ctes = HashMap::new();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let mut outputs: Vec<String> = cte
                    .alias
                    .columns
                    .iter()
                    .map(|c| normalize(&c.name))
                    .collect();
                if outputs.is_empty() {
                    outputs = query_output_names(&cte.query);
                }
                ctes.insert(normalize(&cte.alias.name), outputs);
            }
        }
        self.ctes.push(ctes);
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

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.frames.pop();
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
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
                if let Some(replacement) = self.rewritten(expr) {
                    *item = SelectItem::ExprWithAlias {
                        expr: replacement,
                        alias,
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _select: &mut Select) -> ControlFlow<()> {
        self.frames.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(replacement) = self.rewritten(expr) {
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
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        resolver().rewrite(&mut statements[0]);
        statements[0].to_string()
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
}
