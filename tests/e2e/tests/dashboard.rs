//! The dashboard as a person uses it: the real server (`setpoint run`, embedded bus, simulator) serving the
//! Trunk-built dashboard, driven in headless Chromium through chromedriver.
//!
//! Needs `dist/` (built by `cargo xtask test` before the tests run; `SETPOINT_DIST` points elsewhere).

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

/// Starts `setpoint run` in-process on an ephemeral port, on the test's runtime.
async fn start_server() -> (std::net::SocketAddr, StopOnDrop) {
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
    let options = RunOptions {
        bridge: Some(bridge),
        controller: ControllerOptions {
            config: Config::default(),
            tick: Duration::from_secs(1),
        },
        run_controller: true,
        simulator: Some(SimConfig {
            rooms: 3,
            first_sensor: 1,
            seed: 11,
            interval_ms: 100,
        }),
        seed_setpoints: true,
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

/// The decision log's rows, from their `data-*` attributes.
async fn logged_decisions(s: &Session) -> Vec<Switch> {
    let rows = s
        .execute(
            "return [...document.querySelectorAll('#decision-log tr.log-row')] \
               .map(r => [Number(r.dataset.sensor), Number(r.dataset.tMs), r.dataset.command]);",
            vec![],
        )
        .await
        .unwrap_or(Value::Null);
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r.get(0)?.as_i64()?,
                r.get(1)?.as_i64()?,
                r.get(2)?.as_str()?.to_owned(),
            ))
        })
        .collect()
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
