//! Exponential backoff between a source's connection attempts: doubling from a floor to a cap,
//! with jitter so sources that failed together do not reconnect together.

use std::time::Duration;

/// The first wait after a failure.
pub const BACKOFF_FLOOR: Duration = Duration::from_millis(100);
/// The longest wait: a broker back after an outage is found within this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Backoff {
    floor: Duration,
    cap: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BACKOFF_FLOOR, BACKOFF_CAP)
    }
}

impl Backoff {
    pub fn new(floor: Duration, cap: Duration) -> Self {
        Backoff {
            floor,
            cap: cap.max(floor),
            next: floor,
        }
    }

    /// The wait before the next attempt: the current step plus up to a quarter of it at
    /// random, never above the cap; the step then doubles.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.cap);
        let jitter_ms = u64::try_from(step.as_millis() / 4).unwrap_or(0);
        let jitter = Duration::from_millis(rand::random_range(0..=jitter_ms));
        (step + jitter).min(self.cap)
    }

    /// After a connection that worked: the next failure waits the floor again.
    pub fn reset(&mut self) {
        self.next = self.floor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_to_the_floor() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let first = backoff.next_wait();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        let second = backoff.next_wait();
        assert!(second >= Duration::from_millis(200) && second <= Duration::from_millis(250));
        for _ in 0..20 {
            assert!(backoff.next_wait() <= Duration::from_secs(30));
        }
        assert_eq!(backoff.next_wait(), Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_millis(125));
    }
}
