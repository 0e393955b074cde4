//! The dashboard as a person uses it: the real server (`setpoint run`, embedded bus, simulator) serving the
//! Trunk-built dashboard, driven in headless Chromium through chromedriver.
//!
//! Needs `dist/` (built by `cargo xtask test` before the tests run; `SETPOINT_DIST` points elsewhere).
//!
//! Over 400 lines on purpose: one scenario per test (writing, reading only, history, group setpoints,
//! schedules, a hundred thousand rooms), each readable top to bottom, with the page-reading helpers they
//! share beside them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use setpoint::app::{self, RunOptions};
use setpoint::bridge::auth::Token;
use setpoint::bridge::BridgeOptions;
use setpoint::roles::controller::ControllerOptions;
use setpoint_control::Config;
use setpoint_e2e::{Driver, Session};
use setpoint_sim::SimConfig;

// An operator-style token (dashes, underscores), as `SETPOINT_TOKEN` allows: the page must accept it too.
const TOKEN: &str = "e2e-token_0123456789abcdef";
const PATIENCE: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dist() -> PathBuf {
    std::env::var_os("SETPOINT_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("dist"))
}

/// Starts `setpoint run` in-process on an ephemeral port, on the test's runtime: three simulated rooms.
async fn start_server() -> (std::net::SocketAddr, StopOnDrop) {
    start_server_with(3, 100).await
}

/// [`start_server`] with `rooms` simulated rooms (sensors `1..=rooms`), each reading every `interval_ms`.
async fn start_server_with(rooms: usize, interval_ms: i64) -> (std::net::SocketAddr, StopOnDrop) {
    assert!(
        dist().join("index.html").exists(),
        "no dashboard build at {} — run `cargo xtask dist`",
        dist().display()
    );
    let mut bridge = BridgeOptions::new(
        "127.0.0.1:0".parse().expect("addr"),
        Token::from_operator(TOKEN).expect("token"),
    );
    bridge.dist = dist();
    bridge.sources = std::sync::Arc::new(setpoint::bridge::hub::sources::RoomSources {
        simulated: Some(1..=rooms as i32),
        devices: Default::default(),
    });
    let options = RunOptions {
        bridge: Some(bridge),
        controller: ControllerOptions {
            config: Config::default(),
            tick: Duration::from_secs(1),
        },
        run_controller: true,
        simulator: Some(SimConfig {
            rooms,
            first_sensor: 1,
            seed: 11,
            interval_ms,
            model: setpoint_sim::RoomModel::FirstOrder,
        }),
        seed_setpoints: true,
        run_scheduler: true,
        gateway: None,
    };
    let running = app::start_embedded(options).await.expect("server starts");
    let addr = running.addr.expect("bridge");
    let stop = running.stop_token();
    tokio::spawn(running.wait());
    (addr, StopOnDrop(stop))
}

/// Stops the server when the test ends, even on failure.
struct StopOnDrop(tokio_util::sync::CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn card(sensor: i32, css: &str) -> String {
    format!(".card[data-sensor=\"{sensor}\"] {css}")
}

async fn number(s: &Session, css: &str) -> Option<f64> {
    s.text_of(css)
        .await?
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .find(|t| !t.is_empty())?
        .parse()
        .ok()
}

/// Sets an input's value and fires `input` (what a drag does), and optionally `change` (what a release does).
async fn set_input(s: &Session, css: &str, value: f64, release: bool) {
    let e = s.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    let script = "const [el, v, release] = arguments; \
                  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set; \
                  setter.call(el, String(v)); \
                  el.dispatchEvent(new Event('input', {bubbles: true})); \
                  if (release) { el.dispatchEvent(new Event('change', {bubbles: true})); } \
                  return el.value;";
    s.execute(script, vec![Session::arg(&e), json!(value), json!(release)])
        .await
        .unwrap_or_else(|e| panic!("set {css}: {e}"));
}

fn artifact(name: &str) -> PathBuf {
    root().join("tests/artifacts").join(name)
}

/// Commits `desired` on sensor 1's card and waits until it is saved and the heater shows `badge`.
async fn write_and_see_the_heater(s: &Session, desired: f64, badge: &str) {
    set_input(s, &card(1, ".num-desired"), (desired * 2.0).round() / 2.0, true).await;
    s.wait_for("saved", PATIENCE, async |s| {
        s.text_of(&card(1, ".save-status"))
            .await
            .filter(|t| t.contains("saved"))
    })
    .await
    .expect("saved");
    s.wait_for(&format!("heater {badge}"), PATIENCE, async |s| {
        s.text_of(&card(1, ".heater-badge")).await.filter(|t| t == badge)
    })
    .await
    .expect("the heater follows the new band");
}

/// One heater decision as the page shows it: (sensor, event time, "ON"/"OFF").
type Switch = (i64, i64, String);

/// Runs `script`, which returns an array of rows, and keeps the rows `read` understands.
async fn rows<T>(s: &Session, script: &str, read: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    let rows = s.execute(script, vec![]).await.unwrap_or(Value::Null);
    rows.as_array().into_iter().flatten().filter_map(read).collect()
}

/// The decision log's rows, from their `data-*` attributes.
async fn logged_decisions(s: &Session) -> Vec<Switch> {
    rows(
        s,
        "return [...document.querySelectorAll('#decision-log tr.log-row')] \
           .map(r => [Number(r.dataset.sensor), Number(r.dataset.tMs), r.dataset.command]);",
        |r| {
            Some((
                r.get(0)?.as_i64()?,
                r.get(1)?.as_i64()?,
                r.get(2)?.as_str()?.to_owned(),
            ))
        },
    )
    .await
}

/// The heater switches drawn in a card's strip, from its canvas's `data-heater` (`t_ms:on|off …`).
async fn drawn_switches(s: &Session, sensor: i64) -> Vec<Switch> {
    let attr = s
        .execute(
            "const c = document.querySelector(arguments[0]); return c && c.getAttribute('data-heater');",
            vec![json!(card(sensor as i32, "canvas"))],
        )
        .await
        .unwrap_or(Value::Null);
    attr.as_str()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|sw| {
            let (t, c) = sw.split_once(':')?;
            Some((sensor, t.parse().ok()?, c.to_uppercase()))
        })
        .collect()
}

/// A fresh browser session on `url`, once the page's connection state reads `state` ("live" with the
/// token, "read-only" without).
async fn open_page(driver: &mut Driver, url: &str, state: &str) -> Session {
    let s = driver.session(1280, 1000).await.expect("session");
    s.goto(url).await.expect("navigate");
    s.wait_for(&format!("connection state {state}"), PATIENCE, async |s| {
        s.text_of("#conn-state").await.filter(|t| t == state)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    s
}

// Multi-threaded: the server and fantoccini's session task run beside the test body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_with_the_token_watches_previews_commits_and_sees_the_heater_follow() {
    let (addr, _stop) = start_server().await;
    let mut driver = Driver::start().await.expect("chromedriver");
    let s = open_page(&mut driver, &format!("http://{addr}/#token={TOKEN}"), "live").await;
    let hash = s.execute("return location.hash", vec![]).await.expect("script");
    assert_eq!(
        hash,
        Value::String(String::new()),
        "the token is removed from the address bar"
    );
    let temp = s
        .wait_for("a live temperature on sensor 1", PATIENCE, async |s| {
            number(s, &card(1, ".current-temp")).await
        })
        .await
        .expect("temperature renders");
    assert!((-50.0..150.0).contains(&temp), "{temp}");
    assert_eq!(s.find_all(".card").await.expect("cards").len(), 3);
    let source = s
        .wait_for("the card's source", PATIENCE, async |s| {
            s.text_of(&card(1, ".source")).await
        })
        .await
        .expect("source line");
    assert_eq!(source, "simulated room");

    // Dragging (input events only) previews: the what-if overlay appears with its switch counts.
    let input = s.find(&card(1, ".num-desired")).await.expect("input");
    let desired_now: f64 = s
        .property(&input, "value")
        .await
        .expect("value")
        .and_then(|v| v.parse().ok())
        .expect("desired");
    set_input(&s, &card(1, ".slider-desired"), desired_now + 5.0, false).await;
    let whatif = s
        .wait_for("the what-if overlay", PATIENCE, async |s| {
            s.text_of(&card(1, ".whatif"))
                .await
                .filter(|t| t.contains("what-if"))
        })
        .await
        .expect("what-if");
    assert!(
        whatif.chars().any(|c| c.is_ascii_digit()),
        "shows counts: {whatif}"
    );
    s.screenshot(&artifact("dashboard-whatif.png"))
        .await
        .expect("screenshot");

    // Committing a band far above the room turns its heater on; far below turns it off.
    let room = number(&s, &card(1, ".current-temp")).await.expect("temperature");
    for (desired, badge) in [(room + 10.0, "ON"), (room - 10.0, "OFF")] {
        set_input(&s, &card(1, ".num-desired"), (desired * 2.0).round() / 2.0, true).await;
        s.wait_for("saved", PATIENCE, async |s| {
            s.text_of(&card(1, ".save-status"))
                .await
                .filter(|t| t.contains("saved"))
        })
        .await
        .expect("saved");
        s.wait_for(&format!("heater {badge}"), PATIENCE, async |s| {
            s.text_of(&card(1, ".heater-badge")).await.filter(|t| t == badge)
        })
        .await
        .expect("the heater follows the new band");
        s.wait_for("a decision row", PATIENCE, async |s| {
            s.text_of("#decision-log")
                .await
                .filter(|t| t.to_uppercase().contains(badge))
        })
        .await
        .expect("decision logged");
    }
    assert!(
        s.find("#divergence").await.is_err(),
        "the browser's control core agrees with the server"
    );
    let bytes = s
        .screenshot(&artifact("dashboard.png"))
        .await
        .expect("screenshot");
    assert!(bytes > 10_000, "a real screenshot ({bytes} bytes)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_the_dashboard_is_live_but_read_only() {
    let (addr, _stop) = start_server().await;
    let mut driver = Driver::start().await.expect("chromedriver");
    let s = driver.session(1000, 800).await.expect("session");
    s.goto(&format!("http://{addr}/")).await.expect("navigate");
    if let Err(e) = s
        .wait_for("read-only state", PATIENCE, async |s| {
            s.text_of("#conn-state").await.filter(|t| t == "read-only")
        })
        .await
    {
        let shot = s.screenshot(&artifact("dashboard-readonly-failed.png")).await;
        panic!(
            "{e}; connection state {:?}; finding <body>: {:?}; screenshot: {shot:?}",
            s.text_of("#conn-state").await,
            s.find("body").await.err()
        );
    }
    s.wait_for("live data", PATIENCE, async |s| {
        number(s, &card(2, ".current-temp")).await
    })
    .await
    .expect("data is live");
    let note = s.text_of(".readonly-note").await.expect("a read-only note");
    assert!(
        note.to_lowercase().contains("token"),
        "says how to get write access: {note}"
    );
    for css in [".slider-desired", ".slider-up", ".slider-down", ".num-desired"] {
        let e = s.find(&card(2, css)).await.expect("control");
        assert_eq!(
            s.property(&e, "disabled").await.expect("property").as_deref(),
            Some("true"),
            "{css} disabled"
        );
    }
    // No group setpoints and no schedule editing without the token; the schedules are still shown.
    assert!(s.find(".select-card").await.is_err(), "no selection boxes");
    assert!(s.find(".group").await.is_err(), "no group panel");
    click(&s, ".schedules-toggle").await;
    s.find("#schedules").await.expect("the schedules panel opens");
    assert!(s.find(".new-schedule").await.is_err(), "no New schedule");
    s.screenshot(&artifact("dashboard-readonly.png"))
        .await
        .expect("screenshot");
}

/// Opens sensor 1's setpoint history and waits for a change by `author` (the token's name) in it.
async fn history_shows(s: &Session, author: &str) -> String {
    let toggle = s.find(&card(1, ".history-toggle")).await.expect("history toggle");
    s.click(&toggle).await.expect("open history");
    s.wait_for(
        &format!("a change by {author} in the history"),
        PATIENCE,
        async |s| {
            s.text_of(&card(1, ".setpoint-history"))
                .await
                .filter(|t| t.contains(author))
        },
    )
    .await
    .expect("history lists the author")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heater_history_and_setpoint_changes_from_before_the_page_opened_are_shown() {
    let (addr, _stop) = start_server().await;
    let mut driver = Driver::start().await.expect("chromedriver");

    // Someone with the token switches sensor 1's heater on and then off (seconds, not the room's minutes).
    let a = open_page(&mut driver, &format!("http://{addr}/#token={TOKEN}"), "live").await;
    let room = a
        .wait_for("a live temperature on sensor 1", PATIENCE, async |s| {
            number(s, &card(1, ".current-temp")).await
        })
        .await
        .expect("temperature");
    write_and_see_the_heater(&a, room + 10.0, "ON").await;
    // The history names who made the change (the server's answer), and a change made while it is open is
    // added to it (the live broadcast).
    let listed = history_shows(&a, "admin").await;
    assert!(listed.contains('→'), "from → to: {listed}");
    write_and_see_the_heater(&a, room - 10.0, "OFF").await;
    a.wait_for("the second change in the open history", PATIENCE, async |s| {
        s.text_of(&card(1, ".setpoint-history"))
            .await
            .filter(|t| t.matches("admin").count() >= 2)
    })
    .await
    .expect("live change listed");
    let before: Vec<Switch> = a
        .wait_for("both switches of sensor 1 in the log", PATIENCE, async |s| {
            let rows = logged_decisions(s).await;
            let ones = rows.iter().filter(|r| r.0 == 1).count();
            (ones >= 2).then_some(rows)
        })
        .await
        .expect("decisions logged");
    a.close().await.expect("close");

    // A new reader opens the page afterwards: no token, a fresh browser, nothing live of the above.
    let b = open_page(&mut driver, &format!("http://{addr}/"), "read-only").await;
    let opened = b
        .execute("return performance.timeOrigin", vec![])
        .await
        .expect("script")
        .as_f64()
        .expect("a time") as i64;
    assert!(
        before.iter().all(|(_, t, _)| *t < opened),
        "the fixture: every decision above was made before the page opened"
    );

    // Every decision the first page saw is in the new page's log, once.
    let logged = b
        .wait_for("the earlier decisions in the log", PATIENCE, async |s| {
            let rows = logged_decisions(s).await;
            before.iter().all(|d| rows.contains(d)).then_some(rows)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: saw {before:?}"));
    let mut keys: Vec<_> = logged.iter().map(|(s, t, _)| (*s, *t)).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), logged.len(), "no row twice: {logged:?}");

    // And in sensor 1's heater strip: both switches, made before the page existed, are drawn.
    let ones: Vec<Switch> = before.iter().filter(|d| d.0 == 1).cloned().collect();
    let drawn = b
        .wait_for(
            "sensor 1's earlier switches in its heater strip",
            PATIENCE,
            async |s| {
                let drawn = drawn_switches(s, 1).await;
                ones.iter().all(|d| drawn.contains(d)).then_some(drawn)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: expected {ones:?}"));
    assert!(
        drawn.iter().filter(|(_, t, _)| *t < opened).count() >= 2,
        "more than the last command: {drawn:?}"
    );

    // A reader may ask for the change history too; the changes made before it came are attributed.
    let listed = history_shows(&b, "admin").await;
    assert!(
        listed.matches("admin").count() >= 2,
        "both writes are listed: {listed}"
    );
    b.screenshot(&artifact("dashboard-history.png"))
        .await
        .expect("screenshot");
}

/// Sets a text input's value and fires `input`, as typing does.
async fn set_text(s: &Session, css: &str, value: &str) {
    let e = s.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    let script = "const [el, v] = arguments; \
                  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set; \
                  setter.call(el, v); \
                  el.dispatchEvent(new Event('input', {bubbles: true}));";
    s.execute(script, vec![Session::arg(&e), json!(value)])
        .await
        .unwrap_or_else(|e| panic!("set {css}: {e}"));
}

/// Ticks or unticks a checkbox and fires `change`, as a click does.
async fn set_checked(s: &Session, css: &str, on: bool) {
    let e = s.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    let script = "const [el, on] = arguments; \
                  if (el.checked !== on) { el.checked = on; el.dispatchEvent(new Event('change', {bubbles: true})); }";
    s.execute(script, vec![Session::arg(&e), json!(on)])
        .await
        .unwrap_or_else(|e| panic!("tick {css}: {e}"));
}

async fn click(s: &Session, css: &str) {
    let e = s.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    s.click(&e).await.unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// A card as the page shows it: the setpoint in force (desired, version) and the save status.
#[derive(Clone, Debug, PartialEq)]
struct Shown {
    desired: f64,
    version: u64,
    status: String,
}

/// Every card on the page, by sensor, once each shows a setpoint.
async fn cards(s: &Session) -> BTreeMap<i64, Shown> {
    rows(
        s,
        "return [...document.querySelectorAll('.card')].map(c => { \
           const b = c.querySelector('.band[data-version]'); const st = c.querySelector('.save-status'); \
           return [Number(c.dataset.sensor), b && Number(b.dataset.desired), b && Number(b.dataset.version), \
                   st ? st.textContent : '']; });",
        |r| {
            Some((
                r.get(0)?.as_i64()?,
                Shown {
                    desired: r.get(1)?.as_f64()?,
                    version: r.get(2)?.as_u64()?,
                    status: r.get(3)?.as_str()?.to_owned(),
                },
            ))
        },
    )
    .await
    .into_iter()
    .collect()
}

/// `GET path` on the server's HTTP API (no token: the read side is open), over a plain HTTP/1.1
/// connection; the JSON body of a 200.
async fn api_get(addr: SocketAddr, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("response");
        raw
    };
    let raw = tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("an answer in time");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers and body");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// Each sensor's setpoint in force as `GET /api/v1/sensors` reports it: (desired, version, author).
async fn api_setpoints(addr: SocketAddr) -> BTreeMap<i64, (f64, u64, String)> {
    let sensors = api_get(addr, "/api/v1/sensors").await;
    sensors
        .as_array()
        .expect("a list of sensors")
        .iter()
        .filter_map(|v| {
            let sp = v.get("setpoint")?;
            Some((
                v.get("sensor")?.as_i64()?,
                (
                    sp.get("desired")?.as_f64()?,
                    sp.get("version")?.as_u64()?,
                    sp.get("author")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
            ))
        })
        .collect()
}

/// Waits until every one of `sensors`' cards shows `desired` at the version after `from`'s, saved.
async fn wait_saved(
    s: &Session,
    sensors: &[i64],
    desired: f64,
    from: &BTreeMap<i64, Shown>,
) -> BTreeMap<i64, Shown> {
    s.wait_for(
        &format!("{desired} saved on sensors {sensors:?}, one version up each"),
        PATIENCE,
        async |s| {
            let now = cards(s).await;
            sensors
                .iter()
                .all(|id| {
                    now.get(id).is_some_and(|c| {
                        c.desired == desired
                            && c.version == from[id].version + 1
                            && c.status.contains("saved")
                    })
                })
                .then_some(now)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A page with the token, once all `n` cards show their setpoints; and what they show.
async fn writer_page(driver: &mut Driver, addr: SocketAddr, n: usize) -> (Session, BTreeMap<i64, Shown>) {
    let s = open_page(driver, &format!("http://{addr}/#token={TOKEN}"), "live").await;
    let shown = s
        .wait_for(
            &format!("{n} cards, each with its setpoint"),
            PATIENCE,
            async |s| Some(cards(s).await).filter(|c| c.len() == n),
        )
        .await
        .expect("cards");
    (s, shown)
}

/// `by` above the highest desired value any card shows: a value no card has, so every change is visible.
fn above_all(cards: &BTreeMap<i64, Shown>, by: f64) -> f64 {
    cards.values().map(|c| c.desired).fold(f64::MIN, f64::max).floor() + by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_setpoint_reaches_every_selected_card_each_on_its_own_version() {
    let (addr, _stop) = start_server_with(12, 100).await;
    let mut driver = Driver::start().await.expect("chromedriver");
    let (s, before) = writer_page(&mut driver, addr, 12).await;
    let high = above_all(&before, 2.5);

    // Three cards ticked by hand.
    for sensor in [1, 3, 5] {
        click(&s, &card(sensor, ".select-card")).await;
    }
    s.wait_for("3 selected", PATIENCE, async |s| {
        s.text_of(".group-count").await.filter(|t| t == "3 selected")
    })
    .await
    .expect("the panel counts the selection");
    set_input(&s, ".group .num-desired", high, true).await;
    let apply = s.text_of(".apply-group").await.unwrap_or_default();
    assert_eq!(apply, "Apply to 3 sensors");
    click(&s, ".apply-group").await;
    let after = wait_saved(&s, &[1, 3, 5], high, &before).await;
    for (id, was) in &before {
        if ![1, 3, 5].contains(id) {
            assert_eq!(
                (after[id].desired, after[id].version),
                (was.desired, was.version),
                "unselected sensor {id} unchanged"
            );
            assert_eq!(after[id].status, "", "sensor {id} was not written");
        }
    }
    s.wait_for("the panel's tally", PATIENCE, async |s| {
        s.text_of(".group-status").await.filter(|t| t.contains("3 saved"))
    })
    .await
    .expect("3 saved");
    // The HTTP API reports the same, and names who made the change.
    let api = api_setpoints(addr).await;
    for (id, shown) in &after {
        assert_eq!(
            (api[id].0, api[id].1),
            (shown.desired, shown.version),
            "sensor {id} over HTTP"
        );
        if [1, 3, 5].contains(id) {
            assert_eq!(api[id].2, "admin", "sensor {id}'s author");
        }
    }
    s.screenshot(&artifact("dashboard-group.png"))
        .await
        .expect("screenshot");

    // Everything the filter shows: "1" matches sensors 1, 10, 11 and 12.
    click(&s, ".clear-selection").await;
    set_text(&s, ".toolbar input[type=search]", "1").await;
    s.wait_for("the filtered cards", PATIENCE, async |s| {
        let shown: Vec<i64> = cards(s).await.into_keys().collect();
        (shown == [1, 10, 11, 12]).then_some(())
    })
    .await
    .expect("filter applies");
    click(&s, ".select-shown").await;
    s.wait_for("4 selected", PATIENCE, async |s| {
        s.text_of(".group-count").await.filter(|t| t == "4 selected")
    })
    .await
    .expect("select all shown");
    let low = high - 4.0;
    set_input(&s, ".group .num-desired", low, true).await;
    click(&s, ".apply-group").await;
    let mut from = after.clone();
    from.retain(|id, _| [1, 10, 11, 12].contains(id));
    wait_saved(&s, &[1, 10, 11, 12], low, &from).await;
    let api = api_setpoints(addr).await;
    for (id, was) in &after {
        let want = if [1, 10, 11, 12].contains(id) {
            (low, was.version + 1)
        } else {
            (was.desired, was.version)
        };
        assert_eq!(
            (api[id].0, api[id].1),
            want,
            "sensor {id} over HTTP after the filtered group"
        );
    }
}

/// `at` (ms since the epoch, UTC) as the schedule editor's day (`mon`…) and `HH:MM:SS`.
fn utc_day_and_time(at_ms: i64) -> (&'static str, String) {
    const DAYS: [&str; 7] = ["thu", "fri", "sat", "sun", "mon", "tue", "wed"];
    let secs = at_ms.div_euclid(1000);
    let day = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let t = secs.rem_euclid(86_400);
    (day, format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60))
}

/// The `data-next-step-ms` of a card's next-step line, if it shows one.
async fn next_step_ms(s: &Session, sensor: i32) -> Option<i64> {
    s.execute(
        "const e = document.querySelector(arguments[0]); return e && Number(e.dataset.nextStepMs);",
        vec![json!(card(sensor, ".next-step"))],
    )
    .await
    .ok()?
    .as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_made_in_the_editor_shows_its_next_step_and_then_sets_the_rooms() {
    const NAME: &str = "e2e-night";
    let (addr, _stop) = start_server().await;
    let mut driver = Driver::start().await.expect("chromedriver");
    let (s, before) = writer_page(&mut driver, addr, 3).await;
    let target = above_all(&before, 3.5);

    click(&s, ".schedules-toggle").await;
    click(&s, ".new-schedule").await;
    let zone = s.find(".schedule-zone").await.expect("zone input");
    let browser_zone = s
        .property(&zone, "value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(
        !browser_zone.is_empty(),
        "a new schedule starts in the browser's zone"
    );
    set_text(&s, ".schedule-name", NAME).await;
    set_text(&s, ".schedule-sensors", "1, 2").await;
    set_input(&s, ".step-row[data-step=\"0\"] .step-desired", target, false).await;

    // A zone the server does not know: its answer, naming the problem, is shown and nothing is saved.
    set_text(&s, ".schedule-zone", "Mars/Olympus_Mons").await;
    click(&s, ".save-schedule").await;
    let refusal = s
        .wait_for("the server's refusal", PATIENCE, async |s| {
            s.text_of(".schedule-status")
                .await
                .filter(|t| t.starts_with("error"))
        })
        .await
        .expect("an error");
    assert!(refusal.contains("invalid_schedule"), "the code: {refusal}");

    // In UTC, today, a few seconds from now (the server's scheduler fires it at that second).
    set_text(&s, ".schedule-zone", "UTC").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let at_ms = (now_ms / 1000 + 10) * 1000;
    let (day, time) = utc_day_and_time(at_ms);
    for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
        set_checked(
            &s,
            &format!(".step-row[data-step=\"0\"] input[data-day={d}]"),
            d == day,
        )
        .await;
    }
    set_text(&s, ".step-row[data-step=\"0\"] .step-time", &time).await;
    click(&s, ".save-schedule").await;
    s.wait_for("the saved schedule in the list", PATIENCE, async |s| {
        let listed = s.text_of(&format!("[data-schedule=\"{NAME}\"]")).await?;
        s.find(".schedule-editor").await.is_err().then_some(listed)
    })
    .await
    .expect("listed, editor closed");

    // Both cards show the step to come; the third is not scheduled.
    for sensor in [1, 2] {
        let shown = s
            .wait_for(&format!("sensor {sensor}'s next step"), PATIENCE, async |s| {
                (next_step_ms(s, sensor).await == Some(at_ms)).then_some(())
            })
            .await;
        if let Err(e) = shown {
            let line = s.text_of(&card(sensor, ".next-step")).await;
            panic!("{e}; the card shows {line:?}");
        }
        let text = s.text_of(&card(sensor, ".next-step")).await.unwrap_or_default();
        assert!(
            text.contains(NAME) && text.contains(&format!("{target:.1}")),
            "{text}"
        );
    }
    assert!(
        s.find(&card(3, ".next-step")).await.is_err(),
        "sensor 3 has no schedule"
    );

    // The screenshot: a selection, and the schedule open in the editor.
    for sensor in [1, 2] {
        click(&s, &card(sensor, ".select-card")).await;
    }
    click(&s, &format!("[data-schedule=\"{NAME}\"] .edit-schedule")).await;
    s.wait_for("the editor on the schedule", PATIENCE, async |s| {
        s.find(".schedule-editor").await.ok()
    })
    .await
    .expect("editor open");
    s.screenshot(&artifact("dashboard-schedules.png"))
        .await
        .expect("screenshot");
    click(&s, ".cancel-schedule").await;

    // The step fires: the rooms get its setpoint, and next week's step is next.
    let fired = s
        .wait_for("the step to fire on both cards", PATIENCE, async |s| {
            let now = cards(s).await;
            [1, 2]
                .iter()
                .all(|id| now.get(id).is_some_and(|c| c.desired == target))
                .then_some(now)
        })
        .await
        .expect("fired");
    assert_eq!(fired[&3].desired, before[&3].desired, "sensor 3 untouched");
    for sensor in [1, 2] {
        s.wait_for(
            &format!("sensor {sensor}'s following step"),
            PATIENCE,
            async |s| (next_step_ms(s, sensor).await == Some(at_ms + 7 * 86_400_000)).then_some(()),
        )
        .await
        .expect("a week later");
    }
    let author = format!("schedule:{NAME}");
    let listed = history_shows(&s, &author).await;
    assert!(listed.contains(&format!("{target:.1}")), "{listed}");
    let api = api_setpoints(addr).await;
    for sensor in [1, 2] {
        assert_eq!(
            (api[&sensor].0, api[&sensor].2.as_str()),
            (target, author.as_str())
        );
    }
}

/// A building of a hundred thousand rooms (protocol 1 could not connect past about 7,000): the page opens
/// with the building's count, a compact first page of 120 live cards and 834 pages, finds a far room by
/// typing its id, and shows only the rooms heating when asked — each answered by the bridge over every
/// room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_building_of_a_hundred_thousand_rooms_opens_and_a_far_room_is_found_by_its_id() {
    let rooms = 100_000;
    // A reading a minute per room: the debug build keeps up on two cores.
    let (addr, _stop) = start_server_with(rooms, 60_000).await;
    let mut driver = Driver::start().await.expect("chromedriver");
    let s = open_page(&mut driver, &format!("http://{addr}/#token={TOKEN}"), "live").await;
    let patience = Duration::from_secs(90);
    s.wait_for("every room counted", patience, async |s| {
        s.text_of("#totals")
            .await
            .filter(|t| t.starts_with("100000 sensors"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    s.wait_for("the first page: 120 cards, room 1 live", patience, async |s| {
        let cards = s.find_all(".card[data-sensor]").await.ok()?;
        let temp = s
            .text_of(&card(1, ".current-temp"))
            .await
            .filter(|t| t.contains('°'))?;
        (cards.len() == 120).then_some(temp)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let pager = s.text_of(".pager").await.unwrap_or_default();
    assert!(pager.contains("1 / 834"), "{pager}");

    let filter = s.find("input[type=search]").await.expect("the filter");
    s.send_keys(&filter, "98765").await.expect("typed");
    s.wait_for("room 98765 alone, live", patience, async |s| {
        let cards = s.find_all(".card[data-sensor]").await.ok()?;
        let temp = s
            .text_of(&card(98_765, ".current-temp"))
            .await
            .filter(|t| t.contains('°'))?;
        (cards.len() == 1).then_some(temp)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Only the rooms heating, among all of them: every card shown says ON.
    s.execute(
        "const i = document.querySelector('input[type=search]'); i.value = ''; \
         i.dispatchEvent(new Event('input', { bubbles: true })); \
         const o = document.querySelector('#only'); o.value = 'heater_on'; \
         o.dispatchEvent(new Event('change', { bubbles: true }));",
        vec![],
    )
    .await
    .expect("script");
    let badges = s
        .wait_for("a page of heating rooms", patience, async |s| {
            let badges: Vec<String> = s
                .execute(
                    "return [...document.querySelectorAll('.card[data-sensor] .heater-badge')].map(b => b.textContent)",
                    vec![],
                )
                .await
                .ok()?
                .as_array()?
                .iter()
                .filter_map(|b| b.as_str().map(str::to_owned))
                .collect();
            (badges.len() == 120).then_some(badges)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(badges.iter().all(|b| b.contains("ON")), "{badges:?}");
}

/// Picks an option of a `<select>` and fires `change`, as a person choosing it does.
async fn choose(s: &Session, css: &str, value: &str) {
    let e = s.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    let script =
        "const [el, v] = arguments; el.value = v; el.dispatchEvent(new Event('change', {bubbles: true}));";
    s.execute(script, vec![Session::arg(&e), json!(value)])
        .await
        .unwrap_or_else(|e| panic!("choose {css}: {e}"));
}

/// Waits until sensor 1's setpoint in force (API) satisfies `ok`, and its card says saved; returns it.
async fn in_force(s: &Session, addr: SocketAddr, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let sp = s
        .wait_for(what, PATIENCE, async |_| {
            Some(api_get(addr, "/api/v1/sensors/1/setpoint").await).filter(|v| ok(v))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.wait_for(&format!("{what}: saved"), PATIENCE, async |s| {
        s.text_of(&card(1, ".save-status"))
            .await
            .filter(|t| t.contains("saved"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    sp
}

/// A person switches a room to TPI from its card, shortens the cycle and sets a target just above the
/// room, and the heater runs TPI's cycle (On, then Off, under that setpoint's version); then switches the
/// room off: the heater goes Off and stays Off while readings keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_switched_to_tpi_and_to_off_from_its_card() {
    let (addr, _stop) = start_server_with(3, 100).await;
    let mut driver = Driver::start().await.expect("chromedriver");
    let (s, _) = writer_page(&mut driver, addr, 3).await;

    choose(&s, &card(1, ".policy-kind"), "tpi").await;
    // Picking a policy is a draft: the card previews what TPI would have done over the chart window, and
    // nothing is sent until Save.
    let preview = s
        .wait_for("the what-if of TPI", PATIENCE, async |s| {
            s.text_of(&card(1, ".whatif"))
                .await
                .filter(|t| t.contains("what-if:"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("preview of TPI: {preview}");
    s.screenshot(&artifact("policy-tpi-preview.png"))
        .await
        .expect("screenshot");
    let before = api_get(addr, "/api/v1/sensors/1/setpoint").await;
    assert_ne!(
        before["policy"]["kind"], "tpi",
        "a picked policy is not sent before Save: {before}"
    );
    click(&s, &card(1, ".save")).await;
    let sp = in_force(&s, addr, "policy TPI", |v| v["policy"]["kind"] == "tpi").await;
    assert_eq!(sp["policy"]["cycle_s"], 600, "the default cycle: {sp}");
    set_input(&s, &card(1, ".num-cycle"), 10.0, true).await;
    in_force(&s, addr, "a 10 s cycle", |v| v["policy"]["cycle_s"] == 10).await;
    // A target 0.8 °C above the room: a share of 0.6 × 0.8 ≈ 48 % of each cycle.
    let room = api_get(addr, "/api/v1/sensors/1").await;
    let temperature = room["reading"]["temperature"].as_f64().expect("a reading");
    let target = ((temperature + 0.8) * 10.0).round() / 10.0;
    set_input(&s, &card(1, ".num-desired"), target, true).await;
    let sp = in_force(&s, addr, "the new target", |v| {
        v["desired"].as_f64() == Some(target)
    })
    .await;
    let version = sp["version"].as_u64().expect("version");
    assert_eq!(
        sp["policy"]["kind"], "tpi",
        "the target alone keeps the policy: {sp}"
    );
    let switched = s
        .wait_for("On and Off under the TPI setpoint", PATIENCE, async |_| {
            let history = api_get(addr, "/api/v1/sensors/1/history").await;
            let commands: Vec<String> = history["decisions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["setpoint_version"].as_u64() == Some(version))
                .filter_map(|d| d["command"].as_str().map(str::to_owned))
                .collect();
            (commands.contains(&"on".to_owned()) && commands.contains(&"off".to_owned())).then_some(commands)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("TPI decisions under version {version}: {switched:?}");
    let band = s.text_of(&card(1, ".band")).await.unwrap_or_default();
    assert!(
        band.contains("TPI 10 s × 0.6"),
        "the card says how the room is controlled: {band}"
    );
    s.screenshot(&artifact("policy-tpi.png"))
        .await
        .expect("screenshot");

    choose(&s, &card(1, ".mode"), "off").await;
    click(&s, &card(1, ".save")).await;
    let sp = in_force(&s, addr, "mode off", |v| v["mode"] == "off").await;
    assert_eq!(
        sp["policy"]["kind"], "tpi",
        "the mode alone keeps the policy: {sp}"
    );
    s.wait_for("heater OFF", PATIENCE, async |s| {
        s.text_of(&card(1, ".heater-badge")).await.filter(|t| t == "OFF")
    })
    .await
    .expect("the heater goes off");
    // Three more seconds of readings: still Off, and no On decided under the mode-off version.
    let off_version = sp["version"].as_u64().expect("version");
    let since = api_get(addr, "/api/v1/sensors/1").await["reading"]["t_ms"]
        .as_i64()
        .expect("t_ms");
    s.wait_for("3 s of readings in mode off", PATIENCE, async |_| {
        let now = api_get(addr, "/api/v1/sensors/1").await;
        now["reading"]["t_ms"].as_i64().filter(|t| *t >= since + 3_000)
    })
    .await
    .expect("readings keep coming");
    let history = api_get(addr, "/api/v1/sensors/1/history").await;
    let on_after = history["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["setpoint_version"].as_u64() == Some(off_version) && d["command"] == "on")
        .count();
    assert_eq!(on_after, 0, "On in mode off: {history}");
    assert_eq!(s.text_of(&card(1, ".heater-badge")).await.as_deref(), Some("OFF"));
    s.screenshot(&artifact("policy-off.png"))
        .await
        .expect("screenshot");
}
