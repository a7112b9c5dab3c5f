//! Finding the Parquet files one compaction wrote, so other engines can read exactly the data
//! Strata's cold tier holds.
//!
//! The HTTP contract does not name files (a tenant must not learn server paths), so the
//! benchmark, which runs beside the server and knows its cold directory, lists
//! `COLD_DIR/**/*.parquet` before and after its `POST /api/v1/compact`. The new files are that
//! compaction's output: documented layout `t<tenant id>/m<metric id>/YYYY/MM/DD/<uuid>.parquet`.
//! A metric directory is recognized by a column only that metric's files hold (`velocity` for
//! `readings`), and the row counts in the files' footers must match what the server says it
//! compacted per metric, so a file of another tenant or metric can never slip in unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use strata_client::CompactAnswer;

use crate::BenchError;

/// Every `*.parquet` file below `dir` (none when `dir` does not exist yet).
pub fn parquet_files_under(dir: &Path) -> Result<BTreeSet<PathBuf>, BenchError> {
    let mut files = BTreeSet::new();
    if dir.exists() {
        collect(dir, &mut files)?;
    }
    Ok(files)
}

fn collect(dir: &Path, files: &mut BTreeSet<PathBuf>) -> Result<(), BenchError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect(&path, files)?;
        } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "parquet") {
            files.insert(path);
        }
    }
    Ok(())
}

/// Rows and columns of one Parquet file, from its footer only.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFacts {
    pub rows: u64,
    pub columns: Vec<(String, DataType)>,
}

pub fn file_facts(path: &Path) -> Result<FileFacts, BenchError> {
    let unreadable =
        |error: &dyn std::fmt::Display| BenchError::Decode(format!("{}: {error}", path.display()));
    let file = File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(&e))?;
    let rows =
        u64::try_from(builder.metadata().file_metadata().num_rows()).map_err(|e| unreadable(&e))?;
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|field| (field.name().clone(), field.data_type().clone()))
        .collect();
    Ok(FileFacts { rows, columns })
}

/// The files of one metric written by one compaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricFiles {
    pub metric: String,
    /// `t<tenant>/m<metric>` below the cold directory.
    pub directory: String,
    pub files: Vec<PathBuf>,
    /// Rows in the files' footers.
    pub rows: u64,
    pub bytes: u64,
    /// Every column any file holds, with one type: the files' common type, or text (Utf8) when
    /// they disagree (a column typed in one file and kept as sent text in another).
    pub columns: BTreeMap<String, String>,
    #[serde(skip)]
    pub arrow_types: BTreeMap<String, DataType>,
}

/// What one compaction wrote, per recognized metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdFileSet {
    pub cold_dir: PathBuf,
    pub metrics: Vec<MetricFiles>,
    /// New files in metric directories no marker claimed (other metrics of the tenant).
    pub other_files: usize,
}

impl ColdFileSet {
    pub fn metric(&self, name: &str) -> Option<&MetricFiles> {
        self.metrics.iter().find(|m| m.metric == name)
    }
}

/// Attributes the files that appeared between `before` and `after` to metrics. `markers` maps
/// a metric name to a column only its files hold. Fails when the new files do not add up to
/// what `answer` reports (another compaction ran at the same time, or re-typing replaced
/// files in the same run), when they span tenants, or when a marked metric the answer
/// compacted has no directory.
pub fn locate_compacted_files(
    cold_dir: &Path,
    before: &BTreeSet<PathBuf>,
    after: &BTreeSet<PathBuf>,
    answer: &CompactAnswer,
    markers: &[(&str, &str)],
) -> Result<ColdFileSet, BenchError> {
    let new_files: Vec<&PathBuf> = after.difference(before).collect();
    check_new_files_are_this_compaction(cold_dir, new_files.len(), answer)?;
    let groups = group_by_metric_directory(cold_dir, new_files)?;
    check_single_tenant(&groups)?;

    let mut metrics = Vec::new();
    let mut other_files = 0;
    for (directory, files) in groups {
        let facts = DirectoryFacts::read(&files)?;
        let Some(metric) = claimed_metric(&directory, &facts.arrow_types, markers)? else {
            other_files += files.len();
            continue;
        };
        if metrics.iter().any(|m: &MetricFiles| m.metric == metric) {
            return check_failed(format!(
                "two directories hold {metric}'s marker column; the markers do not identify it"
            ));
        }
        metrics.push(facts.into_metric_files(metric, directory, files));
    }
    check_footers_agree_with_answer(&metrics, answer, markers)?;
    metrics.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(ColdFileSet {
        cold_dir: cold_dir.to_path_buf(),
        metrics,
        other_files,
    })
}

