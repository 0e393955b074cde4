//! The chromedriver process and the Chromium sessions it starts.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fantoccini::ClientBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Map};

use crate::session::{bounded, Session};
use crate::Result;

/// How long chromedriver may take to listen after it was started.
const STARTUP: Duration = Duration::from_secs(20);

/// A chromedriver process on a free loopback port. Dropping it kills chromedriver and every Chromium it
/// started, and removes their profiles.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
    profiles: Vec<PathBuf>,
}

impl Driver {
    /// Starts chromedriver and waits until it accepts connections.
    pub async fn start() -> Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that Drop can kill the browsers with it: Chromium outlives a killed
            // chromedriver, and a failed test never gets to end its session politely.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start chromedriver (run `cargo xtask setup`): {e}"))?;
        let mut driver = Self {
            child,
            addr: (Ipv4Addr::LOCALHOST, port).into(),
            profiles: Vec::new(),
        };
        let listening = async {
            loop {
                if tokio::net::TcpStream::connect(driver.addr).await.is_ok() {
                    return Ok(());
                }
                if let Ok(Some(status)) = driver.child.try_wait() {
                    return Err(format!("chromedriver exited at start ({status})"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(STARTUP, listening)
            .await
            .map_err(|_| format!("chromedriver did not listen within {STARTUP:?}"))??;
        Ok(driver)
    }

    /// A fresh headless Chromium session with a window of `width` × `height`.
    pub async fn session(&mut self, width: u32, height: u32) -> Result<Session> {
        // Unique per session: two Chromiums given the same profile hand over to one another (a singleton
        // lock), and the second window closes with the first — which made tests running in parallel flaky.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let profile = std::env::temp_dir().join(format!(
            "setpoint-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        self.profiles.push(profile.clone());
        let mut capabilities = Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                // --no-sandbox: the tests run as root. The background-networking flags keep Chromium from
                // calling home through a network that is closed here.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", profile.display())]
            }),
        );
        let client = bounded(
            "new session",
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://{}/", self.addr)),
        )
        .await?;
        Ok(Session::new(client))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(group) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: killpg takes no pointers; `group` is the process group chromedriver leads (see `start`).
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
        }
        // Chromedriver alone, should the group kill have failed.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}
