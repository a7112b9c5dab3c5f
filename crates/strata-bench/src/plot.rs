//! PNG plots of benchmark results (issue 7: latency distributions and ingest rate over time).
//!
//! Drawn with `plotters` on its bitmap backend. Text is rendered by `ab_glyph` with a font
//! embedded in the binary (DejaVu Sans, `assets/`), so plotting needs no fontconfig or
//! freetype on the machine and looks the same everywhere.
//!
//! Two kinds of plot:
//! - [`latency_cdf`]: the empirical distribution of one or more latency series (share of
//!   requests answered within x ms), with p50 and p99 marked; the x axis turns logarithmic when
//!   the samples span more than a factor of 20 (hot against cold queries).
//! - [`rate_over_time`]: acknowledged events per second of an ingest run, with its mean.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, RateSample};
use crate::BenchError;

/// The embedded font (DejaVu Sans 2.37; licence in `assets/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// plotters asks for this family for every label it draws by default.
const FONT_FAMILY: &str = "sans-serif";
/// Size of every plot in pixels.
pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 600;
/// Above this ratio between the largest and the smallest sample the x axis is logarithmic.
const LOG_SCALE_SPAN: f64 = 20.0;
/// Series colours (Tableau 10): distinct, and all readable on white, unlike plotters'
/// default palette, whose third colour is yellow.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
/// Room a percentile label needs to the right of its line, in pixels.
const LABEL_ROOM: i32 = 110;

fn color(index: usize) -> RGBAColor {
    PALETTE[index % PALETTE.len()].to_rgba()
}

/// A plot that was written: what it shows and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlotFile {
    pub title: String,
    pub path: PathBuf,
}

/// Reports that draw their own figures.
pub trait Plots {
    /// Writes this report's plots to `dir` as `PREFIX-*.png` (PREFIX names the scenario, or
    /// the step of a command, such as `recent-load`). Plots without data are left out.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError>;
}

/// One latency distribution to draw.
#[derive(Debug, Clone, Copy)]
pub struct LatencySeries<'a> {
    pub label: &'a str,
    /// Samples in milliseconds, in any order.
    pub samples_ms: &'a [f64],
}

impl<'a> LatencySeries<'a> {
    /// The samples a [`LatencySummary`] kept.
    pub fn from_summary(label: &'a str, summary: &'a LatencySummary) -> LatencySeries<'a> {
        LatencySeries {
            label,
            samples_ms: &summary.sorted_ms,
        }
    }
}

fn plot_error(error: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(error.to_string())
}

/// Registers the embedded font with plotters once per process.
fn ensure_font() -> Result<(), BenchError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered =
        *REGISTERED.get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok());
    if registered {
        Ok(())
    } else {
        Err(BenchError::Plot(
            "the embedded font could not be parsed".to_string(),
        ))
    }
}

/// `DIR/NAME.png`, creating DIR when missing.
pub fn plot_path(dir: &Path, name: &str) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(dir)?;
    Ok(dir.join(format!("{name}.png")))
}

/// A series ready to draw: sorted finite samples and their percentiles.
struct Prepared<'a> {
    label: &'a str,
    sorted: Vec<f64>,
    p50: f64,
    p99: f64,
}

