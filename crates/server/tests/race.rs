//! Two bridges on one Kafka cluster, two people writing the same sensor on the same base version at the same
//! moment: exactly one write takes effect, the other is answered `conflict` with the value in force, and
//! the controller, both bridges and both browsers agree which — the `tempset` log is the arbiter.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::kafka::*;
use common::*;
use setpoint::app::{self, Running};
use setpoint::bus::kafka::KafkaBus;
use setpoint::metrics::Metrics;
use setpoint_control::Command;
use setpoint_testkit::ws::{connect, Client, PATIENCE};
use setpoint_wire::ws::{ErrorCode, ServerMessage, SetpointMsg};

const SENSOR: i32 = 1;
const ROUNDS: usize = 6;

/// What a write got: `Ok(())` for an ack, `Err(current)` for a conflict.
async fn answer(c: &mut Client, id: &str) -> Result<(), Option<SetpointMsg>> {
    c.until(|m| match m {
        ServerMessage::Ack { request_id, .. } if request_id == id => Some(Ok(())),
        ServerMessage::Error(e) if e.request_id.as_deref() == Some(id) => {
            assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
            Some(Err(e.current.clone()))
        }
        _ => None,
    })
    .await
}

fn in_force(server: &Running<KafkaBus>) -> Option<(u64, f64)> {
    server
        .hub
        .as_ref()
        .and_then(|h| h.setpoint(SENSOR))
        .map(|s| (s.version, s.desired))
}

