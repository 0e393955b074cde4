//! A TCP proxy that can take a broker "down" and bring it back, for fault tests.
//!
//! Why not just kill and restart Tansu? Its only storage here is in memory, so a restarted Tansu comes back
//! empty — no topics, no offsets, no setpoints — which no real Kafka broker does (its log is on disk), and
//! librdkafka 2.12 crashes on the metadata such a broker returns (see RELIABILITY.md). Cutting the proxy looks
//! to every client exactly like a broker process that died (every connection reset, new ones refused) and,
//! when it is up again, like that broker restarted with its log intact.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FaultProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().expect("proxy addr");
        let proxy = Self {
            addr,
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            live: Arc::new(Mutex::new(Vec::new())),
        };
        let (up, stop, live) = (
            Arc::clone(&proxy.up),
            Arc::clone(&proxy.stop),
            Arc::clone(&proxy.live),
        );
        std::thread::spawn(move || accept_loop(listener, addr, upstream, up, stop, live));
        proxy
    }

    /// The broker "dies": every open connection is reset and the port refuses new ones.
    pub fn go_down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut_all();
    }

    /// The broker "restarts": the port accepts connections again.
    pub fn come_up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    fn cut_all(&self) {
        let mut live = self.live.lock().expect("proxy lock");
        for s in live.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut_all();
    }
}

fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
) {
    let mut listener = Some(listener);
    while !stop.load(Ordering::SeqCst) {
        if !up.load(Ordering::SeqCst) {
            // Closing the listening socket makes connects fail with "connection refused", as a dead broker's.
            listener = None;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let Some(l) = listener.as_ref() else {
            // Rebinding the same port right after closing it works on Linux (SO_REUSEADDR is not needed for a
            // listener whose connections were reset), but retry in case the kernel still holds it.
            listener = TcpListener::bind(addr).ok();
            if let Some(l) = &listener {
                l.set_nonblocking(true).expect("nonblocking");
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        };
        l.set_nonblocking(true).expect("nonblocking");
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut live = live.lock().expect("proxy lock");
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            live.push(c);
                        }
                    }
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies one direction on its own thread until either side closes, then closes both.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