fn check_failed<T>(message: String) -> Result<T, BenchError> {
    Err(BenchError::Check(message))
}

/// The new files must be exactly what the compaction reports writing: a re-typing pass or a
/// concurrent compaction would mix in files that are not this compaction's output.
fn check_new_files_are_this_compaction(
    cold_dir: &Path,
    new_file_count: usize,
    answer: &CompactAnswer,
) -> Result<(), BenchError> {
    if answer.retyped_files > 0 {
        return check_failed(format!(
            "the compaction also re-typed {} files, so the new files include replacements of \
             older ones; run the benchmark on a tenant whose fields were declared before ingest",
            answer.retyped_files
        ));
    }
    if new_file_count as u64 != answer.files_written {
        return check_failed(format!(
            "{} new Parquet files appeared under {} but the compaction reports {} written; \
             another compaction ran at the same time (start the server with \
             --compact-interval-secs 0) or the cold directory is not this server's",
            new_file_count,
            cold_dir.display(),
            answer.files_written
        ));
    }
    Ok(())
}

/// Groups files by their `t<tenant>/m<metric>` directory below `cold_dir`.
fn group_by_metric_directory(
    cold_dir: &Path,
    new_files: Vec<&PathBuf>,
) -> Result<BTreeMap<String, Vec<PathBuf>>, BenchError> {
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for path in new_files {
        let relative = path.strip_prefix(cold_dir).map_err(|_| {
            BenchError::Decode(format!(
                "{} is not under {}",
                path.display(),
                cold_dir.display()
            ))
        })?;
        let mut parts = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy());
        let (Some(tenant), Some(metric)) = (parts.next(), parts.next()) else {
            return check_failed(format!(
                "{} does not follow the layout t<tenant>/m<metric>/YYYY/MM/DD/<uuid>.parquet",
                relative.display()
            ));
        };
        if !tenant.starts_with('t') || !metric.starts_with('m') {
            return check_failed(format!(
                "{} does not follow the layout t<tenant>/m<metric>/YYYY/MM/DD/<uuid>.parquet",
                relative.display()
            ));
        }
        groups
            .entry(format!("{tenant}/{metric}"))
            .or_default()
            .push(path.clone());
    }
    Ok(groups)
}

fn check_single_tenant(groups: &BTreeMap<String, Vec<PathBuf>>) -> Result<(), BenchError> {
    let tenants: BTreeSet<&str> = groups
        .keys()
        .filter_map(|key| key.split('/').next())
        .collect();
    if tenants.len() > 1 {
        return check_failed(format!(
            "the new files span several tenants ({tenants:?}); another tenant was compacted at \
             the same time"
        ));
    }
    Ok(())
}

/// What the footers of one metric directory's new files add up to.
struct DirectoryFacts {
    rows: u64,
    bytes: u64,
    arrow_types: BTreeMap<String, DataType>,
}