/// Waits until both bridges show the same setpoint, and returns it.
async fn agreed(a: &Running<KafkaBus>, b: &Running<KafkaBus>) -> (u64, f64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let (Some(x), Some(y)) = (in_force(a), in_force(b)) {
            if x == y {
                return x;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the bridges never agreed: {:?} vs {:?}",
            in_force(a),
            in_force(b)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The setpoints a client was shown for `version`, and the decisions it saw under it, over `quiet`.
/// What `c` is shown under `version` within `quiet`; when `until_a_command`, the window is stretched
/// (up to [`PATIENCE`]) until a command arrives, so a slow machine's late decision is not mistaken for none.
async fn shown(
    c: &mut Client,
    version: u64,
    quiet: Duration,
    until_a_command: bool,
) -> (Vec<f64>, Vec<Command>) {
    let (mut setpoints, mut commands) = (Vec::new(), Vec::new());
    let started = tokio::time::Instant::now();
    let mut deadline = started + quiet;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(m) = c.next_within(left).await else {
            if until_a_command && commands.is_empty() && started.elapsed() < PATIENCE {
                deadline += quiet;
                continue;
            }
            break;
        };
        match m {
            ServerMessage::Setpoint(s) if s.sensor == SENSOR && s.version == version => {
                setpoints.push(s.desired)
            }
            ServerMessage::Decision(d) if d.sensor == SENSOR && d.setpoint_version == version => {
                commands.push(d.command)
            }
            _ => {}
        }
    }
    (setpoints, commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_racing_on_one_sensor_agree_on_the_one_write_that_won() {
    let broker = Broker::start();
    let t = topics("race");
    // Bridge A runs with the simulator and the controller; bridge B is a second process's bridge alone,
    // with its own Kafka clients.
    let a = app::start(
        kafka_bus(&broker, &t).await,
        options(1, 100),
        Arc::new(Metrics::default()),
    )
    .await
    .expect("a starts");
    let mut only_bridge = options(1, 100);
    only_bridge.simulator = None;
    only_bridge.run_controller = false;
    only_bridge.seed_setpoints = false;
    let b = app::start(
        kafka_bus(&broker, &t).await,
        only_bridge,
        Arc::new(Metrics::default()),
    )
    .await
    .expect("b starts");
    let mut alice = connect(a.addr.expect("a"), Some(TOKEN), None)
        .await
        .expect("connects");
    let mut bob = connect(b.addr.expect("b"), Some(TOKEN), None)
        .await
        .expect("connects");
    // Both browsers watch the sensor they race on.
    alice.subscribe(Some(&[SENSOR])).await;
    bob.subscribe(Some(&[SENSOR])).await;
    let (mut wins_a, mut wins_b) = (0, 0);
    for round in 0..ROUNDS {
        // Start each round with the heater Off, under a setpoint both bridges show.
        let (base, _) = agreed(&a, &b).await;
        let off = format!("off-{round}");
        alice
            .send(&set_setpoint(&off, SENSOR, -40.0, 1.0, 1.0, Some(base)))
            .await;
        assert_eq!(
            answer(&mut alice, &off).await,
            Ok(()),
            "round {round}: the reset write"
        );
        let deadline = Instant::now() + PATIENCE;
        while a
            .hub
            .as_ref()
            .and_then(|h| h.last_command(SENSOR))
            .map(|d| d.command)
            != Some(Command::Off)
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: the heater never turned Off"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (base, _) = agreed(&a, &b).await;

        // The race: Alice asks for heat, Bob for none, both on `base`, at once, through different bridges.
        let (ida, idb) = (format!("alice-{round}"), format!("bob-{round}"));
        let (heat, cold) = (90.0, -39.0);
        let (ra, rb) = tokio::join!(
            async {
                alice
                    .send(&set_setpoint(&ida, SENSOR, heat, 1.0, 1.0, Some(base)))
                    .await;
                answer(&mut alice, &ida).await
            },
            async {
                bob.send(&set_setpoint(&idb, SENSOR, cold, 1.0, 1.0, Some(base)))
                    .await;
                answer(&mut bob, &idb).await
            }
        );
        let (winner, loser_told) = match (&ra, &rb) {
            (Ok(()), Err(current)) => (heat, current.clone()),
            (Err(current), Ok(())) => (cold, current.clone()),
            other => panic!("round {round}: exactly one write must win: {other:?}"),
        };
        if winner == heat {
            wins_a += 1;
        } else {
            wins_b += 1;
        }
        let version = base + 1;
        assert_eq!(
            loser_told.map(|c| (c.version, c.desired)),
            Some((version, winner)),
            "round {round}: the conflict carries the value in force"
        );
        assert_eq!(
            agreed(&a, &b).await,
            (version, winner),
            "round {round}: both bridges"
        );
        // Both browsers were shown the winner under that version, once; the controller decided with it:
        // heat turns the heater On under that version, cold leaves it Off (no command at all).
        let quiet = Duration::from_millis(1_500);
        let heats = winner == heat;
        let ((sa, ca), (sb, _)) = tokio::join!(
            shown(&mut alice, version, quiet, heats),
            shown(&mut bob, version, quiet, false)
        );
        assert!(
            sa.iter().all(|&d| d == winner) && sb.iter().all(|&d| d == winner),
            "round {round}: {sa:?} {sb:?}"
        );
        let expected: Vec<Command> = if heats { vec![Command::On] } else { vec![] };
        assert_eq!(
            ca, expected,
            "round {round}: the controller decided with the winner"
        );
    }
    println!("race over Kafka: {ROUNDS} rounds, bridge A won {wins_a}, bridge B won {wins_b}");

    // A bridge started now finds the heater periods of the rounds on `heatercontrol` (a seek by time) and
    // the whole change history on `tempset`.
    let mut late_bridge = options(1, 100);
    late_bridge.simulator = None;
    late_bridge.run_controller = false;
    late_bridge.seed_setpoints = false;
    let started = setpoint::clock::now_ms();
    let c = app::start(
        kafka_bus(&broker, &t).await,
        late_bridge,
        Arc::new(Metrics::default()),
    )
    .await
    .expect("c starts");
    let expected_changes = 1 + ROUNDS * 2;
    let deadline = Instant::now() + PATIENCE;
    let (history, decisions) = loop {
        let mut carol = connect(c.addr.expect("c"), None, None).await.expect("connects");
        carol.subscribe(Some(&[SENSOR])).await;
        let mut decisions = Vec::new();
        // The history frames come first, right after the answer; the first live batch ends them.
        while let Some(m) = carol.next_within(Duration::from_millis(500)).await {
            match m {
                ServerMessage::Decisions(batch) => decisions.extend(
                    batch
                        .items
                        .iter()
                        .filter(|d| d.sensor == SENSOR)
                        .map(|d| (d.t_ms, d.command)),
                ),
                ServerMessage::Readings(batch) if !batch.backfill => break,
                _ => {}
            }
        }
        carol
            .send(&format!(r#"{{"type":"setpoint_history","sensor":{SENSOR}}}"#))
            .await;
        let history = carol
            .until(|m| match m {
                ServerMessage::SetpointHistory(h) => Some(h.changes.clone()),
                _ => None,
            })
            .await;
        if history.len() >= expected_changes && decisions.len() >= wins_a || Instant::now() > deadline {
            break (history, decisions);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        history.len(),
        expected_changes,
        "seed, and per round a reset and the winner"
    );
    assert!(
        decisions
            .iter()
            .filter(|(t, c)| *t < started && *c == Command::On)
            .count()
            >= wins_a,
        "every round Alice won turned the heater On, before this bridge started: {decisions:?}"
    );
    c.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}
