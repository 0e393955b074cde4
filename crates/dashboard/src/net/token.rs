//! The write token: read once from the URL fragment, kept for the tab's session, never left in the address bar.
//!
//! The fragment is never sent to a server, so `setpoint run` can print a URL carrying `#token=<token>` without the
//! token reaching access logs. It is removed from the address bar at once (so it is not bookmarked, shared in a
//! screenshot or kept in history) and kept in `sessionStorage`, so a reload of this tab keeps write access but a
//! new tab does not. The browser cannot set headers on a WebSocket handshake, so the token travels as a second
//! subprotocol, `token.<token>`, next to `setpoint.v3`.

use setpoint_wire::ws::{SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX};

/// Extracts the token from a URL fragment such as `#token=ab12` or `#view=x&token=ab12`. Only the wire
/// crate's token syntax is accepted: the value ends up in a header, and a subprotocol may not contain
/// arbitrary characters.
pub fn from_fragment(fragment: &str) -> Option<String> {
    let body = fragment.strip_prefix('#').unwrap_or(fragment);
    body.split('&')
        .filter_map(|kv| kv.strip_prefix("token="))
        .find(|t| is_token(t))
        .map(str::to_owned)
}

/// Whether `t` looks like a token: the same rule the server applies.
fn is_token(t: &str) -> bool {
    setpoint_wire::ws::is_token_syntax(t)
}

/// The subprotocols to offer: always the protocol version, plus the token when there is one.
pub fn subprotocols(token: Option<&str>) -> Vec<String> {
    let mut out = vec![SUBPROTOCOL.to_owned()];
    if let Some(t) = token.filter(|t| is_token(t)) {
        out.push(format!("{TOKEN_SUBPROTOCOL_PREFIX}{t}"));
    }
    out
}

/// The WebSocket URL on the page's own origin (`wss:` when the page is served over HTTPS).
pub fn ws_url(page_protocol: &str, host: &str) -> String {
    let scheme = if page_protocol == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}/ws")
}

#[cfg(target_arch = "wasm32")]
mod browser {
    use super::*;

    const STORAGE_KEY: &str = "setpoint.token";

    /// Reads the token from the fragment (storing it and cleaning the address bar) or from session storage.
    pub fn load() -> Option<String> {
        let window = web_sys::window()?;
        let storage = window.session_storage().ok().flatten();
        let location = window.location();
        let hash = location.hash().unwrap_or_default();
        if let Some(token) = from_fragment(&hash) {
            if let Some(s) = &storage {
                // Storage may be disabled (private mode); the token then lives only until a reload.
                let _ = s.set_item(STORAGE_KEY, &token);
            }
            let clean = format!(
                "{}{}",
                location.pathname().unwrap_or_else(|_| "/".to_owned()),
                location.search().unwrap_or_default()
            );
            if let Ok(history) = window.history() {
                let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&clean));
            }
            return Some(token);
        }
        storage
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
            .filter(|t| is_token(t))
    }
}

#[cfg(target_arch = "wasm32")]
pub use browser::load;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn parses_fragment_and_builds_subprotocols() {
        assert_eq!(from_fragment("#token=00ffAB"), Some("00ffAB".into()));
        assert_eq!(from_fragment("#a=1&token=beef"), Some("beef".into()));
        assert_eq!(from_fragment("#token="), None);
        assert_eq!(
            from_fragment("#token=a%20b"),
            None,
            "escaped characters are not token syntax"
        );
        assert_eq!(from_fragment("#token=<script>"), None);
        // An operator-chosen token (SETPOINT_TOKEN) is accepted as the server accepts it.
        assert_eq!(
            from_fragment("#token=my-secret_token-123"),
            Some("my-secret_token-123".into())
        );
        assert_eq!(from_fragment(""), None);
        assert_eq!(subprotocols(None), vec!["setpoint.v3"]);
        assert_eq!(subprotocols(Some("beef")), vec!["setpoint.v3", "token.beef"]);
        assert_eq!(subprotocols(Some("x y")), vec!["setpoint.v3"]);
        assert_eq!(ws_url("https:", "h:1"), "wss://h:1/ws");
        assert_eq!(ws_url("http:", "h"), "ws://h/ws");
    }
}
