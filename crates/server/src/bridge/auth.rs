//! Who may write, and which pages may connect.
//!
//! Reading is open to anyone who can reach the port; writing needs the token printed at start. Browsers
//! cannot set headers on a WebSocket, so the token travels as a subprotocol (`token.<hex>`) next to the
//! protocol name (`setpoint.v1`): it stays out of URLs, and so out of proxy logs and browser history.

use std::net::SocketAddr;
use std::time::Instant;

pub use setpoint_wire::ws::{SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX as TOKEN_PREFIX};

/// The write token. Its `Debug` hides the value so it cannot end up in a log line by accident.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A fresh 128-bit random token, hex encoded (URL- and subprotocol-safe).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token chosen by the operator. Must be a valid subprotocol token character string.
    pub fn from_operator(value: &str) -> Result<Self, String> {
        let ok = value.len() >= 16
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err("the token must be at least 16 characters of A-Z, a-z, 0-9, '-' or '_'".into())
        }
    }

    /// The secret itself, for the URL printed at start.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is, so the token cannot be guessed
    /// byte by byte from response times.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        std::hint::black_box(diff) == 0
    }
}

/// What the `Sec-WebSocket-Protocol` header offered.
#[derive(Debug, Default, PartialEq)]
pub struct Offered<'a> {
    pub protocol: bool,
    pub token: Option<&'a str>,
}

/// Parses the comma-separated subprotocol list.
pub fn parse_subprotocols(header: Option<&str>) -> Offered<'_> {
    let mut offered = Offered::default();
    for item in header.unwrap_or("").split(',').map(str::trim) {
        if item == SUBPROTOCOL {
            offered.protocol = true;
        } else if let Some(t) = item.strip_prefix(TOKEN_PREFIX) {
            offered.token = Some(t);
        }
    }
    offered
}

/// Decides whether a WebSocket upgrade's `Origin` may connect: the server's own origins (as reached on
/// loopback or the listen address) and any the operator allowed. This is what stops another site open in
/// the same browser from driving the heaters (cross-site WebSocket hijacking). Checking against fixed
/// origins rather than the request's `Host` header also defeats DNS rebinding. Clients that send no
/// `Origin` are not browsers and gain nothing from this check.
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(listen: SocketAddr, extra: &[String]) -> Self {
        let port = listen.port();
        let mut allowed = vec![format!("http://{listen}")];
        if listen.ip().is_loopback() || listen.ip().is_unspecified() {
            allowed.push(format!("http://localhost:{port}"));
            allowed.push(format!("http://127.0.0.1:{port}"));
            allowed.push(format!("http://[::1]:{port}"));
        }
        allowed.extend(extra.iter().map(|o| o.trim_end_matches('/').to_owned()));
        Self { allowed }
    }

    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => self.allowed.iter().any(|a| a.eq_ignore_ascii_case(o)),
        }
    }
}

/// A token bucket limiting setpoint writes per connection.
pub struct RateLimit {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            capacity: burst,
            per_second,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token if available.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_second).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_exactly() {
        let t = Token::from_operator("0123456789abcdef").expect("valid");
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcde"));
        assert!(!t.matches("0123456789abcdef0"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert!(Token::from_operator("short").is_err());
        assert!(Token::from_operator("has spaces in it, sadly").is_err());
        let g = Token::generate().expect("random");
        assert_eq!(g.expose().len(), 32);
        assert_ne!(g.expose(), Token::generate().expect("random").expose());
    }

    #[test]
    fn subprotocols_carry_protocol_and_token() {
        assert_eq!(
            parse_subprotocols(Some("setpoint.v1, token.abc")),
            Offered {
                protocol: true,
                token: Some("abc")
            }
        );
        assert_eq!(parse_subprotocols(None), Offered::default());
    }

    #[test]
    fn origins_are_the_servers_own_or_allowed() {
        let p = OriginPolicy::new(
            "127.0.0.1:8080".parse().expect("addr"),
            &["https://thermo.example.com/".into()],
        );
        assert!(p.allows(Some("http://127.0.0.1:8080")));
        assert!(p.allows(Some("http://localhost:8080")));
        assert!(p.allows(Some("https://thermo.example.com")));
        assert!(p.allows(None));
        assert!(!p.allows(Some("http://evil.example")));
        assert!(!p.allows(Some("http://localhost:8081")));
        assert!(!p.allows(Some("null")));
    }

    #[test]
    fn rate_limit_allows_a_burst_then_refuses() {
        let mut r = RateLimit::new(1.0, 3.0);
        assert!(r.allow() && r.allow() && r.allow());
        assert!(!r.allow());
    }
}
