//! The listener against broken and hostile clients: the real binary, plain sockets (SECURITY.md's table).
//!
//! Each case is one a client can do to any setpoint on purpose or by accident: hold a half-sent request at
//! shutdown, never finish a head, sit idle, open more connections than there are descriptors, send
//! another site's `Host`, multiply a rate limit by opening connections, or send kilobytes of `Origin`.

mod common;

use std::io::Write;
use std::time::Duration;

use common::binary::{closed_within, Binary};
use futures_util::StreamExt;
use setpoint_wire::ws::{ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "hostile-token-0123456789";
const OTHER: &str = "other-token-9876543210";

fn tokens() -> [(&'static str, &'static str); 1] {
    [(
        "SETPOINT_TOKEN",
        "alice=hostile-token-0123456789,bob=other-token-9876543210",
    )]
}

#[test]
fn sigterm_exits_within_the_shutdown_bound_whatever_clients_hold() {
    // Timeouts far beyond the shutdown bound: only the bound can end these connections.
    let mut server = Binary::run(
        "shutdown",
        &[
            "--head-timeout",
            "120s",
            "--body-timeout",
            "120s",
            "--shutdown-timeout",
            "2s",
        ],
        &tokens(),
    );
    let mut half_head = server.connect();
    half_head
        .write_all(b"GET /api/v1/sensors HTTP/1.1\r\nHost: localhost\r\n")
        .expect("send");
    let mut half_body = server.connect();
    half_body
        .write_all(
            format!(
                "PUT /api/v1/sensors/1/setpoint HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"desired\""
            )
            .as_bytes(),
        )
        .expect("send");
    let _silent = server.connect();
    // A WebSocket that never reads: its session outlives its HTTP connection, and must end in the bound too.
    let mut websocket = server.connect();
    websocket
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("send");
    // Every connection is in before the signal.
    server.wait_metric("setpoint_http_connections", 4.0, Duration::from_secs(10));
    server.wait_metric("setpoint_ws_connections_total", 1.0, Duration::from_secs(10));
    let (status, took) = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit {status}; log:\n{}", server.log());
    // 2 s of grace, plus the orderly stop of the roles.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let log = server.log();
    assert!(
        log.contains("not finished within the shutdown timeout") && log.contains("stopped"),
        "{log}"
    );
    println!("SIGTERM with a half head, a half body, a silent socket and a WebSocket that never reads: exited in {took:?}");
}

#[test]
fn a_head_that_never_ends_a_silent_socket_and_an_idle_keep_alive_are_closed() {
    let server = Binary::run("head", &["--head-timeout", "1s"], &tokens());
    let mut half = server.connect();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .expect("send");
    let mut silent = server.connect();
    let mut idle = server.connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    for (what, socket) in [
        ("half head", &mut half),
        ("silent", &mut silent),
        ("idle keep-alive", &mut idle),
    ] {
        let took = closed_within(socket, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{what} connection still open after 10 s"));
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
        println!("{what}: closed after {took:?} (head timeout 1 s)");
    }
    let timeouts = server.wait_metric(
        "setpoint_clients_refused_total{reason=\"head_timeout\"}",
        3.0,
        Duration::from_secs(5),
    );
    assert!(timeouts >= 3.0);
    // One log line for the three, not three.
    assert_eq!(
        server.log().matches("sent no complete request in time").count(),
        1
    );
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_after_the_send_timeout() {
    let server = Binary::run("stall", &["--send-timeout", "1s"], &tokens());
    let mut greedy = server.connect();
    // 300 pipelined requests for the 44 KB OpenAPI document, none of the answers read: the socket's
    // buffers fill, the server's writes stall, and the connection is cut instead of held.
    let request = "GET /api/v1/openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(300);
    greedy.write_all(request.as_bytes()).expect("send");
    server.wait_metric(
        "setpoint_clients_refused_total{reason=\"write_timeout\"}",
        1.0,
        Duration::from_secs(20),
    );
    let open = server.metric("setpoint_http_connections").unwrap_or(0.0);
    assert!(open <= 1.0, "only the metrics request itself is open: {open}");
}

#[test]
fn a_body_that_never_completes_gets_408_within_the_body_timeout() {
    let server = Binary::run("body", &["--body-timeout", "1s"], &tokens());
    let started = std::time::Instant::now();
    let answer = server.exchange(&format!(
        "PUT /api/v1/sensors/1/setpoint HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"desired\""
    ));
    let took = started.elapsed();
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.code(), "request_timeout");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        server
            .metric("setpoint_clients_refused_total{reason=\"body_timeout\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    // Nothing was written.
    let setpoint = server.get("/api/v1/sensors/1/setpoint", "");
    assert!(!setpoint.body.contains("\"desired\":21.5"), "{}", setpoint.body);
    println!("half a body: 408 after {took:?} (body timeout 1 s)");
}

#[test]
fn at_the_connection_limit_probes_still_answer_and_the_descriptor_limit_is_respected() {
    // 256 descriptors: the default --max-connections (1024) must be lowered to fit.
    let server = Binary::spawn("limit", &["--head-timeout", "60s"], &tokens(), |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit in the child between fork and exec, with a valid struct; async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 256,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    });
    let log = server.log();
    assert!(log.contains("--max-connections lowered to 112"), "{log}");
    // More idle connections than the process has descriptors.
    let idle: Vec<_> = (0..300).map(|_| server.connect()).collect();
    // The reserve's idle sockets are closed after a second; then a probe gets a place.
    let mut healthz = None;
    for _ in 0..100 {
        let answer = server.get("/healthz", "");
        if answer.status == 200 {
            healthz = Some(answer);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(healthz.expect("/healthz answers at the limit").body, "ok\n");
    let refused = server.get("/api/v1/sensors", "");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.code(), "too_many_connections");
    assert_eq!(refused.header("retry-after"), Some("1"));
    let open = server.metric("setpoint_http_connections").expect("gauge");
    assert!((112.0..=113.0).contains(&open), "open connections: {open}");
    assert!(
        server
            .metric("setpoint_clients_refused_total{reason=\"connection_limit\"}")
            .unwrap_or(0.0)
            > 0.0
    );
    drop(idle);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.get("/api/v1/sensors", "").status != 200 {
        assert!(std::time::Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("300 idle sockets at 256 descriptors: {open} held, /healthz 200, others 503, served again once they left");
}

#[test]
fn only_loopback_names_and_allowed_origins_are_served_on_loopback() {
    let server = Binary::run(
        "host",
        &["--allow-origin", "https://thermo.example.com"],
        &tokens(),
    );
    let port = server.addr.port();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "thermo.example.com".into(),
    ] {
        let answer = server.raw(&format!(
            "GET /api/v1/sensors HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
    for path in ["/api/v1/sensors", "/", "/ws", "/metrics"] {
        let answer = server.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: attacker.example:{port}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(answer.status, 421, "{path}: {answer:?}");
        assert_eq!(answer.code(), "misdirected_request");
    }
}

#[test]
fn every_api_error_has_the_api_body_and_head_and_options_are_sane() {
    let server = Binary::run("errors", &[], &tokens());
    let cases = [
        ("GET /api/v1/no-such-thing", 404, "not_found"),
        ("GET /api/v2/sensors", 404, "not_found"),
        ("GET /api/v1/sensors/%FF%FE/setpoint", 400, "invalid_message"),
        ("POST /api/v1/sensors", 405, "method_not_allowed"),
        ("DELETE /api/v1/sensors/1/setpoint", 405, "method_not_allowed"),
        ("GET /ws", 426, "upgrade_required"),
    ];
    for (line, status, code) in cases {
        let answer = server.raw(&format!(
            "{line} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(answer.status, status, "{line}: {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"), "{line}");
        assert_eq!(answer.code(), code, "{line}");
    }
    let wrong_method =
        server.raw("POST /api/v1/sensors HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(wrong_method.header("allow"), Some("GET,HEAD"));
    let options = server
        .raw("OPTIONS /api/v1/sensors/1/setpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(options.status, 204, "{options:?}");
    assert_eq!(options.header("allow"), Some("GET,HEAD,PUT,OPTIONS"));
    let head = server.raw("HEAD /api/v1/sensors HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body: {head:?}");
    let listing = server.get("/api/v1/sensors", "");
    assert_eq!(head.header("content-length"), listing.header("content-length"));
}

#[test]
fn rate_limits_hold_per_token_and_per_address_across_connections() {
    let server = Binary::run(
        "rate",
        &[
            "--writes-per-second",
            "0.001",
            "--write-burst",
            "3",
            "--reads-per-second",
            "0.001",
            "--read-burst",
            "3",
        ],
        &tokens(),
    );
    let put_from = |token: &str, origin: &str| {
        let body = r#"{"desired":21.0,"up_delta":1.0,"down_delta":1.0}"#;
        server.raw(&format!(
            "PUT /api/v1/sensors/1/setpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{origin}\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    };
    let put = |token: &str| put_from(token, "");
    // A page on another site the operator visits writes to the loopback port: refused, and it spends
    // nobody's budget.
    for _ in 0..10 {
        let foreign = put_from(TOKEN, "Origin: http://attacker.example\r\n");
        assert_eq!((foreign.status, foreign.code().as_str()), (403, "forbidden"));
    }
    // Each request on a new connection: a per-connection budget would never run out.
    let statuses: Vec<u16> = (0..3).map(|_| put(TOKEN).status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let refused = put(OTHER);
    assert_eq!(
        refused.status, 429,
        "another token from the same address: {refused:?}"
    );
    assert_eq!(refused.code(), "rate_limited");
    assert!(refused.body.contains("address"), "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Guessing tokens has a budget of its own.
    let guesses: Vec<u16> = (0..4).map(|_| put("not-a-token-0000000000").status).collect();
    assert_eq!(guesses, [401, 401, 401, 429]);
    // Reads: the histories on both doors share one budget per address.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut ws = runtime.block_on(async {
        let mut ws = common::connect(server.addr, Some(TOKEN), None)
            .await
            .expect("connects");
        ws.until(|m| matches!(m, ServerMessage::Hello(_)).then_some(()))
            .await;
        ws
    });
    for _ in 0..3 {
        assert_eq!(server.get("/api/v1/sensors/1/history", "").status, 200);
    }
    let refused = server.get("/api/v1/sensors/1/history", "");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(
        server.get("/api/v1/sensors/1/setpoint", "").status,
        200,
        "light reads are not limited"
    );
    // Upgrades have ten times the read budget: 30 here, of which the client above took one.
    let upgrade = || {
        server.exchange(
            "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
    };
    let upgrades: Vec<u16> = (0..30).map(|_| upgrade().status).collect();
    assert_eq!(upgrades.iter().filter(|s| **s == 101).count(), 29, "{upgrades:?}");
    assert_eq!(upgrades.last(), Some(&429));
    runtime.block_on(async {
        ws.send(r#"{"type":"setpoint_history","sensor":1}"#).await;
        assert_eq!(next_error(&mut ws).await, ErrorCode::RateLimited);
        ws.send(&common::set_setpoint("w", 1, 20.0, 1.0, 1.0, None)).await;
        assert_eq!(next_error(&mut ws).await, ErrorCode::RateLimited);
    });
    for reason in ["peer_writes", "peer_reads", "peer_guesses", "peer_upgrades"] {
        let series = format!("setpoint_clients_refused_total{{reason=\"{reason}\"}}");
        assert!(server.metric(&series).unwrap_or(0.0) >= 1.0, "{series}");
    }
}

async fn next_error(ws: &mut common::Client) -> ErrorCode {
    ws.until(|m| match m {
        ServerMessage::Error(e) => Some(e.code),
        _ => None,
    })
    .await
}

#[test]
fn a_huge_origin_is_neither_echoed_nor_logged_whole() {
    let server = Binary::run("origin", &[], &tokens());
    let before = server.log().len();
    let origin = format!("http://{}.example", "a".repeat(60_000));
    for _ in 0..300 {
        let answer = server.exchange(&format!(
            "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Origin: {origin}\r\n\r\n"
        ));
        assert_eq!(answer.status, 403, "{answer:?}");
        assert!(answer.body.len() < 1000, "{} bytes answered", answer.body.len());
    }
    let grown = server.log().len() - before;
    assert!(grown < 2_000, "300 refusals grew the log by {grown} bytes");
    let refused = server
        .metric("setpoint_clients_refused_total{reason=\"foreign_origin\"}")
        .unwrap_or(0.0);
    assert_eq!(refused, 300.0);
    println!("300 upgrades with a 60 KB Origin: log grew {grown} bytes, every one counted");
}

#[test]
fn a_websocket_that_stops_answering_pings_is_closed() {
    let server = Binary::run("ping", &["--ws-ping-interval", "1s"], &tokens());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut ws = runtime.block_on(async {
        let mut ws = common::connect(server.addr, None, None).await.expect("connects");
        ws.until(|m| matches!(m, ServerMessage::Hello(_)).then_some(()))
            .await;
        ws
    });
    // Outside the runtime nothing reads the socket, so nothing answers the server's pings.
    let series = "setpoint_clients_refused_total{reason=\"ws_ping_timeout\"}";
    server.wait_metric(series, 1.0, Duration::from_secs(10));
    let close = runtime.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => return Some(frame.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return Some(None),
            }
        }
    });
    // Closed: with its 1001 frame, or reset before the client read it (answering the queued pings on a
    // socket the server already closed resets it); either way not left open.
    assert!(matches!(close, Some(Some(1001) | None)), "{close:?}");
}
