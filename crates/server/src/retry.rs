//! The one retry policy of the server: what every role does while the bus is away.
//!
//! The delays come from backon's exponential backoff (100 ms doubling to 5 s, with jitter so a fleet of
//! bridges and controllers does not reconnect in step). The loop around them stays ours, because the
//! operations retried here borrow the caller's state mutably (a consumer, the join) and must end promptly
//! when the process is asked to stop — a closure-based retry could do neither.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::bus::BusError;

/// Delays between tries of one operation.
pub struct Backoff(ExponentialBackoff);

impl Default for Backoff {
    fn default() -> Self {
        Self(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter()
                .without_max_times()
                .build(),
        )
    }
}

impl Backoff {
    /// Logs what failed, waits for the next delay, and says whether to try again (`false`: a stop came).
    pub async fn wait(
        &mut self,
        what: &str,
        error: &(dyn Display + Sync),
        shutdown: &CancellationToken,
    ) -> bool {
        let delay = self.0.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!("{what}, retrying in {delay:?}: {error}");
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}

/// Runs `attempt` until it succeeds, retrying while the bus is unavailable; `on_failure` sees each failure
/// first. `None` when `shutdown` came first; `Some(Err(Closed))` when the bus was shut down (final).
pub async fn until_stopped<T, Fut>(
    what: &str,
    mut attempt: impl FnMut() -> Fut,
    mut on_failure: impl FnMut(&BusError),
    shutdown: &CancellationToken,
) -> Option<Result<T, BusError>>
where
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut backoff = Backoff::default();
    loop {
        match attempt().await {
            Ok(value) => return Some(Ok(value)),
            Err(BusError::Closed) => return Some(Err(BusError::Closed)),
            Err(e) => {
                on_failure(&e);
                if !backoff.wait(what, &e, shutdown).await {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_bus_answers_and_stops_on_request() {
        let stop = CancellationToken::new();
        let mut tries = 0;
        let got = until_stopped(
            "test",
            || {
                tries += 1;
                let result = if tries < 4 {
                    Err(BusError::Unavailable("away".into()))
                } else {
                    Ok(tries)
                };
                std::future::ready(result)
            },
            |_| {},
            &stop,
        )
        .await;
        assert_eq!(got, Some(Ok(4)));

        let closed: Option<Result<(), _>> = until_stopped(
            "test",
            || std::future::ready(Err(BusError::Closed)),
            |_| {},
            &stop,
        )
        .await;
        assert_eq!(closed, Some(Err(BusError::Closed)));

        stop.cancel();
        let stopped: Option<Result<(), _>> = until_stopped(
            "test",
            || std::future::ready(Err(BusError::Unavailable("away".into()))),
            |_| {},
            &stop,
        )
        .await;
        assert_eq!(stopped, None);
    }
}
