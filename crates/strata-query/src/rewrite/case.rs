//! Case-insensitive resolution of unquoted SQL names: which table or column an unquoted name
//! means when no name matches it exactly, and the error when several do.
//!
//! DataFusion lowercases unquoted identifiers, so a metric a device named `MY_TABLE` or a field
//! `Temp` could only be read in double quotes. The rule, applied by the rewriter before
//! planning: an unquoted name that matches a name exactly (as DataFusion folds it) keeps its
//! meaning; otherwise the names equal to it ignoring case are its candidates. One written
//! exactly as the query wrote it wins; else, if they all lead to one table or column, the name
//! resolves to it; if they lead to several, the query is refused naming them. Quoted
//! identifiers are always exact.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart};
use strata_format::model::TableAliases;

use super::{normalize, CATALOG_NAME, METRIC_SCHEMA};

/// What kind of name was ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Table,
    Column,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::Table => "table",
            NameKind::Column => "column",
        })
    }
}

/// An unquoted name that matches several tables or columns when case is ignored and none
/// exactly. Shown to the tenant as a 400 naming the candidates, quoted as they must be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} name {written} is ambiguous: ignoring case it matches {}; write the one you mean in double quotes",
    candidates.join(", ")
)]
pub struct AmbiguousName {
    pub kind: NameKind,
    /// The name as the query wrote it.
    pub written: String,
    /// Each candidate as it must be written (`"Temp"`, or `m."Temp"` across tables), sorted.
    pub candidates: Vec<String>,
}

/// Case-insensitive comparison key. Unicode lowercase, so `TEMPÉ` finds `tempé`; what
/// DataFusion itself does to unquoted names (ASCII lowercase) is [`normalize`].
pub(super) fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// A name that matched ignoring case: which source it is in, the name that matched, and the
/// name the reference must use (the field's display name for an alias).
#[derive(Debug)]
pub(super) struct Candidate<'a> {
    pub source: usize,
    pub qualifier: Option<&'a str>,
    pub matched: &'a str,
    pub target: &'a str,
}

/// The outcome of looking a name up ignoring case.
#[derive(Debug)]
pub(super) enum Folded {
    /// Resolve to this name (a column's real name, a table's registered name).
    One(String),
    /// Several tables or columns match.
    Ambiguous(Vec<String>),
    /// Nothing matches.
    None,
}

/// Chooses among `candidates` for the unquoted `written` name: one written exactly as the query
/// wrote it, else the only target, else ambiguity.
pub(super) fn choose(written: &str, candidates: &[Candidate<'_>]) -> Folded {
    let targets = |exact_only: bool| -> BTreeSet<(usize, &str)> {
        candidates
            .iter()
            .filter(|c| !exact_only || c.matched == written)
            .map(|c| (c.source, c.target))
            .collect()
    };
    let exact = targets(true);
    let chosen = if exact.len() == 1 {
        exact
    } else {
        targets(false)
    };
    match chosen.iter().next() {
        None => Folded::None,
        Some((_, target)) if chosen.len() == 1 => Folded::One((*target).to_string()),
        Some(_) => Folded::Ambiguous(shown(candidates)),
    }
}

/// The candidates as they must be written; qualified when they come from several tables.
fn shown(candidates: &[Candidate<'_>]) -> Vec<String> {
    let sources: BTreeSet<usize> = candidates.iter().map(|c| c.source).collect();
    let names: BTreeSet<String> = candidates
        .iter()
        .map(|c| match c.qualifier {
            Some(qualifier) if sources.len() > 1 => {
                format!("{qualifier}.{}", quoted(c.matched))
            }
            _ => quoted(c.matched),
        })
        .collect();
    names.into_iter().collect()
}

/// A name in double quotes, SQL style (an inner quote doubled).
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every column and alias of a metric table equal to `folded` ignoring case. A linear pass:
/// this runs only for names that matched nothing exactly.
pub(super) fn table_columns<'a>(
    source: usize,
    qualifier: Option<&'a str>,
    table: &'a TableAliases,
    folded: &str,
    out: &mut Vec<Candidate<'a>>,
) {
    let columns = table.columns.iter().map(|c| (c.as_str(), c.as_str()));
    let aliases = table.aliases.iter().map(|(a, d)| (a.as_str(), d.as_str()));
    for (matched, target) in columns.chain(aliases) {
        if fold(matched) == folded {
            out.push(Candidate {
                source,
                qualifier,
                matched,
                target,
            });
        }
    }
}

/// The registered table name an unquoted table name resolves to ignoring case (`None`: it
/// matches exactly, or nothing). Names of one metric share its `TableAliases`, so a metric
/// matching under two of its names is not ambiguous.
pub(super) fn table_name<'a>(
    tables: impl Iterator<Item = (&'a String, &'a Arc<TableAliases>)>,
    ident: &Ident,
) -> Result<Option<String>, AmbiguousName> {
    let folded = fold(&ident.value);
    let exact = normalize(ident);
    // Sorted by name, so a metric matching under two of its names resolves the same way each
    // time.
    let mut matches: Vec<(&String, *const TableAliases)> = tables
        .filter(|(name, _)| fold(name) == folded)
        .map(|(name, table)| (name, Arc::as_ptr(table)))
        .collect();
    matches.sort();
    if matches.iter().any(|(name, _)| **name == exact) {
        return Ok(None);
    }
    if let Some((name, _)) = matches.iter().find(|(name, _)| **name == ident.value) {
        return Ok(Some((*name).clone()));
    }
    let distinct: BTreeSet<*const TableAliases> = matches.iter().map(|(_, t)| *t).collect();
    match (matches.first(), distinct.len()) {
        (None, _) => Ok(None),
        (Some((name, _)), 1) => Ok(Some((*name).clone())),
        _ => Err(AmbiguousName {
            kind: NameKind::Table,
            written: ident.value.clone(),
            candidates: matches.iter().map(|(name, _)| quoted(name)).collect(),
        }),
    }
}

/// The identifier naming a metric table in a table reference (`t`, `public.t`,
/// `strata.public.t`); `None` for other schemas and for names that are not plain identifiers.
pub(super) fn metric_table_ident(name: &mut ObjectName) -> Option<&mut Ident> {
    let prefix: Vec<Option<String>> = name.0[..name.0.len().saturating_sub(1)]
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(normalize(ident)),
            _ => None,
        })
        .collect();
    let in_metric_schema = match prefix.as_slice() {
        [] => true,
        [Some(schema)] => schema == METRIC_SCHEMA,
        [Some(catalog), Some(schema)] => catalog == CATALOG_NAME && schema == METRIC_SCHEMA,
        _ => false,
    };
    match name.0.last_mut()? {
        ObjectNamePart::Identifier(ident) if in_metric_schema => Some(ident),
        _ => None,
    }
}
