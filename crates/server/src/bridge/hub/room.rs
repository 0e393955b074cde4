//! One room of the bridge's history ([`super::history::History`]): what is kept of it, at the fine or the
//! coarse resolution, and how it is thinned from one to the other.

use std::collections::VecDeque;
use std::mem::size_of;

use setpoint_control::{Decision, Reading};
use setpoint_wire::ws::SetpointChangeEntry;

/// Readings a coarse room keeps over the window (so one per 15 s of a 15-minute window).
pub const COARSE_READINGS: usize = 60;

/// Decisions a coarse room keeps: one per 1/24 of the window (37.5 s of 15 minutes), the newest standing for
/// its stretch; the oldest of them is the heater's state from there on.
pub const COARSE_DECISIONS: usize = 24;

/// What is kept of one room. The readings are kept without the sensor id, which the map holds once: 16 bytes
/// a reading instead of 24.
#[derive(Debug, Default)]
pub(super) struct Room {
    /// The thinned ring of the window.
    pub(super) kept: VecDeque<Reading>,
    /// The newest reading, as of the last flush (thinning may have left it out of the ring).
    pub(super) newest: Option<Reading>,
    /// The decisions of the window, plus the newest one before it (the heater's state where it starts);
    /// the last is the room's last command.
    pub(super) decisions: VecDeque<Decision>,
    /// Each with its number in `History::changes_order`.
    pub(super) changes: VecDeque<(u64, SetpointChangeEntry)>,
    /// Its key in `History::fine_order` while fine; `None` while coarse.
    pub(super) fine: Option<u64>,
}

impl Room {
    /// What the room's readings and decisions take, as allocated.
    pub(super) fn bytes(&self) -> usize {
        self.kept.capacity() * size_of::<Reading>() + self.decisions.capacity() * size_of::<Decision>()
    }

    /// Thins the room to the coarse resolution — readings and decisions at least `reading_spacing_ms` and
    /// `decision_spacing_ms` apart, the newest kept — in allocations of exactly the coarse size.
    pub(super) fn coarsen(&mut self, reading_spacing_ms: i64, decision_spacing_ms: i64) {
        self.kept = thinned(&self.kept, COARSE_READINGS, reading_spacing_ms, |r| r.t_ms);
        self.decisions = thinned(&self.decisions, COARSE_DECISIONS, decision_spacing_ms, |d| d.t_ms);
    }
}

/// The newest of `items` at least `spacing_ms` apart, at most `max`, oldest first, in an allocation of `max`.
fn thinned<T: Copy>(
    items: &VecDeque<T>,
    max: usize,
    spacing_ms: i64,
    t_ms: impl Fn(&T) -> i64,
) -> VecDeque<T> {
    let mut kept: VecDeque<T> = VecDeque::with_capacity(max);
    for item in items.iter().rev() {
        if kept.len() == max {
            break;
        }
        if kept
            .front()
            .is_none_or(|newer| t_ms(newer) - t_ms(item) >= spacing_ms)
        {
            kept.push_front(*item);
        }
    }
    kept
}
