//! Percentiles and latency summaries. Nearest-rank percentiles: every reported figure is a
//! latency that was actually observed, never an interpolation between two samples.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `p`-th percentile (0..=100) of `sorted` by the nearest-rank method, or `None` when
/// there is nothing to rank or `p` is out of range. `sorted` must be in ascending order.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    debug_assert!(sorted.windows(2).all(|pair| pair[0] <= pair[1]));
    // Rank ceil(p/100 * n), 1-based; p = 0 means the smallest sample.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index])
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub samples: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Every sample in ascending order, for the distribution plots ([`crate::plot`]). Not in
    /// the JSON report: an ingest run has one per write request (tens of thousands in a long
    /// run), and the percentiles above are what a reader compares.
    #[serde(skip)]
    pub sorted_ms: Vec<f64>,
}

impl LatencySummary {
    /// Summarizes durations; `None` when there are none.
    pub fn from_durations(durations: &[Duration]) -> Option<LatencySummary> {
        let millis: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        LatencySummary::from_millis(millis)
    }

    /// Summarizes latencies given in milliseconds; `None` when there are none or any is NaN.
    pub fn from_millis(mut millis: Vec<f64>) -> Option<LatencySummary> {
        if millis.is_empty() || millis.iter().any(|m| m.is_nan()) {
            return None;
        }
        millis.sort_by(f64::total_cmp);
        let sum: f64 = millis.iter().sum();
        Some(LatencySummary {
            samples: millis.len(),
            min_ms: millis[0],
            p50_ms: percentile(&millis, 50.0)?,
            p90_ms: percentile(&millis, 90.0)?,
            p99_ms: percentile(&millis, 99.0)?,
            max_ms: millis[millis.len() - 1],
            mean_ms: sum / millis.len() as f64,
            sorted_ms: millis,
        })
    }
}

/// Events acknowledged during one whole second of a run (second 0 starts with the run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSample {
    pub second: u64,
    pub events: u64,
}

/// Buckets (offset since start, events) acknowledgements into per-second rates, with a zero
/// sample for every silent second so a plot shows stalls.
pub fn rate_per_second(acks: &[(Duration, u64)]) -> Vec<RateSample> {
    let Some(last) = acks.iter().map(|(offset, _)| offset.as_secs()).max() else {
        return Vec::new();
    };
    let mut series: Vec<RateSample> = (0..=last)
        .map(|second| RateSample { second, events: 0 })
        .collect();
    for (offset, events) in acks {
        // offset.as_secs() <= last by construction.
        series[offset.as_secs() as usize].events += events;
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let one_to_hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&one_to_hundred, 50.0), Some(50.0));
        assert_eq!(percentile(&one_to_hundred, 99.0), Some(99.0));
        assert_eq!(percentile(&one_to_hundred, 99.5), Some(100.0));
        assert_eq!(percentile(&one_to_hundred, 100.0), Some(100.0));
        assert_eq!(percentile(&one_to_hundred, 0.0), Some(1.0));
        assert_eq!(percentile(&one_to_hundred, 1.0), Some(1.0));
        assert_eq!(percentile(&one_to_hundred, 1.5), Some(2.0));

        let five = [10.0, 20.0, 30.0, 40.0, 50.0];
        // rank ceil(0.5 * 5) = 3
        assert_eq!(percentile(&five, 50.0), Some(30.0));
        // rank ceil(0.99 * 5) = 5
        assert_eq!(percentile(&five, 99.0), Some(50.0));
        // rank ceil(0.2 * 5) = 1, ceil(0.21 * 5) = 2
        assert_eq!(percentile(&five, 20.0), Some(10.0));
        assert_eq!(percentile(&five, 21.0), Some(20.0));

        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&five, 101.0), None);
        assert_eq!(percentile(&five, -1.0), None);
        assert_eq!(percentile(&five, f64::NAN), None);
    }

    #[test]
    fn summary_sorts_and_reports_observed_values() {
        let summary = LatencySummary::from_millis(vec![5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!(summary.samples, 5);
        assert_eq!(summary.min_ms, 1.0);
        assert_eq!(summary.p50_ms, 3.0);
        assert_eq!(summary.p90_ms, 5.0);
        assert_eq!(summary.p99_ms, 5.0);
        assert_eq!(summary.max_ms, 5.0);
        assert_eq!(summary.mean_ms, 3.0);
        // The samples are kept, sorted, for plots, but stay out of the JSON report.
        assert_eq!(summary.sorted_ms, [1.0, 2.0, 3.0, 4.0, 5.0]);
        let json = serde_json::to_value(&summary).unwrap();
        assert!(json.get("sorted_ms").is_none(), "{json}");
        let back: LatencySummary = serde_json::from_value(json).unwrap();
        assert!(back.sorted_ms.is_empty());
        assert_eq!(back.p99_ms, 5.0);

        let from_durations = LatencySummary::from_durations(&[
            Duration::from_micros(1500),
            Duration::from_millis(3),
        ])
        .unwrap();
        assert_eq!(from_durations.p50_ms, 1.5);
        assert_eq!(from_durations.max_ms, 3.0);

        assert!(LatencySummary::from_millis(Vec::new()).is_none());
        assert!(LatencySummary::from_millis(vec![1.0, f64::NAN]).is_none());
    }

    #[test]
    fn rate_series_fills_silent_seconds() {
        let acks = [
            (Duration::from_millis(100), 10),
            (Duration::from_millis(900), 5),
            (Duration::from_millis(2500), 7),
        ];
        assert_eq!(
            rate_per_second(&acks),
            vec![
                RateSample {
                    second: 0,
                    events: 15
                },
                RateSample {
                    second: 1,
                    events: 0
                },
                RateSample {
                    second: 2,
                    events: 7
                },
            ]
        );
        assert!(rate_per_second(&[]).is_empty());
    }
}
