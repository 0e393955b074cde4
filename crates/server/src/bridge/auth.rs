//! Who may write, under which name, and which pages may connect.
//!
//! Reading is open to anyone who can reach the port; writing needs one of the operator's named tokens
//! (`--token NAME=SECRET`, a tokens file, or the `admin` token generated at start). The token's *name* is
//! recorded as the author of every setpoint change made with it; the secret never leaves this module
//! except in the URL printed at start. Browsers
//! cannot set headers on a WebSocket, so the token travels as a subprotocol (`token.<token>`) next to the
//! protocol name (`setpoint.v3`): it stays out of URLs, and so out of proxy logs and browser history.

use std::net::SocketAddr;

use setpoint_wire::ws::{is_token_syntax, MAX_TOKEN_LEN};
pub use setpoint_wire::ws::{SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX as TOKEN_PREFIX};
use subtle::ConstantTimeEq;

/// Shortest token an operator may choose.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 16;

/// Name of the token generated at start, and of a token given without a name.
pub const DEFAULT_TOKEN_NAME: &str = "admin";

/// Longest token name: the one name rule ([`setpoint_wire::is_name`]).
pub const MAX_TOKEN_NAME_LEN: usize = setpoint_wire::MAX_NAME_LEN;

/// Whether `name` can name a token: 1 to [`MAX_TOKEN_NAME_LEN`] of ASCII letters, digits, `.`, `-`, `_`.
/// No `:` — names with a colon (`schedule:…`) are the server's own kinds of author.
pub fn is_token_name(name: &str) -> bool {
    setpoint_wire::is_name(name)
}

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
        Ok(Self(setpoint_wire::hex(&bytes)))
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

/// The operator's named write tokens.
#[derive(Clone, Debug)]
pub struct Tokens {
    entries: Vec<(String, Token)>,
}

