//! An MQTT broker and client for tests: Debian's Mosquitto on a free loopback port (restartable on the
//! same port, stopped on drop), and a client that records every message it receives, every wait bounded.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::free_port;

/// Where Mosquitto is: `MOSQUITTO_BIN`, else Debian's `/usr/sbin/mosquitto`, else `mosquitto` on the PATH.
pub fn mosquitto_path() -> PathBuf {
    if let Ok(p) = std::env::var("MOSQUITTO_BIN") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/sbin/mosquitto");
    if debian.exists() {
        return debian;
    }
    PathBuf::from("mosquitto")
}

/// A Mosquitto process listening on 127.0.0.1 only, anonymous, with persistence (as brokers are run): a
/// restart keeps retained messages and the sessions of clients that asked for one, so a test client with a
/// session receives what was published for it while it reconnected.
pub struct Mosquitto {
    pub port: u16,
    /// A second listener, with TLS, when started with [`Mosquitto::start_with_tls`].
    pub tls_port: Option<u16>,
    child: Option<Child>,
    dir: PathBuf,
    config: PathBuf,
}

impl Mosquitto {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A broker with a second listener on 127.0.0.1 speaking TLS with this certificate and key (PEM).
    pub fn start_with_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("setpoint-mosquitto-{port}"));
        std::fs::create_dir_all(&dir).expect("broker directory");
        // Started as root, Mosquitto drops to its own user, which must be able to save its state here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .expect("broker directory mode");
        let config = dir.join("mosquitto.conf");
        let mut settings = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence true\npersistence_location {}/\n",
            dir.display()
        );
        let tls_port = tls.map(|(cert, key)| {
            let tls_port = free_port();
            settings.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
                cert.display(),
                key.display()
            ));
            tls_port
        });
        std::fs::write(&config, settings).expect("config");
        let mut m = Self {
            port,
            tls_port,
            child: None,
            dir,
            config,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {:?} ({e}): run `cargo xtask setup`",
                    mosquitto_path()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in std::iter::once(self.port).chain(self.tls_port) {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                // A Mosquitto that exited (its port taken) must not be mistaken for whoever listens there.
                if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    panic!("mosquitto exited ({status}) before listening on {port}");
                }
                assert!(Instant::now() < deadline, "mosquitto did not listen on {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills the broker (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it (SIGTERM: it saves its state and closes every connection) and starts it again on the same
    /// port.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One message as a client received it.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
    pub at: Instant,
}

/// A client subscribed to `filters` (again after every reconnection), recording what arrives.
pub struct MqttClient {
    pub client: AsyncClient,
    received: mpsc::UnboundedReceiver<Message>,
    /// Everything received so far, in order.
    pub seen: Vec<Message>,
}

impl MqttClient {
    /// Connects with a session the broker keeps (`clean_session` false), so messages for it published while
    /// it reconnects are delivered when it is back.
    pub async fn connect(port: u16, id: &str, filters: &[&str]) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_clean_session(false);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let (tx, received) = mpsc::unbounded_channel();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (subscriber, connected) = (client.clone(), tokio::sync::oneshot::channel::<()>());
        let (connected_tx, connected_rx) = connected;
        let mut connected_tx = Some(connected_tx);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = subscriber.subscribe(f.clone(), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let message = Message {
                            topic: p.topic,
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            retain: p.retain,
                            at: Instant::now(),
                        };
                        if tx.send(message).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .expect("the test client connects and subscribes within 10 s")
            .expect("subscribed");
        Self {
            client,
            received,
            seen: Vec::new(),
        }
    }

    pub async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await
            .expect("publish queued");
    }

    /// The first message received from now on that `pred` accepts, within `patience`; `None` if none came.
    pub async fn next_matching(
        &mut self,
        patience: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some(m)) => {
                    self.seen.push(m.clone());
                    if pred(&m) {
                        return Some(m);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Waits (at most `patience`) for the first message, received from now on, that `pred` accepts; fails the
    /// test with what did arrive if none does.
    pub async fn expect(
        &mut self,
        patience: Duration,
        what: &str,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        match self.next_matching(patience, pred).await {
            Some(m) => m,
            None => {
                let recent: Vec<_> = self
                    .seen
                    .iter()
                    .rev()
                    .take(20)
                    .map(|m| format!("{} {}", m.topic, m.payload))
                    .collect();
                panic!("no {what} within {patience:?}; last received: {recent:#?}")
            }
        }
    }

    /// Waits for a message on `topic` with exactly `payload`.
    pub async fn expect_on(&mut self, patience: Duration, topic: &str, payload: &str) -> Message {
        let what = format!("{payload:?} on {topic}");
        self.expect(patience, &what, |m| m.topic == topic && m.payload == payload)
            .await
    }
}