/// Writes the empirical CDF of each series to `path` (PNG). Series without samples are left
/// out; it is an error when none has any.
pub fn latency_cdf(
    path: &Path,
    title: &str,
    series: &[LatencySeries<'_>],
) -> Result<(), BenchError> {
    let mut prepared = Vec::new();
    for one in series {
        let mut sorted: Vec<f64> = one
            .samples_ms
            .iter()
            .copied()
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .collect();
        if sorted.is_empty() {
            continue;
        }
        sorted.sort_by(f64::total_cmp);
        let (Some(p50), Some(p99)) = (
            crate::stats::percentile(&sorted, 50.0),
            crate::stats::percentile(&sorted, 99.0),
        ) else {
            continue;
        };
        prepared.push(Prepared {
            label: one.label,
            sorted,
            p50,
            p99,
        });
    }
    if prepared.is_empty() {
        return Err(BenchError::Plot(format!("{title}: no samples to plot")));
    }
    let low = prepared
        .iter()
        .map(|p| p.sorted[0])
        .fold(f64::INFINITY, f64::min);
    let high = prepared
        .iter()
        .map(|p| p.sorted[p.sorted.len() - 1])
        .fold(0.0, f64::max);

    ensure_font()?;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    if low > 0.0 && high / low > LOG_SCALE_SPAN {
        // Whole decades, so the axis has labelled powers of ten at both ends.
        let start = 10f64.powf(low.log10().floor());
        let end = 10f64.powf(high.log10().ceil());
        draw_cdf(
            &root,
            title,
            (start..end).log_scale(),
            "latency, ms (log scale)",
            &prepared,
        )?;
    } else {
        let end = if high > 0.0 { high * 1.05 } else { 1.0 };
        draw_cdf(&root, title, 0f64..end, "latency, ms", &prepared)?;
    }
    root.present().map_err(plot_error)
}

fn draw_cdf<X>(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_axis: X,
    x_desc: &str,
    series: &[Prepared<'_>],
) -> Result<(), BenchError>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_axis, 0f64..100f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("% of requests at or below")
        .x_labels(12)
        .y_labels(11)
        .x_label_formatter(&|value| axis_number(*value))
        .y_label_formatter(&|value| format!("{value:.0}"))
        .draw()
        .map_err(plot_error)?;

    for (index, one) in series.iter().enumerate() {
        let color = color(index);
        let count = one.sorted.len() as f64;
        // A step function: at each sample the share jumps by 1/n.
        let mut points = Vec::with_capacity(2 * one.sorted.len());
        for (rank, value) in one.sorted.iter().enumerate() {
            points.push((*value, 100.0 * rank as f64 / count));
            points.push((*value, 100.0 * (rank + 1) as f64 / count));
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!(
                "{}: p50 {:.3} ms, p99 {:.3} ms (n = {})",
                one.label,
                one.p50,
                one.p99,
                one.sorted.len()
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.filled()));
        for (name, value) in [("p50", one.p50), ("p99", one.p99)] {
            mark_percentile(&mut chart, value, name, color, index)?;
        }
    }
    // A CDF rises from the lower left to the upper right: the upper left stays empty.
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT_FAMILY, 15))
        .draw()
        .map_err(plot_error)
}

/// An axis label without trailing zeros: 0.5, 2.25, 10, 1000.
fn axis_number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A dashed vertical line at a percentile, labelled near the top; labels of later series sit
/// lower so they do not overlap.
fn mark_percentile<X>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, RangedCoordf64>>,
    value: f64,
    name: &str,
    color: RGBAColor,
    series_index: usize,
) -> Result<(), BenchError>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .draw_series(DashedLineSeries::new(
            [(value, 0.0), (value, 100.0)],
            6,
            4,
            color.stroke_width(1),
        ))
        .map_err(plot_error)?;
    let y = (if name == "p50" { 12.0 } else { 4.0 } + 16.0 * series_index as f64).min(96.0);
    // Right of the line, unless that runs off the plot: then left of it.
    let right_edge = chart.plotting_area().get_pixel_range().0.end;
    let fits_right = chart.backend_coord(&(value, y)).0 + LABEL_ROOM < right_edge;
    let (text, anchor) = if fits_right {
        (format!(" {name} {value:.3}"), HPos::Left)
    } else {
        (format!("{name} {value:.3} "), HPos::Right)
    };
    let style = (FONT_FAMILY, 13)
        .into_font()
        .color(&color)
        .pos(Pos::new(anchor, VPos::Center));
    chart
        .draw_series(std::iter::once(Text::new(text, (value, y), style)))
        .map_err(plot_error)?;
    Ok(())
}

/// Writes acknowledged events per second over an ingest run to `path` (PNG), with a dashed
/// line at `mean_per_s` (the run's events/s: acknowledged events over the sending time).
pub fn rate_over_time(
    path: &Path,
    title: &str,
    rate: &[RateSample],
    mean_per_s: f64,
) -> Result<(), BenchError> {
    let Some(last) = rate.last() else {
        return Err(BenchError::Plot(format!(
            "{title}: no rate samples to plot"
        )));
    };
    let peak = rate.iter().map(|sample| sample.events).max().unwrap_or(0) as f64;
    let y_end = peak.max(mean_per_s).max(1.0) * 1.1;
    let x_end = (last.second + 1) as f64;

    ensure_font()?;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..x_end, 0f64..y_end)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds of sending (generation pauses excluded)")
        .y_desc("events acknowledged per second")
        .x_labels(12)
        .y_labels(10)
        .x_label_formatter(&|value| axis_number(*value))
        .y_label_formatter(&|value| format!("{value:.0}"))
        .draw()
        .map_err(plot_error)?;

    let rate_color = color(0);
    // Each sample covers one whole second: draw it as a flat step across that second.
    let mut points = Vec::with_capacity(2 * rate.len());
    for sample in rate {
        let events = sample.events as f64;
        points.push((sample.second as f64, events));
        points.push(((sample.second + 1) as f64, events));
    }
    chart
        .draw_series(LineSeries::new(points, rate_color.stroke_width(2)))
        .map_err(plot_error)?
        .label(format!("events/s in each second ({} seconds)", rate.len()))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], rate_color.filled()));
    let mean_color = color(1);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, mean_per_s), (x_end, mean_per_s)],
            8,
            5,
            mean_color.stroke_width(2),
        ))
        .map_err(plot_error)?
        .label(format!("whole run: {mean_per_s:.0} events/s"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], mean_color.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT_FAMILY, 15))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

