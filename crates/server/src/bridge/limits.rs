//! Rate limits on what clients ask of the bridge, per token and per client address.
//!
//! A limit kept per connection is multiplied by opening more connections, so every budget here is keyed by
//! who asks: setpoint writes by the token's name *and* by the client's address (one stolen token cannot
//! flood from many machines, many tokens cannot flood from one), and read-heavy requests (change
//! histories, whole-table listings), which need no token, by address. The WebSocket and the HTTP API draw
//! on the same budgets.
//!
//! Sans-IO like the other cores: the caller passes the time, so tests step it instead of sleeping.
//!
//! Hand-written rather than `governor`: a token bucket is a dozen lines, and what matters here is the
//! bounded key map (an attacker with many addresses must not grow it without end), which is as much code
//! with the library as without.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most keys a limiter tracks. Past it, the key with the fullest bucket (the longest idle) is forgotten;
/// a forgotten key starts again with a full burst, which is the same as having been idle.
pub const MAX_TRACKED_KEYS: usize = 10_000;

/// A token bucket: `burst` at once, then `per_second`.
#[derive(Clone, Debug)]
pub struct RateLimit {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        Self {
            capacity: burst,
            per_second,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// Takes one token if available at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One budget per key, at most [`MAX_TRACKED_KEYS`] keys.
pub struct Keyed<K> {
    buckets: Mutex<HashMap<K, RateLimit>>,
    per_second: f64,
    burst: f64,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            per_second,
            burst,
        }
    }

    /// Takes one token from `key`'s bucket if it has one at `now`.
    pub fn allow(&self, key: &K, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= MAX_TRACKED_KEYS {
            let idlest = buckets
                .iter_mut()
                .map(|(k, b)| {
                    b.refill(now);
                    (k.clone(), b.tokens)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k);
            if let Some(k) = idlest {
                buckets.remove(&k);
            }
        }
        buckets
            .entry(key.clone())
            .or_insert_with(|| RateLimit::new(self.per_second, self.burst, now))
            .allow(now)
    }
}

/// The address a budget is kept for: IPv4 addresses whole, IPv6 by their /64 (one customer's network:
/// a single host can hold a whole /64, so keying by full address would give it 2^64 budgets).
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The token's write budget is spent.
    TokenWrites,
    /// The client address's write budget is spent.
    PeerWrites,
    /// The client address's budget for read-heavy requests is spent.
    PeerReads,
    /// The client address's budget for attempts with a missing or wrong token is spent.
    PeerGuesses,
    /// The client address's budget for WebSocket upgrades is spent.
    PeerUpgrades,
    /// The client address's budget for `view` and `subscribe` requests is spent.
    PeerViews,
}

impl Refusal {
    /// The reason label of `setpoint_rate_limited_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::TokenWrites => "token_writes",
            Refusal::PeerWrites => "peer_writes",
            Refusal::PeerReads => "peer_reads",
            Refusal::PeerGuesses => "peer_guesses",
            Refusal::PeerUpgrades => "peer_upgrades",
            Refusal::PeerViews => "peer_views",
        }
    }

    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::TokenWrites => "too many setpoint writes with this token; wait a moment",
            Refusal::PeerWrites => "too many setpoint writes from this address; wait a moment",
            Refusal::PeerReads => "too many history or listing requests from this address; wait a moment",
            Refusal::PeerGuesses => {
                "too many attempts without a valid token from this address; wait a moment"
            }
            Refusal::PeerUpgrades => "too many WebSocket connections opened from this address; wait a moment",
            Refusal::PeerViews => "too many view changes from this address; wait a moment",
        }
    }
}

/// Every client budget of one bridge.
pub struct ClientLimits {
    writes_by_token: Keyed<String>,
    writes_by_peer: Keyed<IpAddr>,
    reads_by_peer: Keyed<IpAddr>,
    /// Apart from the writes: failed attempts must not spend the budget of the address's real writers.
    guesses_by_peer: Keyed<IpAddr>,
    /// WebSocket upgrades (each costs a `hello` and a backfill): [`UPGRADES_PER_READ`] times the read
    /// budget, so a building's dashboards behind one address reconnecting after a restart all get in.
    upgrades_by_peer: Keyed<IpAddr>,
    /// `view` and `subscribe` requests (each a scan of the rooms and the history of a page): as many as
    /// upgrades, which is what a page did on every connection before it chose its rooms.
    views_by_peer: Keyed<IpAddr>,
}

/// How many WebSocket upgrades an address may make for each read-heavy request it may make.
pub const UPGRADES_PER_READ: f64 = 10.0;

