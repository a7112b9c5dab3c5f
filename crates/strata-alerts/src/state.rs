//! The state machine of one alert instance, and which notification each step calls for. Pure:
//! no clock, no storage; `service.rs` persists what it decides.
//!
//! normal → pending (while active, until `for` has passed) → firing → normal once inactive for
//! `keep_firing_for`. A firing instance is notified when it starts firing, then every
//! `repeat_interval` until acknowledged; a resolved notification goes out only for a firing
//! that was notified. A due notification that a silence covers is recorded once as silenced,
//! and sent when the silence ends if the instance still fires.

use strata_catalog::alerting::InstanceRow;

use crate::labels::Labels;
use crate::rule::Timing;

pub(crate) const NORMAL: &str = "normal";
pub(crate) const PENDING: &str = "pending";
pub(crate) const FIRING: &str = "firing";
pub(crate) const NODATA: &str = "nodata";
pub(crate) const ERROR: &str = "error";
pub(crate) const RESOLVED: &str = "resolved";

/// One alert instance in memory: its persisted row plus what was last observed.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub labels: Labels,
    pub row: InstanceRow,
    /// Whether the last observation found the condition true (memory only; after a restart,
    /// pending and firing instances count as active until observed again).
    pub active: bool,
    /// Not yet in the catalog.
    pub new: bool,
}

/// A notification a step calls for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// Covered by a silence: recorded, not sent.
    pub silenced: bool,
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Step {
    pub transition: Option<(String, String)>,
    pub notice: Option<Notice>,
    /// The persisted row changed (beyond its value), so it must be written.
    pub changed: bool,
}

impl Instance {
    pub(crate) fn new(rule_id: i64, labels: Labels, now_ms: i64) -> Instance {
        let row = InstanceRow {
            rule_id,
            labels: crate::labels::to_key(&labels),
            state: NORMAL.to_string(),
            value: None,
            state_since_ms: now_ms,
            active_since_ms: None,
            last_active_ms: None,
            notified_ms: None,
            suppressed: false,
            acknowledged: false,
        };
        Instance {
            labels,
            row,
            active: false,
            new: true,
        }
    }

    /// Records an observation: the condition's truth and the value that came with it.
    pub(crate) fn observe(&mut self, active: bool, value: Option<f64>, now_ms: i64) {
        self.active = active;
        if active {
            self.row.last_active_ms = Some(now_ms);
        }
        if value.is_some() || active {
            self.row.value = value;
        }
    }

    /// Moves the state machine to `now_ms`; `silenced` says whether a silence covers the
    /// instance now.
    pub(crate) fn advance(&mut self, now_ms: i64, timing: &Timing, silenced: bool) -> Step {
        let before = self.row.clone();
        let from = self.row.state.clone();
        let next = self.next_state(now_ms, timing);
        let mut notice = None;
        if next != from {
            self.enter(next, now_ms);
            if from == FIRING && self.row.notified_ms.is_some() && timing.send_resolved {
                notice = Some(Notice {
                    state: RESOLVED,
                    silenced,
                });
            }
            if from == FIRING {
                self.row.notified_ms = None;
                self.row.suppressed = false;
                self.row.acknowledged = false;
            }
        }
        if self.row.state == FIRING && notice.is_none() {
            notice = self.firing_notice(now_ms, timing, silenced);
        }
        let transition = (next != from).then(|| (from, next.to_string()));
        let changed = self.new || transition.is_some() || !same_but_value(&before, &self.row);
        Step {
            transition,
            notice,
            changed,
        }
    }

    fn next_state(&self, now_ms: i64, timing: &Timing) -> &'static str {
        let since_active = self.row.active_since_ms.unwrap_or(now_ms);
        match (self.row.state.as_str(), self.active) {
            (FIRING, true) => FIRING,
            (FIRING, false) => {
                let last = self.row.last_active_ms.unwrap_or(i64::MIN);
                if now_ms.saturating_sub(last) >= timing.keep_firing_for_ms {
                    NORMAL
                } else {
                    FIRING
                }
            }
            (_, true) if now_ms - since_active >= timing.for_ms => FIRING,
            (_, true) => PENDING,
            // Marker states end only through an evaluation with rows (`engine::apply`).
            (NODATA, false) => NODATA,
            (ERROR, false) => ERROR,
            (_, false) => NORMAL,
        }
    }

    fn enter(&mut self, state: &str, now_ms: i64) {
        match state {
            PENDING | FIRING if self.row.active_since_ms.is_none() => {
                self.row.active_since_ms = Some(now_ms)
            }
            NORMAL | NODATA => self.row.active_since_ms = None,
            _ => {}
        }
        self.row.state = state.to_string();
        self.row.state_since_ms = now_ms;
    }

    /// A firing notification is due when this firing was never notified, or the repeat
    /// interval has passed; never while acknowledged.
    fn firing_notice(&mut self, now_ms: i64, timing: &Timing, silenced: bool) -> Option<Notice> {
        if self.row.acknowledged {
            return None;
        }
        let due = match self.row.notified_ms {
            None => true,
            Some(at) => now_ms.saturating_sub(at) >= timing.repeat_interval_ms,
        };
        if !due {
            return None;
        }
        if silenced {
            if self.row.suppressed {
                return None;
            }
            self.row.suppressed = true;
            return Some(Notice {
                state: FIRING,
                silenced: true,
            });
        }
        self.row.notified_ms = Some(now_ms);
        self.row.suppressed = false;
        Some(Notice {
            state: FIRING,
            silenced: false,
        })
    }
}