/// Writes a latency CDF to `DIR/NAME.png` and says what it shows.
pub fn write_latency_plot(
    dir: &Path,
    name: &str,
    title: &str,
    series: &[LatencySeries<'_>],
) -> Result<PlotFile, BenchError> {
    let path = plot_path(dir, name)?;
    latency_cdf(&path, title, series)?;
    Ok(PlotFile {
        title: title.to_string(),
        path,
    })
}

/// [`write_latency_plot`], or nothing when no series has a sample (a scenario that failed
/// before measuring).
pub fn write_latency_plot_if_any(
    dir: &Path,
    name: &str,
    title: &str,
    series: &[LatencySeries<'_>],
) -> Result<Option<PlotFile>, BenchError> {
    if series.iter().all(|one| one.samples_ms.is_empty()) {
        return Ok(None);
    }
    write_latency_plot(dir, name, title, series).map(Some)
}

/// Writes an ingest rate plot to `DIR/NAME.png` and says what it shows.
pub fn write_rate_plot(
    dir: &Path,
    name: &str,
    title: &str,
    rate: &[RateSample],
    mean_per_s: f64,
) -> Result<PlotFile, BenchError> {
    let path = plot_path(dir, name)?;
    rate_over_time(&path, title, rate, mean_per_s)?;
    Ok(PlotFile {
        title: title.to_string(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    /// A PNG of the plot size with more in it than a blank canvas.
    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes[..8], PNG_MAGIC, "{} is not a PNG", path.display());
        // IHDR is the first chunk: width and height, big-endian, at bytes 16..24.
        assert_eq!(&bytes[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), WIDTH);
        assert_eq!(
            u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
            HEIGHT
        );
        // A blank 1000x600 canvas compresses to a few KiB; axes, text and curves do not.
        assert!(
            bytes.len() > 15_000,
            "{} is only {} bytes",
            path.display(),
            bytes.len()
        );
    }

    #[test]
    fn latency_plot_is_a_png_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let fast: Vec<f64> = (0..200).map(|i| 2.0 + f64::from(i % 37) / 10.0).collect();
        let slow: Vec<f64> = (0..50).map(|i| 3.0 + f64::from(i) / 7.0).collect();
        let file = write_latency_plot(
            dir.path(),
            "recent-latency",
            "recent: one device, last hour",
            &[
                LatencySeries {
                    label: "fast",
                    samples_ms: &fast,
                },
                LatencySeries {
                    label: "slow",
                    samples_ms: &slow,
                },
                // Empty series are skipped, not an error.
                LatencySeries {
                    label: "none",
                    samples_ms: &[],
                },
            ],
        )
        .unwrap();
        assert_eq!(file.path, dir.path().join("recent-latency.png"));
        assert_png(&file.path);
    }

    #[test]
    fn wide_latency_spread_uses_a_log_axis_and_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        let hot: Vec<f64> = (0..10).map(|i| 1000.0 + f64::from(i) * 13.0).collect();
        let cold: Vec<f64> = (0..10).map(|i| 40.0 + f64::from(i)).collect();
        let file = write_latency_plot(
            dir.path().join("nested").as_path(),
            "compaction-latency",
            "hot vs cold",
            &[
                LatencySeries {
                    label: "hot",
                    samples_ms: &hot,
                },
                LatencySeries {
                    label: "cold",
                    samples_ms: &cold,
                },
            ],
        )
        .unwrap();
        assert_png(&file.path);
    }

    #[test]
    fn rate_plot_is_a_png_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let rate: Vec<RateSample> = (0..120)
            .map(|second| RateSample {
                second,
                events: 100_000 + (second * 7919) % 40_000,
            })
            .collect();
        let file = write_rate_plot(dir.path(), "ingest-rate", "ingest", &rate, 118_000.0).unwrap();
        assert_png(&file.path);
    }

    #[test]
    fn axis_numbers_drop_trailing_zeros() {
        assert_eq!(axis_number(10.0), "10");
        assert_eq!(axis_number(0.5), "0.5");
        assert_eq!(axis_number(2.25), "2.25");
        assert_eq!(axis_number(1000.0), "1000");
        assert_eq!(axis_number(0.0), "0");
    }

    #[test]
    fn nothing_to_plot_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_latency_plot(
            dir.path(),
            "empty",
            "empty",
            &[LatencySeries {
                label: "x",
                samples_ms: &[f64::NAN],
            }],
        )
        .unwrap_err();
        assert!(error.to_string().contains("no samples"), "{error}");
        assert!(write_rate_plot(dir.path(), "rate", "rate", &[], 0.0).is_err());
        assert!(!dir.path().join("empty.png").exists());
    }
}
