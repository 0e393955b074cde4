//! A bounded, time-ordered history with duplicate-free merging.
//!
//! Why not a plain ring: after a reconnect the server re-sends history (`backfill`) that overlaps what the tab
//! already holds, and live batches may interleave with it. Charts need each `(sensor, t_ms)` point exactly once
//! and in time order, so every insert is a sorted insert that ignores a timestamp already present. The common
//! case — a newer point — is an O(1) append; an older one costs a binary search and a shift.

use std::collections::VecDeque;

use setpoint_control::{Decision, Reading, TimeMs};

/// Anything with an event time; the ring orders and deduplicates by it.
pub trait Timed {
    fn t_ms(&self) -> TimeMs;
}

impl Timed for Reading {
    fn t_ms(&self) -> TimeMs {
        self.t_ms
    }
}

impl Timed for Decision {
    fn t_ms(&self) -> TimeMs {
        self.t_ms
    }
}

/// Time-ordered, deduplicated, bounded by both a point count and a time span behind the newest point — plus
/// the newest point before that span, which says what was in force where the span starts (a heater strip
/// whose window opens between two decisions needs the older one).
#[derive(Clone, Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    span_ms: TimeMs,
}

impl<T: Timed + Copy> Ring<T> {
    /// A ring keeping at most `capacity` points, none older than `span_ms` behind the newest.
    pub fn new(capacity: usize, span_ms: TimeMs) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            span_ms,
        }
    }

    /// Inserts one point at its place in time. Returns `false` when the timestamp is already present (the
    /// first copy wins) or the point is too old to be kept, so callers feed only genuinely new points onward.
    pub fn insert(&mut self, item: T) -> bool {
        let t = item.t_ms();
        let inserted = match self.items.back() {
            None => {
                self.items.push_back(item);
                true
            }
            Some(last) if t > last.t_ms() => {
                self.items.push_back(item);
                true
            }
            Some(_) => match self.items.binary_search_by_key(&t, Timed::t_ms) {
                Ok(_) => false,
                Err(idx) => {
                    if idx == 0 && (self.items.len() >= self.capacity || self.front_beyond_span()) {
                        // Older than everything kept and there is no room (or a point before the span is
                        // already kept, and newer): it would be evicted at once.
                        false
                    } else {
                        self.items.insert(idx, item);
                        true
                    }
                }
            },
        };
        if inserted {
            self.evict();
        }
        inserted
    }

    fn beyond_span(&self, t: TimeMs) -> bool {
        self.items
            .back()
            .is_some_and(|last| last.t_ms().saturating_sub(t) > self.span_ms)
    }

    fn front_beyond_span(&self) -> bool {
        self.items.front().is_some_and(|f| self.beyond_span(f.t_ms()))
    }

    fn evict(&mut self) {
        while self.items.len() > self.capacity {
            self.items.pop_front();
        }
        // Only the newest point before the span stays.
        while self
            .items
            .get(1)
            .is_some_and(|second| self.beyond_span(second.t_ms()))
        {
            self.items.pop_front();
        }
    }

    /// Forgets every point (a new connection's history replaces the old one).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// How many points are kept.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no point is kept.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The newest point.
    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    /// Points with `from <= t <= to`, oldest first.
    pub fn range(&self, from: TimeMs, to: TimeMs) -> impl DoubleEndedIterator<Item = &T> {
        let start = self.items.partition_point(|i| i.t_ms() < from);
        let end = self.items.partition_point(|i| i.t_ms() <= to);
        self.items.range(start..end.max(start))
    }

    /// The newest point strictly before `t` (what was in force when a window starts).
    pub fn before(&self, t: TimeMs) -> Option<&T> {
        let idx = self.items.partition_point(|i| i.t_ms() < t);
        idx.checked_sub(1).and_then(|i| self.items.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: TimeMs, temp: f64) -> Reading {
        Reading {
            t_ms: t,
            temperature: temp,
        }
    }

    /// Inserts every point; returns how many were new.
    fn merge(ring: &mut Ring<Reading>, items: impl IntoIterator<Item = Reading>) -> usize {
        items.into_iter().map(|i| usize::from(ring.insert(i))).sum()
    }

    fn times(ring: &Ring<Reading>) -> Vec<TimeMs> {
        ring.items.iter().map(|x| x.t_ms).collect()
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn appends_in_order_and_drops_duplicates() {
        let mut ring = Ring::new(100, 60_000);
        assert!(ring.insert(r(1, 20.0)));
        assert!(ring.insert(r(2, 20.1)));
        assert!(!ring.insert(r(2, 99.0)), "same timestamp is a duplicate");
        assert_eq!(times(&ring), vec![1, 2]);
        assert_eq!(ring.last().map(|x| x.temperature), Some(20.1), "first copy wins");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn overlapping_backfill_merges_without_duplicates_or_gaps() {
        let mut ring = Ring::new(100, 60_000);
        // Live points the tab already had, with a gap (6..=8 were lost while disconnected).
        merge(&mut ring, [1, 2, 3, 4, 5, 9, 10].map(|t| r(t, t as f64)));
        // Backfill re-sends 3..=10, out of order for good measure.
        let new = merge(&mut ring, [10, 3, 4, 5, 6, 7, 8, 9].map(|t| r(t, t as f64)));
        assert_eq!(new, 3, "only the gap is new");
        assert_eq!(times(&ring), (1..=10).collect::<Vec<_>>());
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn bounded_by_capacity_and_span() {
        let mut ring = Ring::new(5, 1_000);
        merge(&mut ring, (0..10).map(|t| r(t, 0.0)));
        assert_eq!(times(&ring), vec![5, 6, 7, 8, 9]);
        assert!(!ring.insert(r(1, 0.0)), "older than everything in a full ring");
        ring.insert(r(2_000, 0.0));
        assert_eq!(
            times(&ring),
            vec![9, 2_000],
            "points more than span behind the newest go, except the newest of them"
        );
        assert!(
            !ring.insert(r(8, 0.0)),
            "beyond the span and older than the point kept there: refused"
        );
        assert!(
            ring.insert(r(500, 0.0)),
            "a newer point before the span replaces it"
        );
        assert_eq!(times(&ring), vec![500, 2_000]);
        ring.insert(r(3_500, 0.0));
        assert_eq!(times(&ring), vec![2_000, 3_500]);
        let mut ring = Ring::new(5, 1_000);
        ring.insert(r(5_000, 0.0));
        assert!(
            ring.insert(r(1_000, 0.0)),
            "what was in force before the span is kept"
        );
        assert!(!ring.insert(r(500, 0.0)), "but only the newest such point");
        assert_eq!(times(&ring), vec![1_000, 5_000]);
        assert_eq!(ring.before(4_000).map(|x| x.t_ms), Some(1_000));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn range_and_before() {
        let mut ring = Ring::new(100, 60_000);
        merge(&mut ring, [10, 20, 30, 40].map(|t| r(t, 0.0)));
        let got: Vec<_> = ring.range(15, 30).map(|x| x.t_ms).collect();
        assert_eq!(got, vec![20, 30]);
        assert_eq!(ring.range(41, 50).count(), 0);
        assert_eq!(ring.before(20).map(|x| x.t_ms), Some(10));
        assert_eq!(ring.before(10), None);
    }
}