/// `nodata` and `error`: states of a query rule's rule-level instance, shown but not notified.
pub(crate) fn is_marker(state: &str) -> bool {
    state == NODATA || state == ERROR
}

/// Whether two rows differ only in what is not worth a catalog write on its own.
fn same_but_value(a: &InstanceRow, b: &InstanceRow) -> bool {
    a.state == b.state
        && a.active_since_ms == b.active_since_ms
        && a.notified_ms == b.notified_ms
        && a.suppressed == b.suppressed
        && a.acknowledged == b.acknowledged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(for_ms: i64, keep_ms: i64, repeat_ms: i64) -> Timing {
        Timing {
            for_ms,
            keep_firing_for_ms: keep_ms,
            repeat_interval_ms: repeat_ms,
            group_wait_ms: 0,
            send_resolved: true,
        }
    }

    fn instance() -> Instance {
        let mut instance = Instance::new(1, Labels::new(), 0);
        instance.new = false;
        instance
    }

    fn step(i: &mut Instance, active: bool, now: i64, t: &Timing, silenced: bool) -> Step {
        i.observe(active, Some(1.0), now);
        i.advance(now, t, silenced)
    }

    #[test]
    fn pending_then_firing_then_resolved_notify_exactly_twice() {
        let t = timing(1_000, 0, 3_600_000);
        let mut i = instance();
        let s = step(&mut i, true, 0, &t, false);
        assert_eq!(s.transition, Some((NORMAL.into(), PENDING.into())));
        assert_eq!(s.notice, None);
        assert_eq!(step(&mut i, true, 500, &t, false).transition, None);
        let s = step(&mut i, true, 1_000, &t, false);
        assert_eq!(s.transition, Some((PENDING.into(), FIRING.into())));
        assert_eq!(
            s.notice,
            Some(Notice {
                state: FIRING,
                silenced: false
            })
        );
        assert_eq!(step(&mut i, true, 2_000, &t, false).notice, None);
        let s = step(&mut i, false, 3_000, &t, false);
        assert_eq!(s.transition, Some((FIRING.into(), NORMAL.into())));
        assert_eq!(
            s.notice,
            Some(Notice {
                state: RESOLVED,
                silenced: false
            })
        );
    }

    #[test]
    fn pending_that_clears_sends_nothing() {
        let t = timing(5_000, 0, 3_600_000);
        let mut i = instance();
        step(&mut i, true, 0, &t, false);
        let s = step(&mut i, false, 1_000, &t, false);
        assert_eq!(s.transition, Some((PENDING.into(), NORMAL.into())));
        assert_eq!(s.notice, None);
    }

    #[test]
    fn repeats_every_interval_until_acknowledged() {
        let t = timing(0, 0, 2_000);
        let mut i = instance();
        assert!(step(&mut i, true, 0, &t, false).notice.is_some());
        assert!(step(&mut i, true, 1_000, &t, false).notice.is_none());
        assert!(step(&mut i, true, 2_000, &t, false).notice.is_some());
        i.row.acknowledged = true;
        assert!(step(&mut i, true, 5_000, &t, false).notice.is_none());
        // Resolving ends the acknowledgement.
        assert!(step(&mut i, false, 6_000, &t, false).notice.is_some());
        assert!(!i.row.acknowledged);
    }

    #[test]
    fn a_silenced_firing_is_recorded_once_and_sent_when_the_silence_ends() {
        let t = timing(0, 0, 3_600_000);
        let mut i = instance();
        assert_eq!(
            step(&mut i, true, 0, &t, true).notice,
            Some(Notice {
                state: FIRING,
                silenced: true
            })
        );
        assert_eq!(step(&mut i, true, 1_000, &t, true).notice, None);
        assert_eq!(
            step(&mut i, true, 2_000, &t, false).notice,
            Some(Notice {
                state: FIRING,
                silenced: false
            })
        );
    }

    #[test]
    fn an_unnotified_firing_resolves_silently_and_keep_firing_for_delays_it() {
        let t = timing(0, 2_000, 3_600_000);
        let mut i = instance();
        step(&mut i, true, 0, &t, true);
        assert_eq!(
            step(&mut i, false, 1_000, &t, true).transition,
            None,
            "kept firing"
        );
        let s = step(&mut i, false, 2_000, &t, false);
        assert_eq!(s.transition, Some((FIRING.into(), NORMAL.into())));
        assert_eq!(
            s.notice, None,
            "the firing was silenced, so there is nothing to resolve"
        );
    }
}