impl ClientLimits {
    /// `writes` per second (and `write_burst`) per token and per address; `reads` (and `read_burst`) of
    /// read-heavy requests per address.
    pub fn new(writes: f64, write_burst: f64, reads: f64, read_burst: f64) -> Self {
        Self {
            writes_by_token: Keyed::new(writes, write_burst),
            writes_by_peer: Keyed::new(writes, write_burst),
            reads_by_peer: Keyed::new(reads, read_burst),
            guesses_by_peer: Keyed::new(writes, write_burst),
            upgrades_by_peer: Keyed::new(reads * UPGRADES_PER_READ, read_burst * UPGRADES_PER_READ),
            views_by_peer: Keyed::new(reads * UPGRADES_PER_READ, read_burst * UPGRADES_PER_READ),
        }
    }

    /// One write (or one group of writes) by `token` from `peer` at `now`.
    pub fn write(&self, token: &str, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.writes_by_peer.allow(&peer_key(peer), now) {
            return Err(Refusal::PeerWrites);
        }
        if !self.writes_by_token.allow(&token.to_owned(), now) {
            return Err(Refusal::TokenWrites);
        }
        Ok(())
    }

    /// One attempt with a missing or wrong token (a write, or a WebSocket offering a token): charged to
    /// the address's own budget, so guessing tokens is limited as writing is, without spending what the
    /// address's real writers have.
    pub fn guess(&self, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.guesses_by_peer.allow(&peer_key(peer), now) {
            Ok(())
        } else {
            Err(Refusal::PeerGuesses)
        }
    }

    /// One WebSocket upgrade from `peer` at `now`.
    pub fn upgrade(&self, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.upgrades_by_peer.allow(&peer_key(peer), now) {
            Ok(())
        } else {
            Err(Refusal::PeerUpgrades)
        }
    }

    /// One `view` or `subscribe` from `peer` at `now`.
    pub fn view(&self, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.views_by_peer.allow(&peer_key(peer), now) {
            Ok(())
        } else {
            Err(Refusal::PeerViews)
        }
    }

    /// One read-heavy request from `peer` at `now`.
    pub fn read(&self, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.reads_by_peer.allow(&peer_key(peer), now) {
            Ok(())
        } else {
            Err(Refusal::PeerReads)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn rate_limit_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(2.0, 3.0, t0);
        assert!(r.allow(t0) && r.allow(t0) && r.allow(t0));
        assert!(!r.allow(t0));
        assert!(!r.allow(t0 + Duration::from_millis(400)), "0.8 of a token");
        assert!(r.allow(t0 + Duration::from_millis(500)));
        // Idle for long: back to the burst, not beyond it.
        let later = t0 + Duration::from_secs(3600);
        assert!(r.allow(later) && r.allow(later) && r.allow(later));
        assert!(!r.allow(later));
    }

    #[test]
    fn budgets_are_per_key_and_the_key_map_stays_bounded() {
        let now = Instant::now();
        let limits = Keyed::new(0.0, 1.0);
        assert!(limits.allow(&1u32, now));
        assert!(!limits.allow(&1u32, now));
        assert!(limits.allow(&2u32, now), "another key has its own budget");
        for k in 3..(MAX_TRACKED_KEYS as u32 + 500) {
            limits.allow(&k, now);
        }
        assert!(limits.buckets.lock().expect("lock").len() <= MAX_TRACKED_KEYS);
    }

    #[test]
    fn a_write_is_charged_to_the_token_and_to_the_address() {
        let now = Instant::now();
        let limits = ClientLimits::new(0.0, 2.0, 0.0, 1.0);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(limits.write("alice", a, now), Ok(()));
        assert_eq!(limits.write("bob", a, now), Ok(()));
        // The address is spent, whichever token it uses.
        assert_eq!(limits.write("carol", a, now), Err(Refusal::PeerWrites));
        assert_eq!(limits.write("alice", b, now), Ok(()));
        // alice is spent, from wherever.
        assert_eq!(limits.write("alice", b, now), Err(Refusal::TokenWrites));
        assert_eq!(limits.read(a, now), Ok(()));
        assert_eq!(limits.read(a, now), Err(Refusal::PeerReads));
        // Guesses have their own budget: spending it leaves the writers' alone.
        let c: IpAddr = "10.0.0.3".parse().expect("ip");
        assert_eq!(limits.guess(c, now), Ok(()));
        assert_eq!(limits.guess(c, now), Ok(()));
        assert_eq!(limits.guess(c, now), Err(Refusal::PeerGuesses));
        assert_eq!(limits.write("dave", c, now), Ok(()));
    }

    #[test]
    fn an_ipv6_network_shares_one_budget() {
        let one: IpAddr = "2001:db8::1".parse().expect("ip");
        let other: IpAddr = "2001:db8::ffff:1".parse().expect("ip");
        let elsewhere: IpAddr = "2001:db8:0:1::1".parse().expect("ip");
        assert_eq!(peer_key(one), peer_key(other));
        assert_ne!(peer_key(one), peer_key(elsewhere));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(peer_key(mapped), "10.0.0.1".parse::<IpAddr>().expect("ip"));
    }
}