impl DirectoryFacts {
    fn read(files: &[PathBuf]) -> Result<DirectoryFacts, BenchError> {
        let mut rows = 0;
        let mut bytes = 0;
        let mut arrow_types: BTreeMap<String, DataType> = BTreeMap::new();
        for file in files {
            let facts = file_facts(file)?;
            rows += facts.rows;
            bytes += std::fs::metadata(file)?.len();
            for (name, data_type) in facts.columns {
                match arrow_types.get(&name) {
                    None => {
                        arrow_types.insert(name, data_type);
                    }
                    Some(existing) if *existing != data_type => {
                        arrow_types.insert(name, DataType::Utf8);
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(DirectoryFacts {
            rows,
            bytes,
            arrow_types,
        })
    }

    fn into_metric_files(
        self,
        metric: String,
        directory: String,
        mut files: Vec<PathBuf>,
    ) -> MetricFiles {
        files.sort();
        MetricFiles {
            metric,
            directory,
            files,
            rows: self.rows,
            bytes: self.bytes,
            columns: self
                .arrow_types
                .iter()
                .map(|(name, data_type)| (name.clone(), data_type.to_string()))
                .collect(),
            arrow_types: self.arrow_types,
        }
    }
}

/// The one metric whose marker column the directory's files hold; `None` when no marker
/// claims it (another metric of the tenant).
fn claimed_metric(
    directory: &str,
    arrow_types: &BTreeMap<String, DataType>,
    markers: &[(&str, &str)],
) -> Result<Option<String>, BenchError> {
    let claimed: Vec<&str> = markers
        .iter()
        .filter(|(_, column)| arrow_types.contains_key(*column))
        .map(|(metric, _)| *metric)
        .collect();
    match claimed.as_slice() {
        [] => Ok(None),
        [metric] => Ok(Some(metric.to_string())),
        several => check_failed(format!(
            "{directory} holds the marker columns of several metrics: {several:?}"
        )),
    }
}

/// The footers must agree with the server about every marked metric it compacted.
fn check_footers_agree_with_answer(
    metrics: &[MetricFiles],
    answer: &CompactAnswer,
    markers: &[(&str, &str)],
) -> Result<(), BenchError> {
    for reported in &answer.metrics {
        let marked = markers.iter().any(|(metric, _)| *metric == reported.metric);
        let located = metrics.iter().find(|m| m.metric == reported.metric);
        match located {
            Some(located)
                if located.rows != reported.rows
                    || located.files.len() as u64 != reported.files_written =>
            {
                return check_failed(format!(
                    "{}: the server compacted {} rows into {} files, the files found hold {} rows in {} files",
                    reported.metric,
                    reported.rows,
                    reported.files_written,
                    located.rows,
                    located.files.len()
                ));
            }
            Some(_) => {}
            None if marked && reported.files_written > 0 => {
                return check_failed(format!(
                    "{}: the server wrote {} files but none was found",
                    reported.metric, reported.files_written
                ))
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;

    use super::*;
    use strata_client::MetricCompactAnswer;

    fn write_file(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema.clone(),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn doubles(values: &[f64]) -> ArrayRef {
        Arc::new(Float64Array::from(values.to_vec()))
    }

    fn texts(values: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn answer(metrics: &[(&str, u64, u64)]) -> CompactAnswer {
        CompactAnswer {
            watermark: None,
            files_written: metrics.iter().map(|m| m.1).sum(),
            rows: metrics.iter().map(|m| m.2).sum(),
            metrics: metrics
                .iter()
                .map(|(metric, files, rows)| MetricCompactAnswer {
                    metric: metric.to_string(),
                    watermark: None,
                    files_written: *files,
                    rows: *rows,
                    duplicates_skipped: 0,
                })
                .collect(),
            retyped_files: 0,
        }
    }

    #[test]
    fn new_files_are_attributed_by_marker_and_checked_against_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let cold = dir.path();
        // A file of an earlier compaction (another tenant) is not new and must be ignored.
        write_file(
            &cold.join("t1/m1/2026/01/01/old.parquet"),
            vec![("velocity", doubles(&[1.0]))],
        );
        let before = parquet_files_under(cold).unwrap();
        write_file(
            &cold.join("t2/m3/2026/01/01/a.parquet"),
            vec![
                ("velocity", doubles(&[1.0, 2.0])),
                ("lat", doubles(&[3.0, 4.0])),
            ],
        );
        write_file(
            &cold.join("t2/m3/2026/01/02/b.parquet"),
            vec![("velocity", doubles(&[5.0])), ("lat", texts(&["x"]))],
        );
        write_file(
            &cold.join("t2/m4/2026/01/01/c.parquet"),
            vec![("current_load", doubles(&[1.0, 2.0, 3.0]))],
        );
        write_file(
            &cold.join("t2/m5/2026/01/01/d.parquet"),
            vec![("single", doubles(&[1.0]))],
        );
        let after = parquet_files_under(cold).unwrap();
        assert_eq!(after.len(), 5);
        let markers = [("readings", "velocity"), ("diagnostics", "current_load")];

        let good = answer(&[("readings", 2, 3), ("diagnostics", 1, 3), ("other", 1, 1)]);
        let set = locate_compacted_files(cold, &before, &after, &good, &markers).unwrap();
        let readings = set.metric("readings").unwrap();
        assert_eq!(readings.directory, "t2/m3");
        assert_eq!(readings.rows, 3);
        assert_eq!(readings.files.len(), 2);
        // Typed in one file, text in the other: text.
        assert_eq!(readings.arrow_types["lat"], DataType::Utf8);
        assert_eq!(readings.arrow_types["velocity"], DataType::Float64);
        assert_eq!(set.metric("diagnostics").unwrap().rows, 3);
        assert_eq!(set.other_files, 1);

        // Row counts that disagree with the server are refused.
        let wrong_rows = answer(&[("readings", 2, 4), ("diagnostics", 1, 3), ("other", 1, 1)]);
        assert!(locate_compacted_files(cold, &before, &after, &wrong_rows, &markers).is_err());
        // So is a file count that does not match (a concurrent compaction).
        let fewer = answer(&[("readings", 2, 3), ("diagnostics", 1, 3)]);
        assert!(locate_compacted_files(cold, &before, &after, &fewer, &markers).is_err());
        // And files of two tenants.
        let none = BTreeSet::new();
        let everything = answer(&[("readings", 3, 4), ("diagnostics", 1, 3), ("other", 1, 1)]);
        assert!(locate_compacted_files(cold, &none, &after, &everything, &markers).is_err());
    }
}
