//! When to try again after the connection drops.
//!
//! Exponential so a down server is not hammered, capped so recovery is noticed within half a minute, and
//! jittered so a hundred tabs that lost the same server do not all reconnect in the same millisecond.

/// First retry delay.
const BASE_MS: f64 = 500.0;
/// Longest delay between attempts.
const MAX_MS: f64 = 30_000.0;
/// A connection that stayed up at least this long counts as healthy: the next failure starts the schedule over.
const HEALTHY_AFTER_MS: f64 = 10_000.0;

/// The retry schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backoff {
    /// Retries made since the last healthy connection.
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt. `up_for_ms` is how long the connection that just closed had been up
    /// (`None` if it never opened); `rand01` is a uniform random number in `[0, 1)`. "Equal jitter": half the
    /// exponential step is fixed, half random, so delays still grow but never line up.
    pub fn next_delay(&mut self, up_for_ms: Option<f64>, rand01: f64) -> f64 {
        if up_for_ms.is_some_and(|up| up >= HEALTHY_AFTER_MS) {
            self.attempt = 0;
        }
        let step = (BASE_MS * 2f64.powi(self.attempt.min(16) as i32)).min(MAX_MS);
        self.attempt = self.attempt.saturating_add(1);
        step / 2.0 + step / 2.0 * rand01.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn grows_exponentially_with_bounded_jitter_and_caps() {
        let mut b = Backoff::default();
        let lows: Vec<f64> = (0..8).map(|_| b.next_delay(None, 0.0)).collect();
        assert_eq!(
            lows,
            vec![250.0, 500.0, 1_000.0, 2_000.0, 4_000.0, 8_000.0, 15_000.0, 15_000.0]
        );
        let mut b = Backoff::default();
        let highs: Vec<f64> = (0..8).map(|_| b.next_delay(None, 1.0)).collect();
        assert_eq!(highs[0], 500.0);
        assert_eq!(highs[7], MAX_MS);
        let mut b = Backoff::default();
        for _ in 0..100 {
            let d = b.next_delay(None, 0.37);
            assert!((BASE_MS / 2.0..=MAX_MS).contains(&d));
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn only_a_healthy_connection_resets_the_schedule() {
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay(None, 0.0);
        }
        // Opened but dropped after 2 s (e.g. a server crashing on start): keep backing off.
        assert_eq!(b.next_delay(Some(2_000.0), 0.0), 8_000.0);
        // Up for a minute: start over.
        assert_eq!(b.next_delay(Some(60_000.0), 0.0), 250.0);
        assert_eq!(b.attempt, 1);
    }
}