impl Tokens {
    /// Checks that there is at least one token, that every name is valid and not reserved, and that no
    /// name or secret appears twice (a shared secret would make the author ambiguous).
    pub fn new(entries: Vec<(String, Token)>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("at least one token is needed".into());
        }
        for (i, (name, token)) in entries.iter().enumerate() {
            if !is_token_name(name) {
                return Err(format!(
                    "token name {name:?} must be 1 to {MAX_TOKEN_NAME_LEN} characters of A-Z, a-z, 0-9, '.', '-' or '_'"
                ));
            }
            if crate::roles::reserved_authors().any(|r| r == name) {
                return Err(format!(
                    "token name {name:?} is reserved for the server's own changes"
                ));
            }
            for (other_name, other) in &entries[..i] {
                if other_name == name {
                    return Err(format!("token name {name:?} is given twice"));
                }
                if other.matches(token.expose()) {
                    return Err(format!("tokens {other_name:?} and {name:?} have the same secret"));
                }
            }
        }
        Ok(Self { entries })
    }

    /// Parses `NAME=SECRET`, or a bare `SECRET` named [`DEFAULT_TOKEN_NAME`].
    pub fn parse_entry(spec: &str) -> Result<(String, Token), String> {
        let (name, secret) = spec.split_once('=').unwrap_or((DEFAULT_TOKEN_NAME, spec));
        let token =
            Token::from_operator(secret.trim()).map_err(|e| format!("token {:?}: {e}", name.trim()))?;
        Ok((name.trim().to_owned(), token))
    }

    /// Reads a tokens file: one `NAME=SECRET` per line; blank lines and lines starting with `#` are skipped.
    /// Errors name the line, never its secret.
    pub fn parse_file(text: &str) -> Result<Vec<(String, Token)>, String> {
        text.lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
            .map(|(n, line)| {
                if !line.contains('=') {
                    return Err(format!("line {n}: expected NAME=SECRET"));
                }
                Self::parse_entry(line).map_err(|e| format!("line {n}: {e}"))
            })
            .collect()
    }

    /// Reads a tokens file, refusing one that other users can read or write.
    ///
    /// Refused rather than warned about: a secret any local user can read is already everyone's, and a
    /// warning scrolls by in a service's log while the server runs on. This is `ssh`'s rule for private
    /// keys; the message says the one command that fixes it.
    pub fn read_file(path: &std::path::Path) -> Result<Vec<(String, Token)>, String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "the tokens file {} can be read or written by other users (mode {mode:03o}); \
                     its secrets grant write access: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                ));
            }
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
        Self::parse_file(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))
    }

    /// The name of the token `candidate` is, if any. Every token is compared, in constant time, so the
    /// answer's timing tells nothing about which token came close.
    pub fn identify(&self, candidate: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.entries {
            if token.matches(candidate) {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// The first token: the one the start-up URL carries.
    pub fn first(&self) -> (&str, &Token) {
        let (name, token) = &self.entries[0];
        (name, token)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

impl From<Token> for Tokens {
    /// One token, named [`DEFAULT_TOKEN_NAME`].
    fn from(token: Token) -> Self {
        Self {
            entries: vec![(DEFAULT_TOKEN_NAME.to_owned(), token)],
        }
    }
}

/// The `Origin` a request names, if any (`<invalid>` when it is not text): what [`OriginPolicy`] judges,
/// for writes and WebSocket upgrades alike.
pub fn origin(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("<invalid>"))
}

/// Whether a `Sec-WebSocket-Protocol` list offers only a retired version of the protocol (a page left open
/// across an upgrade): it is told to reload instead of being served.
pub fn offers_only_retired(header: Option<&str>) -> bool {
    let offered: Vec<&str> = header.unwrap_or("").split(',').map(str::trim).collect();
    !offered.contains(&SUBPROTOCOL)
        && offered
            .iter()
            .any(|p| setpoint_wire::ws::RETIRED_SUBPROTOCOLS.contains(p))
}

/// The token offered in a `Sec-WebSocket-Protocol` list, if any. (Whether the protocol itself was offered
/// is the WebSocket library's business: it selects the protocol from the same header.)
pub fn offered_token(header: Option<&str>) -> Option<&str> {
    header
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .find_map(|item| item.strip_prefix(TOKEN_PREFIX))
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750; the scheme name is case-insensitive).
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
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
    fn named_tokens_identify_their_holder_and_refuse_ambiguity() {
        let entry = |s: &str| Tokens::parse_entry(s).expect("valid entry");
        let tokens = Tokens::new(vec![
            entry("alice=aaaaaaaaaaaaaaaa"),
            entry("ops.bot-1=bbbbbbbbbbbbbbbb"),
        ])
        .expect("valid");
        assert_eq!(tokens.identify("aaaaaaaaaaaaaaaa"), Some("alice"));
        assert_eq!(tokens.identify("bbbbbbbbbbbbbbbb"), Some("ops.bot-1"));
        assert_eq!(tokens.identify("cccccccccccccccc"), None);
        assert_eq!(tokens.first().0, "alice");
        assert_eq!(entry("cccccccccccccccc").0, DEFAULT_TOKEN_NAME);
        let refused = |entries: Vec<(String, Token)>| Tokens::new(entries).expect_err("refused");
        assert!(refused(vec![entry("a=aaaaaaaaaaaaaaaa"), entry("a=bbbbbbbbbbbbbbbb")]).contains("twice"));
        assert!(
            refused(vec![entry("a=aaaaaaaaaaaaaaaa"), entry("b=aaaaaaaaaaaaaaaa")]).contains("same secret")
        );
        assert!(refused(vec![entry("simulator=aaaaaaaaaaaaaaaa")]).contains("reserved"));
        assert!(refused(vec![entry("schedule:x=aaaaaaaaaaaaaaaa")]).contains("token name"));
        assert!(refused(vec![]).contains("at least one"));
        // A bad secret's error names the token, not the secret.
        let e = Tokens::parse_entry("bob=short").expect_err("too short");
        assert!(e.contains("bob") && !e.contains("short\""), "{e}");
    }

    #[test]
    fn a_tokens_file_names_its_bad_line_without_its_secret() {
        let ok = Tokens::parse_file("# operators\n\nalice=aaaaaaaaaaaaaaaa\n  bob = bbbbbbbbbbbbbbbb \n")
            .expect("valid file");
        assert_eq!(
            ok.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        let e = Tokens::parse_file("alice=aaaaaaaaaaaaaaaa\nbob=not valid!secret\n").expect_err("bad");
        assert!(e.starts_with("line 2:") && !e.contains("not valid!secret"), "{e}");
        let e = Tokens::parse_file("justasecretwithoutname\n").expect_err("no name");
        assert!(e.starts_with("line 1:") && !e.contains("justasecret"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_tokens_file_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("setpoint-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tokens");
        std::fs::write(&path, "alice=aaaaaaaaaaaaaaaa\n").expect("write");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = Tokens::read_file(&path).expect_err("readable by others");
            assert!(e.contains("chmod 600") && !e.contains("aaaaaaaa"), "{e}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(Tokens::read_file(&path).expect("private").len(), 1);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bearer_token_is_read_from_the_authorization_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn the_token_travels_beside_the_protocol() {
        assert_eq!(offered_token(Some("setpoint.v3, token.abc")), Some("abc"));
        assert_eq!(offered_token(Some("setpoint.v3")), None);
        assert!(offers_only_retired(Some("setpoint.v1, token.abc")));
        assert!(offers_only_retired(Some("setpoint.v2, token.abc")));
        assert!(!offers_only_retired(Some("setpoint.v2, setpoint.v3")) && !offers_only_retired(None));
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
}
