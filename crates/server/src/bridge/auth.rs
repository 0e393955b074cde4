//! Who may write, and which pages may connect.
//!
//! Reading is open to anyone who can reach the port; writing needs the token printed at start. Browsers
//! cannot set headers on a WebSocket, so the token travels as a subprotocol (`token.<token>`) next to the
//! protocol name (`setpoint.v1`): it stays out of URLs, and so out of proxy logs and browser history.

use std::net::SocketAddr;
use std::time::Instant;

use setpoint_wire::ws::{is_token_syntax, MAX_TOKEN_LEN};
pub use setpoint_wire::ws::{SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX as TOKEN_PREFIX};
use subtle::ConstantTimeEq;

/// Shortest token an operator may choose.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 16;

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

    /// A token chosen by the operator: the protocol's token syntax (the rule the dashboard checks a token
    /// with, so a token accepted here is one the page accepts), and at least [`MIN_OPERATOR_TOKEN_LEN`]
    /// characters so it cannot be guessed.
    pub fn from_operator(value: &str) -> Result<Self, String> {
        if value.len() >= MIN_OPERATOR_TOKEN_LEN && is_token_syntax(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(format!(
                "the token must be {MIN_OPERATOR_TOKEN_LEN} to {MAX_TOKEN_LEN} characters of A-Z, a-z, 0-9, '-' or '_'"
            ))
        }
    }

    /// The secret itself, for the URL printed at start.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is, so the token cannot be guessed
    /// byte by byte from response times. (The length may leak; it is not the secret.)
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

/// The token offered in a `Sec-WebSocket-Protocol` list, if any. (Whether `setpoint.v1` itself was offered
/// is the WebSocket library's business: it selects the protocol from the same header.)
pub fn offered_token(header: Option<&str>) -> Option<&str> {
    header
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .find_map(|item| item.strip_prefix(TOKEN_PREFIX))
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
        // The bug this guards against: the server printed a long token the page then refused (read-only).
        assert!(Token::from_operator(&"a".repeat(MAX_TOKEN_LEN)).is_ok());
        assert!(Token::from_operator(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
        let g = Token::generate().expect("random");
        assert_eq!(g.expose().len(), 32);
        assert_ne!(g.expose(), Token::generate().expect("random").expose());
    }

    #[test]
    fn a_token_the_server_accepts_is_one_the_page_accepts() {
        let candidates = [
            "0123456789abcdef".to_owned(),
            "x".repeat(MAX_TOKEN_LEN - 1),
            "x".repeat(MAX_TOKEN_LEN),
            "x".repeat(MAX_TOKEN_LEN + 1),
            "x".repeat(10_000),
            "with.dot-0123456789".to_owned(),
            "ünïcödé-0123456789".to_owned(),
        ];
        for c in candidates {
            if Token::from_operator(&c).is_ok() {
                assert!(
                    is_token_syntax(&c),
                    "server accepts {} chars the page refuses",
                    c.len()
                );
            }
        }
        let g = Token::generate().expect("random");
        assert!(is_token_syntax(g.expose()));
    }

    #[test]
    fn the_token_travels_beside_the_protocol() {
        assert_eq!(offered_token(Some("setpoint.v1, token.abc")), Some("abc"));
        assert_eq!(offered_token(Some("setpoint.v1")), None);
        assert_eq!(offered_token(None), None);
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
