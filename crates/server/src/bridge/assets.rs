//! The built dashboard: where it is, and the Content-Security-Policy derived from it. The router
//! (`bridge/mod.rs`) puts that policy, with the other security headers, on every response.
//!
//! Two sources: a Trunk output directory (`--dist`, for development: rebuild and reload), and the copy
//! compiled into the binary (release builds embed `dist/`), so an installed binary or a service started
//! from any directory serves its page. The directory wins when it holds a build.
//!
//! The Content-Security-Policy allows the page's own scripts and WebAssembly and nothing from elsewhere.
//! Trunk's loader is an inline module script; rather than allowing inline scripts wholesale, the policy
//! lists the SHA-256 of each inline script found in `dist/index.html` at start.

use std::path::{Path, PathBuf};

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The dashboard as built when this binary was (empty if `dist/` did not exist then).
#[derive(rust_embed::Embed)]
#[folder = "../../dist/"]
#[allow_missing = true]
struct Embedded;

/// Where the page is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Trunk build on disk.
    Dir(PathBuf),
    /// The copy inside the binary.
    Embedded,
    /// Neither: `/` explains how to build it.
    Missing,
}

/// Where the dashboard lives and the policy that protects it.
#[derive(Clone, Debug)]
pub struct Dashboard {
    pub source: Source,
    pub csp: String,
}

impl Dashboard {
    /// A Trunk build in `dir` if there is one, else the embedded build (when `embedded`), else none.
    pub fn load(dir: &Path, embedded: bool) -> Self {
        if let Ok(html) = std::fs::read_to_string(dir.join("index.html")) {
            return Self {
                source: Source::Dir(dir.to_path_buf()),
                csp: csp(&inline_script_hashes(&html)),
            };
        }
        match Embedded::get("index.html").filter(|_| embedded) {
            Some(index) => Self {
                source: Source::Embedded,
                csp: csp(&inline_script_hashes(&String::from_utf8_lossy(&index.data))),
            },
            None => Self {
                source: Source::Missing,
                csp: csp(&[]),
            },
        }
    }
}

/// Serves the embedded build as `ServeDir` serves a directory: the file at the path, else `index.html`
/// (the page routes itself), `GET` and `HEAD` only, revalidated by entity tag (the file's SHA-256).
pub async fn serve_embedded(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        return response;
    }
    let path = uri.path().trim_start_matches('/');
    let Some(file) = Embedded::get(path)
        .filter(|_| !path.is_empty())
        .or_else(|| Embedded::get("index.html"))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = setpoint_wire::hex(&file.metadata.sha256_hash());
    let etag =
        HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let mut response = if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        let mut head = StatusCode::OK.into_response();
        head.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(file.data.len()));
        head
    } else {
        file.data.into_owned().into_response()
    };
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The policy: same-origin everything, WebAssembly compilation allowed, inline scripts only by hash,
/// inline styles allowed (the charts' layout sets element styles; styles cannot run code), no framing.
fn csp(script_hashes: &[String]) -> String {
    let hashes: String = script_hashes.iter().map(|h| format!(" 'sha256-{h}'")).collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

/// Base64 SHA-256 of the body of every `<script>` element without a `src`.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(tag_end) = after.find('>') else { break };
        let tag = &after[..tag_end];
        let body_and_rest = &after[tag_end + 1..];
        let Some(close) = body_and_rest.find("</script>") else {
            break;
        };
        let body = &body_and_rest[..close];
        if !tag.contains(" src=") && !body.trim().is_empty() {
            hashes.push(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes())));
        }
        rest = &body_and_rest[close..];
    }
    hashes
}

/// The page shown when the dashboard has not been built: says what to do instead of a bare 404.
pub fn not_built_page(dir: &Path) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>setpoint</title></head><body \
         style=\"font-family:sans-serif;max-width:40em;margin:3em auto\"><h1>setpoint is running</h1>\
         <p>The dashboard has not been built, so there is no page to show at <code>{}</code>.</p>\
         <p>Build it with <code>cargo xtask dist</code> (or start everything with <code>cargo xtask run</code>, \
         which builds it first), then reload this page.</p><p>The data is live already: the WebSocket at \
         <code>/ws</code>, metrics at <code>/metrics</code>.</p></body></html>",
        html_escape(&dir.display().to_string())
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_only_inline_scripts() {
        let html = r#"<html><script src="/a.js"></script><script type="module">alert(1)</script></html>"#;
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 1);
        assert_eq!(
            hashes[0],
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"alert(1)"))
        );
        assert!(csp(&hashes).contains(&format!("'sha256-{}'", hashes[0])));
        assert!(csp(&[]).contains("frame-ancestors 'none'"));
    }
}
