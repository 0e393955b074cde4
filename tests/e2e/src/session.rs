//! One browser session: the handful of WebDriver commands the tests use, each bounded in time.

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use crate::Result;

/// Longest a single command may take: fantoccini has no timeout of its own, and a wedged chromedriver must
/// fail the test rather than hang it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How often [`Session::wait_for`] polls.
const POLL: Duration = Duration::from_millis(100);

/// Runs one WebDriver command, failing with `what` if it errs or takes longer than [`COMMAND_TIMEOUT`].
pub(crate) async fn bounded<T, E: Display>(
    what: &str,
    command: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {COMMAND_TIMEOUT:?}")),
    }
}

/// One Chromium session. Dropping it ends the session in the background; the [`crate::Driver`] kills
/// whatever is left.
pub struct Session {
    client: Client,
}

impl Session {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// The fantoccini client, for whatever this wrapper does not offer (unbounded: wrap calls in a timeout).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        bounded(&format!("go to {url}"), self.client.goto(url)).await
    }

    pub async fn find(&self, css: &str) -> Result<Element> {
        bounded(css, self.client.find(Locator::Css(css))).await
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        bounded(css, self.client.find_all(Locator::Css(css))).await
    }

    pub async fn text(&self, e: &Element) -> Result<String> {
        bounded("element text", e.text()).await
    }

    /// A DOM property as WebDriver reports it: booleans come back as `"true"` / `"false"`, a missing
    /// property as `None`.
    pub async fn property(&self, e: &Element, name: &str) -> Result<Option<String>> {
        bounded(&format!("property {name}"), e.prop(name)).await
    }

    pub async fn click(&self, e: &Element) -> Result<()> {
        bounded("click", e.click()).await
    }

    pub async fn send_keys(&self, e: &Element, text: &str) -> Result<()> {
        bounded("send keys", e.send_keys(text)).await
    }

    /// Runs JavaScript in the page; `args` may contain elements (pass them with [`Session::arg`]).
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        bounded("script", self.client.execute(script, args)).await
    }

    /// An element as a script argument.
    pub fn arg(e: &Element) -> Value {
        // An element serializes as its W3C reference, which is what a script argument is.
        serde_json::to_value(e).unwrap_or(Value::Null)
    }

    /// A Chrome DevTools Protocol command through chromedriver (`goog/cdp/execute`): metrics, heap, profiler
    /// — what the W3C protocol cannot measure.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        let command = Cdp {
            body: json!({ "cmd": cmd, "params": params }),
        };
        bounded(cmd, self.client.issue_cmd(command)).await
    }

    /// Saves a PNG screenshot of the viewport; returns its size in bytes.
    pub async fn screenshot(&self, path: &Path) -> Result<usize> {
        let png = bounded("screenshot", self.client.screenshot()).await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, &png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(png.len())
    }

    /// Polls `probe` until it returns `Some`, failing with `what` once `timeout` has passed (a probe still
    /// running then is abandoned).
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl AsyncFnMut(&Self) -> Option<T>,
    ) -> Result<T> {
        let poll = async {
            loop {
                if let Some(v) = probe(self).await {
                    return v;
                }
                tokio::time::sleep(POLL).await;
            }
        };
        tokio::time::timeout(timeout, poll)
            .await
            .map_err(|_| format!("timed out after {timeout:?} waiting for {what}"))
    }

    /// Text of the first element matching `css`, if there is one.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let e = self.find(css).await.ok()?;
        self.text(&e).await.ok()
    }

    /// Ends the session now, which closes its Chromium.
    pub async fn close(self) -> Result<()> {
        bounded("close the session", self.client.close()).await
    }
}

/// chromedriver's DevTools pass-through, which fantoccini has no method for.
#[derive(Debug)]
struct Cdp {
    body: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        // A client always has a session once connected; without one chromedriver answers "invalid session id".
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}
