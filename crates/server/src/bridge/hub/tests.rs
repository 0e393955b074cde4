//! The hub's invariants, on the sans-IO state alone: no sockets, no clock, no tasks.

use std::collections::HashMap;

use proptest::prelude::*;
use setpoint_control::{Arrival, Command, Config, Decision, DecisionCause, SensorReading, Setpoint};
use setpoint_wire::schedule::{ListPart, SchedulesMsg};
use setpoint_wire::ws::{BusStatus, ErrorCode, ServerMessage, SetpointWrite};

use super::state::{ClientId, HubOptions, HubState, Output, PublishFailure, Watch, READ_BACK_PATIENCE_MS};
use crate::bus::SetpointChange;

/// A record arriving at a reader whose reference time is far ahead of every time in these tests: the
/// clock-skew check never refuses them.
fn live() -> Arrival {
    Arrival::at(i64::MAX / 2)
}

/// Every message each client was sent, in order: its welcome, then the outputs addressed to it while it was
/// registered — what the shell's outboxes would hold, applying each client's [`Watch`] as they do.
#[derive(Default)]
struct Clients {
    received: HashMap<ClientId, Vec<ServerMessage>>,
    /// Every reading each client got, history and live, in order.
    readings: HashMap<ClientId, Vec<SensorReading>>,
    watches: HashMap<ClientId, Watch>,
    /// Records the hub asked the shell to publish.
    published: Vec<SetpointChange>,
}

impl Clients {
    /// A client that follows every room live (`subscribe` with `null`), as broadcasts used to reach all.
    fn register(&mut self, hub: &mut HubState) -> ClientId {
        let id = self.connect(hub);
        hub.subscribe(id, None);
        self.deliver(hub);
        id
    }

    /// A client that watches these rooms: their summaries and history, then their live data.
    fn register_watching(&mut self, hub: &mut HubState, sensors: &[i32]) -> ClientId {
        let id = self.connect(hub);
        hub.subscribe(id, Some(sensors.to_vec()));
        self.deliver(hub);
        id
    }

    /// A client that has asked for nothing yet.
    fn connect(&mut self, hub: &mut HubState) -> ClientId {
        // The shell delivers every input's outputs before it takes the next input.
        self.deliver(hub);
        let w = hub.register(true, 0);
        self.readings.insert(w.id, Vec::new());
        self.received.insert(w.id, Vec::new());
        for m in std::iter::once(w.hello).chain(w.backfill) {
            self.receive(w.id, m);
        }
        self.deliver(hub);
        w.id
    }

    fn receive(&mut self, id: ClientId, m: ServerMessage) {
        if let ServerMessage::Readings(b) = &m {
            self.readings
                .entry(id)
                .or_default()
                .extend(b.items.iter().copied());
        }
        self.received.entry(id).or_default().push(m);
    }

    fn deliver(&mut self, hub: &mut HubState) {
        for output in hub.take_outputs() {
            match output {
                Output::Broadcast(m) => self.received.values_mut().for_each(|r| r.push(m.clone())),
                Output::About(sensor, m) => {
                    for (id, r) in self.received.iter_mut() {
                        if self.watches.get(id).is_some_and(|w| w.covers(sensor)) {
                            r.push(m.clone());
                        }
                    }
                }
                Output::Readings(items) => {
                    for (id, r) in self.readings.iter_mut() {
                        let watch = self.watches.get(id).cloned().unwrap_or_default();
                        r.extend(items.iter().filter(|i| watch.covers(i.sensor)).copied());
                    }
                }
                Output::Watch(id, watch) => {
                    self.watches.insert(id, watch);
                }
                Output::Send(id, m) => self.receive(id, m),
                Output::Publish(change) => self.published.push(change),
            }
        }
    }

    fn sent_to(&self, id: ClientId) -> &[ServerMessage] {
        self.received.get(&id).map_or(&[], Vec::as_slice)
    }
}

fn reading(sensor: i32, t_ms: i64) -> SensorReading {
    SensorReading {
        sensor,
        t_ms,
        temperature: 20.0,
    }
}

fn decision(sensor: i32, t_ms: i64) -> Decision {
    Decision {
        sensor,
        command: Command::On,
        t_ms,
        temperature: 18.0,
        setpoint_version: 1,
        cause: DecisionCause::Band,
    }
}

/// What a client shows of the `schedules` messages it was sent, gathered as the protocol says (the
/// reference for the dashboard's `on_schedules`): a list in parts shown once its last part came, next
/// steps from every message but a part.
pub(super) fn shown_schedules(msgs: &[ServerMessage]) -> SchedulesMsg {
    let (mut shown, mut arriving) = (SchedulesMsg::default(), Vec::new());
    for msg in msgs {
        let ServerMessage::Schedules(s) = msg else {
            continue;
        };
        match s.list {
            ListPart::More => {
                arriving.extend(s.schedules.iter().cloned());
                continue;
            }
            ListPart::Whole => shown.schedules = s.schedules.clone(),
            ListPart::Last => {
                shown.schedules = std::mem::take(&mut arriving);
                shown.schedules.extend(s.schedules.iter().cloned());
            }
            ListPart::Unchanged => {}
        }
        shown.next = s.next.clone();
    }
    shown
}

fn request(sensor: i32, desired: f64, base_version: Option<u64>, id: &str) -> SetpointWrite {
    SetpointWrite::new(id, sensor, Setpoint::new(desired, 1.0, 1.0), base_version)
}

/// A hub as the pump leaves it once it has read the tables.
fn ready(mut hub: HubState) -> HubState {
    hub.on_tables_read();
    hub
}

fn hub() -> HubState {
    ready(HubState::new(Config::default(), HubOptions::default()))
}

fn acks(msgs: &[ServerMessage]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Ack { request_id, .. } => Some(request_id.clone()),
            _ => None,
        })
        .collect()
}

fn errors(msgs: &[ServerMessage]) -> Vec<(String, ErrorCode)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Error(e) => Some((e.request_id.clone().unwrap_or_default(), e.code)),
            _ => None,
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    Register,
    /// Client (by index, modulo those registered) now watches the rooms of this bit set (bit 0: room 1).
    Watch(usize, u8),
    Reading(i32),
    Flush,
    Decision(i32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Register),
        2 => (0..4usize, 0..8u8).prop_map(|(c, rooms)| Step::Watch(c, rooms)),
        6 => (1..4i32).prop_map(Step::Reading),
        2 => Just(Step::Flush),
        2 => (1..4i32).prop_map(Step::Decision),
    ]
}

/// The decisions among `msgs`: a room's history (`decisions`) and live ones, in the order received.
fn decisions_in(msgs: &[ServerMessage]) -> Vec<Decision> {
    msgs.iter()
        .flat_map(|m| match m {
            ServerMessage::Decisions(b) => b.items.clone(),
            ServerMessage::Decision(d) => vec![*d],
            _ => Vec::new(),
        })
        .collect()
}

/// Where a client's watch of one room began: positions in its readings and its messages.
#[derive(Clone, Copy)]
struct Stretch {
    readings: usize,
    messages: usize,
}

proptest! {
    /// However clients come and change what they watch, each stretch of watching a room shows every one of
    /// its readings and decisions so far exactly once, in order: the ones before it in the room's history,
    /// the rest live — never both, never missing. Readings not yet flushed are in neither until the flush.
    #[test]
    fn a_watched_room_shows_each_reading_and_decision_exactly_once(steps in prop::collection::vec(step(), 1..150)) {
        // Thinning off (one reading per ms may stay), so the history holds every reading of the window.
        let mut hub = ready(HubState::new(Config::default(), HubOptions { backfill_ms: 1_000_000, backfill_max_per_sensor: 1_000_000, fine_budget_bytes: usize::MAX, ..HubOptions::default() }));
        let mut clients = Clients::default();
        let mut ids: Vec<ClientId> = Vec::new();
        let mut stretches: HashMap<(ClientId, i32), Stretch> = HashMap::new();
        let (mut pending, mut flushed, mut decided) = (Vec::new(), Vec::new(), Vec::new());
        let mut t = 0;
        // Readings each client should have had in all, stretch by stretch.
        let mut owed: HashMap<ClientId, usize> = HashMap::new();
        let check = |clients: &Clients, id: ClientId, room: i32, from: Stretch, flushed: &[SensorReading], decided: &[Decision]| -> Result<usize, TestCaseError> {
            let got: Vec<SensorReading> = clients.readings[&id][from.readings..].iter().copied().filter(|r| r.sensor == room).collect();
            let want: Vec<SensorReading> = flushed.iter().copied().filter(|r| r.sensor == room).collect();
            let count = want.len();
            prop_assert_eq!(got, want, "readings of room {} at client {}", room, id);
            let got: Vec<Decision> = decisions_in(&clients.received[&id][from.messages..]).into_iter().filter(|d| d.sensor == room).collect();
            let want: Vec<Decision> = decided.iter().copied().filter(|d: &Decision| d.sensor == room).collect();
            prop_assert_eq!(got, want, "decisions of room {} at client {}", room, id);
            Ok(count)
        };
        for s in &steps {
            t += 1;
            match s {
                Step::Register => ids.push(clients.connect(&mut hub)),
                Step::Watch(c, rooms) => {
                    let Some(&id) = ids.get(c % ids.len().max(1)) else { continue };
                    let next: Vec<i32> = (1..4).filter(|r| rooms & (1 << (r - 1)) != 0).collect();
                    for room in 1..4 {
                        let here = Stretch { readings: clients.readings[&id].len(), messages: clients.received[&id].len() };
                        match (stretches.get(&(id, room)).copied(), next.contains(&room)) {
                            (Some(from), false) => {
                                *owed.entry(id).or_default() += check(&clients, id, room, from, &flushed, &decided)?;
                                stretches.remove(&(id, room));
                            }
                            (None, true) => { stretches.insert((id, room), here); }
                            _ => {}
                        }
                    }
                    hub.subscribe(id, Some(next));
                }
                Step::Reading(sensor) => { let r = reading(*sensor, t); pending.push(r); hub.on_reading(r, live()).expect("accepted"); }
                Step::Flush => { hub.flush(); flushed.append(&mut pending); }
                Step::Decision(sensor) => { let d = decision(*sensor, t); decided.push(d); hub.on_decision(d, live()).expect("accepted"); }
            }
            clients.deliver(&mut hub);
        }
        hub.flush();
        flushed.append(&mut pending);
        clients.deliver(&mut hub);
        for (&(id, room), &from) in &stretches {
            *owed.entry(id).or_default() += check(&clients, id, room, from, &flushed, &decided)?;
        }
        // Nothing else: no reading of a room while it was not watched.
        for (id, got) in &clients.readings {
            prop_assert_eq!(got.len(), owed.get(id).copied().unwrap_or(0), "client {} got readings it did not watch", id);
        }
    }
}

#[test]
fn backfill_holds_only_flushed_readings_and_live_batches_only_later_ones() {
    let mut hub = hub();
    let mut clients = Clients::default();
    hub.on_reading(reading(1, 1), live()).expect("accepted");
    hub.flush();
    hub.on_reading(reading(1, 2), live()).expect("accepted");
    let late = clients.register_watching(&mut hub, &[1]);
    assert_eq!(clients.readings[&late], vec![reading(1, 1)]);
    hub.flush();
    clients.deliver(&mut hub);
    assert_eq!(clients.readings[&late], vec![reading(1, 1), reading(1, 2)]);
}

/// Publishes `change` as the bus would and brings it back, like the shell and the pump do.
fn publish_and_read_back(hub: &mut HubState, id: super::state::WriteId, change: SetpointChange) {
    hub.write_published(id, Ok(()), 0);
    hub.on_setpoint(change, Arrival::at(0)).expect("valid record");
}

#[test]
fn a_write_is_acknowledged_only_once_published_and_read_back_whatever_the_order() {
    for read_back_first in [false, true] {
        let mut hub = hub();
        let mut clients = Clients::default();
        let writer = clients.register(&mut hub);
        let other = clients.register(&mut hub);
        let (id, change) = hub
            .begin_write(writer, &request(1, 21.0, Some(0), "a"), "admin", 5)
            .expect("accepted");
        assert_eq!(change.version, 1);
        assert_eq!(change.author, "admin");
        assert_eq!(
            hub.setpoint(1),
            None,
            "not in force before it comes back from the bus"
        );
        if read_back_first {
            hub.on_setpoint(change.clone(), Arrival::at(7))
                .expect("valid record");
            clients.deliver(&mut hub);
            assert!(
                acks(clients.sent_to(writer)).is_empty(),
                "not acknowledged before the bus did"
            );
            hub.write_published(id, Ok(()), 6);
        } else {
            hub.write_published(id, Ok(()), 6);
            clients.deliver(&mut hub);
            assert!(
                acks(clients.sent_to(writer)).is_empty(),
                "not acknowledged before it came back"
            );
            hub.on_setpoint(change.clone(), Arrival::at(7))
                .expect("valid record");
        }
        clients.deliver(&mut hub);
        assert_eq!(acks(clients.sent_to(writer)), vec!["a"]);
        assert!(acks(clients.sent_to(other)).is_empty());
        // Everybody saw the setpoint once, and the writer saw it before its ack.
        for c in [writer, other] {
            let setpoints: Vec<u64> = clients
                .sent_to(c)
                .iter()
                .filter_map(|m| match m {
                    ServerMessage::Setpoint(s) => Some(s.version),
                    _ => None,
                })
                .collect();
            assert_eq!(setpoints, vec![1]);
        }
        let w = clients.sent_to(writer);
        let sp = w.iter().position(|m| matches!(m, ServerMessage::Setpoint(_)));
        let ack = w.iter().position(|m| matches!(m, ServerMessage::Ack { .. }));
        assert!(sp < ack);
    }
}

#[test]
fn racing_writes_through_one_bridge_get_one_ack_and_one_conflict() {
    let mut hub = hub();
    let mut clients = Clients::default();
    let (a, b) = (clients.register(&mut hub), clients.register(&mut hub));
    let (id_a, change_a) = hub
        .begin_write(a, &request(1, 21.0, Some(0), "a"), "x", 1)
        .expect("first");
    assert_eq!((change_a.base_version, change_a.version), (Some(0), 1));
    // B read version 0 too, and writes while A's write is still in flight: this bridge knows it is stale.
    assert!(hub
        .begin_write(b, &request(1, 22.0, Some(0), "b"), "y", 2)
        .is_none());
    clients.deliver(&mut hub);
    assert_eq!(
        errors(clients.sent_to(b)),
        vec![("b".to_owned(), ErrorCode::Conflict)]
    );
    let conflict = clients.sent_to(b).iter().find_map(|m| match m {
        ServerMessage::Error(e) => e.current.clone(),
        _ => None,
    });
    assert_eq!(
        conflict.map(|c| (c.version, c.desired)),
        Some((1, 21.0)),
        "the conflict carries the value that wins"
    );
    // A write without a base version chains after the one in flight.
    let (id_c, change_c) = hub
        .begin_write(b, &request(1, 23.0, None, "c"), "y", 3)
        .expect("no base");
    assert_eq!((change_c.base_version, change_c.version), (Some(1), 2));
    publish_and_read_back(&mut hub, id_a, change_a);
    publish_and_read_back(&mut hub, id_c, change_c);
    clients.deliver(&mut hub);
    assert_eq!(acks(clients.sent_to(a)), vec!["a"]);
    assert_eq!(acks(clients.sent_to(b)), vec!["c"]);
    assert_eq!(hub.setpoint(1).map(|s| (s.version, s.desired)), Some((2, 23.0)));
}

#[test]
fn a_write_that_loses_in_the_stream_is_answered_conflict_and_restates_the_winner() {
    let mut hub = hub().with_writer("mine");
    let mut clients = Clients::default();
    let c = clients.register(&mut hub);
    let (id, mine) = hub
        .begin_write(c, &request(1, 21.0, Some(0), "mine"), "alice", 1)
        .expect("accepted");
    // Another bridge's write on the same base reached the stream first.
    let theirs = SetpointChange {
        write_id: "theirs-0".into(),
        author: "bob".into(),
        setpoint: Setpoint::new(22.0, 1.0, 1.0),
        ..mine.clone()
    };
    hub.on_setpoint(theirs, Arrival::at(2)).expect("valid record");
    publish_and_read_back(&mut hub, id, mine);
    clients.deliver(&mut hub);
    assert!(acks(clients.sent_to(c)).is_empty());
    assert_eq!(
        errors(clients.sent_to(c)),
        vec![("mine".to_owned(), ErrorCode::Conflict)]
    );
    assert_eq!(
        clients
            .published
            .iter()
            .map(|r| (r.version, r.base_version, r.setpoint.desired, r.author.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, Some(1), 22.0, "bob")],
        "the loser restates the winner, so compaction keeps a record that holds"
    );
    assert_eq!(hub.setpoint(1).map(|s| (s.version, s.desired)), Some((1, 22.0)));
}

#[test]
fn two_bridges_reading_one_stream_agree_on_which_racing_write_won() {
    let mut one = ready(HubState::new(Config::default(), HubOptions::default()).with_writer("one"));
    let mut two = ready(HubState::new(Config::default(), HubOptions::default()).with_writer("two"));
    let (mut c1, mut c2) = (Clients::default(), Clients::default());
    let (w1, w2) = (c1.register(&mut one), c2.register(&mut two));
    let (id1, r1) = one
        .begin_write(w1, &request(1, 21.0, Some(0), "from-one"), "alice", 1)
        .expect("accepted by one");
    let (id2, r2) = two
        .begin_write(w2, &request(1, 22.0, Some(0), "from-two"), "bob", 1)
        .expect("accepted by two");
    one.write_published(id1, Ok(()), 2);
    two.write_published(id2, Ok(()), 2);
    // The stream holds two's record first; both bridges read it in that order.
    for hub in [&mut one, &mut two] {
        hub.on_setpoint(r2.clone(), Arrival::at(3)).expect("valid record");
        hub.on_setpoint(r1.clone(), Arrival::at(3)).expect("valid record");
    }
    c1.deliver(&mut one);
    c2.deliver(&mut two);
    assert_eq!(acks(c2.sent_to(w2)), vec!["from-two"]);
    assert_eq!(
        errors(c1.sent_to(w1)),
        vec![("from-one".to_owned(), ErrorCode::Conflict)]
    );
    for hub in [&one, &two] {
        let s = hub.setpoint(1).expect("in force");
        assert_eq!(
            (s.version, s.desired, s.author.as_deref()),
            (1, 22.0, Some("bob"))
        );
    }
}

#[test]
fn a_new_client_gets_the_decisions_of_the_window_and_the_change_history_with_authors() {
    let options = HubOptions {
        backfill_ms: 10_000,
        backfill_max_per_sensor: 10,
        ..HubOptions::default()
    };
    let mut hub = ready(HubState::new(Config::default(), options));
    let sp = |version, base, desired, author: &str, t_ms| SetpointChange {
        sensor: 1,
        setpoint: Setpoint::new(desired, 1.0, 1.0),
        version,
        author: author.to_owned(),
        t_ms,
        base_version: base,
        write_id: String::new(),
    };
    hub.on_setpoint(sp(1, Some(0), 20.0, "simulator", 0), Arrival::at(0))
        .expect("valid record");
    hub.on_setpoint(sp(2, Some(1), 21.0, "alice", 5), Arrival::at(5))
        .expect("valid record");
    hub.on_setpoint(sp(2, Some(1), 99.0, "mallory", 6), Arrival::at(6))
        .expect("valid record"); // lost a race: not a change
    for t in [1_000, 4_000, 9_000, 14_000, 20_000] {
        hub.on_decision(decision(1, t), live()).expect("accepted");
    }
    // Readings every 100 ms for 20 s: thinned to one per second, and only the last 10 s.
    for t in (0..=20_000).step_by(100) {
        hub.on_reading(reading(1, t), live()).expect("accepted");
    }
    hub.flush();
    let mut clients = Clients::default();
    let c = clients.register_watching(&mut hub, &[1]);
    let decisions: Vec<i64> = clients
        .sent_to(c)
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Decisions(b) if b.backfill => Some(b.items.iter().map(|d| d.t_ms)),
            _ => None,
        })
        .flatten()
        .collect();
    // 9 000 is before the window (20 000 − 10 000) but is the state where the window starts.
    assert_eq!(decisions, vec![9_000, 14_000, 20_000]);
    let times: Vec<i64> = clients.readings[&c].iter().map(|r| r.t_ms).collect();
    assert_eq!(
        times,
        (11..=20).map(|s| s * 1_000).collect::<Vec<_>>(),
        "at most 10 per sensor"
    );
    hub.send_history(c, 1);
    clients.deliver(&mut hub);
    let Some(ServerMessage::SetpointHistory(history)) = clients.sent_to(c).last() else {
        panic!("history answered")
    };
    let entries: Vec<_> = history
        .changes
        .iter()
        .map(|e| {
            (
                e.version,
                e.author.as_str(),
                e.from.map(|f| f.desired),
                e.to.desired,
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![(1, "simulator", None, 20.0), (2, "alice", Some(20.0), 21.0)]
    );
}

#[test]
fn a_failed_publish_is_refused_and_frees_its_version() {
    let mut hub = hub();
    let mut clients = Clients::default();
    let c = clients.register(&mut hub);
    let (id, change) = hub
        .begin_write(c, &request(1, 21.0, Some(0), "a"), "x", 1)
        .expect("accepted");
    hub.write_published(id, Err(PublishFailure::Unavailable("broker down".into())), 2);
    clients.deliver(&mut hub);
    assert_eq!(
        errors(clients.sent_to(c)),
        vec![("a".to_owned(), ErrorCode::BrokerUnavailable)]
    );
    let (_, again) = hub
        .begin_write(c, &request(1, 21.0, Some(0), "b"), "x", 3)
        .expect("version 0 still in force");
    assert_eq!(again.version, change.version);
}

#[test]
fn a_published_write_whose_record_is_late_is_answered_unconfirmed_after_the_patience() {
    let mut hub = hub();
    let mut clients = Clients::default();
    let c = clients.register(&mut hub);
    let (id, _) = hub
        .begin_write(c, &request(1, 21.0, None, "a"), "x", 0)
        .expect("accepted");
    hub.write_published(id, Ok(()), 1_000);
    hub.tick(1_000 + READ_BACK_PATIENCE_MS - 1, BusStatus::Connected);
    clients.deliver(&mut hub);
    assert!(errors(clients.sent_to(c)).is_empty());
    hub.tick(1_000 + READ_BACK_PATIENCE_MS, BusStatus::Connected);
    clients.deliver(&mut hub);
    assert!(acks(clients.sent_to(c)).is_empty(), "the outcome is not known");
    assert_eq!(
        errors(clients.sent_to(c)),
        vec![("a".to_owned(), ErrorCode::Unconfirmed)]
    );
}

#[test]
fn invalid_setpoints_and_writes_with_the_broker_away_are_refused_with_their_codes() {
    let mut hub = hub();
    let mut clients = Clients::default();
    let c = clients.register(&mut hub);
    assert!(hub
        .begin_write(c, &request(1, f64::MAX, None, "big"), "x", 0)
        .is_none());
    hub.tick(1, BusStatus::Unavailable);
    hub.tick(2, BusStatus::Unavailable);
    assert!(hub
        .begin_write(c, &request(1, 21.0, None, "away"), "x", 3)
        .is_none());
    clients.deliver(&mut hub);
    assert_eq!(
        errors(clients.sent_to(c)),
        vec![
            ("big".to_owned(), ErrorCode::InvalidSetpoint),
            (String::new(), ErrorCode::BrokerUnavailable),
            ("away".to_owned(), ErrorCode::BrokerUnavailable),
        ],
        "one broadcast warning for the outage, not one per tick"
    );
}

#[test]
fn writes_before_the_tables_are_read_are_refused_not_judged_against_stale_versions() {
    // A restarted bridge: the log holds version 5 of sensor 1, and the pump is still reading it.
    let mut hub = HubState::new(Config::default(), HubOptions::default());
    let mut clients = Clients::default();
    let c = clients.register(&mut hub);
    assert!(!hub.tables_read());
    assert!(hub
        .begin_write(c, &request(1, 21.0, Some(5), "early"), "x", 1)
        .is_none());
    clients.deliver(&mut hub);
    assert_eq!(
        errors(clients.sent_to(c)),
        vec![("early".to_owned(), ErrorCode::BrokerUnavailable)],
        "refused as unavailable, not a false conflict against version 0"
    );
    assert!(clients.published.is_empty());
    hub.on_setpoint(
        SetpointChange::new(1, Setpoint::new(20.0, 1.0, 1.0), 5, "earlier", 0).conditional(4, ""),
        Arrival::at(2),
    )
    .expect("valid record");
    hub.on_tables_read();
    assert!(hub.tables_read());
    let (_, record) = hub
        .begin_write(c, &request(1, 21.0, Some(5), "after"), "x", 3)
        .expect("accepted once read");
    assert_eq!(
        (record.base_version, record.version),
        (Some(5), 6),
        "judged against the version in the log"
    );
}

#[test]
fn records_from_the_stream_are_numbered_alike_by_every_bridge() {
    let change = |version, desired| SetpointChange::new(7, Setpoint::new(desired, 1.0, 1.0), version, "", 0);
    let mut hub = hub();
    hub.on_setpoint(change(0, 20.0), Arrival::at(0))
        .expect("valid record"); // another tool, unversioned: gets 1
    hub.on_setpoint(change(0, 21.0), Arrival::at(0))
        .expect("valid record"); // gets 2
    hub.on_setpoint(change(1, 25.0), Arrival::at(0))
        .expect("valid record"); // stale
    hub.on_setpoint(change(2, 21.0), Arrival::at(0))
        .expect("valid record"); // redelivery of what is in force
    let mut clients = Clients::default();
    let c = clients.register_watching(&mut hub, &[7]);
    let Some(ServerMessage::View(view)) = clients.sent_to(c).get(2) else {
        panic!("hello, schedules, then the view: {:?}", clients.sent_to(c))
    };
    assert_eq!(
        view.sensors
            .iter()
            .filter_map(|v| v.setpoint.as_ref())
            .map(|s| (s.version, s.desired))
            .collect::<Vec<_>>(),
        vec![(2, 21.0)]
    );
    assert_eq!(hub.stats().setpoints, 2);
}

#[test]
fn a_large_flush_is_split_into_frames_of_bounded_size() {
    // A bridge starting on a backlog flushes a replay at once; one 10 MB frame would overflow the
    // transport's write buffer and cut every client off.
    let mut hub = hub();
    for t in 0..12_000 {
        hub.on_reading(reading(1 + (t % 7) as i32, t), live())
            .expect("accepted");
    }
    hub.flush();
    let sizes: Vec<usize> = hub
        .take_outputs()
        .iter()
        .filter_map(|o| match o {
            Output::Readings(items) => Some(items.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![5_000, 5_000, 2_000]);
}

#[test]
fn a_quiet_client_gets_its_answers_with_the_value_in_force_and_counts_as_no_connection() {
    let mut hub = hub();
    let mut clients = Clients::default();
    let page = clients.register(&mut hub);
    let quiet = hub.register_quiet();
    assert_eq!(
        hub.stats().clients,
        1,
        "an HTTP request is not a connected client"
    );
    let (id, change) = hub
        .begin_write(quiet, &request(4, 21.5, None, "0"), "script", 1)
        .expect("valid");
    hub.write_published(id, Ok(()), 2);
    hub.on_setpoint(change, Arrival::at(3)).expect("valid record");
    assert!(hub
        .begin_write(quiet, &request(4, 999.0, None, "1"), "script", 4)
        .is_none());
    let mut answers = Vec::new();
    for output in hub.take_outputs() {
        match output {
            Output::Send(id, m) if id == quiet => answers.push(m),
            Output::Send(id, m) => panic!("{m:?} sent to {id}"),
            _ => {}
        }
    }
    match &answers[..] {
        [ServerMessage::Ack {
            request_id,
            setpoint: Some(sp),
        }, ServerMessage::Error(e)] => {
            assert_eq!(
                (request_id.as_str(), sp.sensor, sp.desired, sp.version),
                ("0", 4, 21.5, 1)
            );
            assert_eq!(sp.author.as_deref(), Some("script"));
            assert_eq!(
                (e.request_id.as_deref(), e.code),
                (Some("1"), ErrorCode::InvalidSetpoint)
            );
        }
        other => panic!("{other:?}"),
    }
    // Once gone, nothing more is addressed to it.
    assert!(hub.unregister(quiet));
    let (id, _) = hub
        .begin_write(quiet, &request(4, 22.0, None, "2"), "script", 5)
        .expect("valid");
    hub.write_published(id, Err(PublishFailure::ShuttingDown), 6);
    assert!(hub
        .take_outputs()
        .iter()
        .all(|o| !matches!(o, Output::Send(id, _) if *id == quiet)));
    let _ = page;
}

#[test]
fn schedules_and_each_sensors_next_step_reach_new_and_connected_clients() {
    use setpoint_wire::schedule::{Schedule, ScheduleRecord, ScheduleStep, Weekday};
    let mut hub = hub();
    let mut clients = Clients::default();
    let early = clients.register_watching(&mut hub, &[1, 2, 3]);
    // Steps at 06:00 and 22:00 UTC every day.
    let wednesday_noon = 1_795_608_000_000; // 2026-11-25T12:00:00Z, a Wednesday
    hub.on_reading(reading(1, wednesday_noon), live())
        .expect("accepted");
    let step = |time: &str, desired| ScheduleStep {
        days: Weekday::ALL.to_vec(),
        time: time.into(),
        desired,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: None,
        policy: None,
    };
    let record = ScheduleRecord {
        schedule: Schedule {
            name: "night".into(),
            zone: "UTC".into(),
            steps: vec![step("06:00", 21.0), step("22:00", 17.0)],
            sensors: vec![2, 1],
        },
        author: "admin".into(),
        t_ms: wednesday_noon,
        deleted: false,
    };
    hub.on_schedule(record.clone(), wednesday_noon).expect("valid");
    clients.deliver(&mut hub);
    let last_schedules = shown_schedules;
    let tonight = wednesday_noon + 10 * 3_600_000;
    let s = last_schedules(clients.sent_to(early));
    assert_eq!(s.schedules, vec![record.schedule.clone()]);
    let next: Vec<(i32, i64, f64)> = s.next.iter().map(|n| (n.sensor, n.at_ms, n.desired)).collect();
    assert_eq!(next, vec![(1, tonight, 17.0), (2, tonight, 17.0)]);
    let late = clients.register_watching(&mut hub, &[1, 2, 3]);
    // A client of every room gets the schedules without a building's next steps.
    let everything = clients.register(&mut hub);
    assert_eq!(
        last_schedules(clients.sent_to(late)),
        s,
        "a new client starts with them"
    );
    // Nothing new until 22:00 passes; then tomorrow's 06:00 is next.
    hub.tick(tonight - 1, BusStatus::Embedded);
    clients.deliver(&mut hub);
    assert_eq!(last_schedules(clients.sent_to(early)), s);
    hub.tick(tonight + 500, BusStatus::Embedded);
    clients.deliver(&mut hub);
    let after = last_schedules(clients.sent_to(early));
    assert_eq!(after.next[0].at_ms, wednesday_noon + 18 * 3_600_000);
    let all = last_schedules(clients.sent_to(everything));
    assert!(all.next.is_empty() && all.schedules == after.schedules);
    assert_eq!(
        hub.sensor_view(1).and_then(|v| v.next_step).map(|n| n.desired),
        Some(21.0)
    );
    // Deleted: no schedules, no next steps.
    hub.on_schedule(
        ScheduleRecord {
            deleted: true,
            ..record
        },
        tonight + 600,
    )
    .expect("deleted");
    clients.deliver(&mut hub);
    let gone = last_schedules(clients.sent_to(late));
    assert!(gone.schedules.is_empty() && gone.next.is_empty());
}

/// Records of other producers that the hub refuses, as the controller does: none of them is shown to a
/// client, none advances a version, and the bounds on sensors and schedules hold.
#[test]
fn records_the_controller_would_refuse_are_refused_and_change_nothing() {
    use setpoint_control::{ReadingError, RecordError, MAX_AUTHOR_BYTES};
    use setpoint_wire::schedule::{Schedule, ScheduleRecord, ScheduleStep, Weekday, MAX_SCHEDULES};
    let now = 1_795_608_000_000;
    let at = Arrival::at(now);
    let mut hub = HubState::new(
        Config {
            max_sensors: 3,
            ..Config::default()
        },
        HubOptions::default(),
    );
    let mut clients = Clients::default();
    let c = clients.register(&mut hub);
    let record = |version, base, desired, author: &str| SetpointChange {
        sensor: 1,
        setpoint: Setpoint::new(desired, 1.0, 1.0),
        version,
        author: author.into(),
        t_ms: now,
        base_version: base,
        write_id: String::new(),
    };
    hub.on_setpoint(record(0, None, 20.0, ""), at).expect("valid");
    let refused = [
        record(0, None, 900.0, ""),
        record(u64::MAX, None, 21.0, ""),
        record(0, None, 21.0, &"x".repeat(MAX_AUTHOR_BYTES + 1)),
        SetpointChange {
            t_ms: now + 3_600_000,
            ..record(0, None, 21.0, "")
        },
    ];
    for r in refused {
        assert!(hub.on_setpoint(r.clone(), at).is_err(), "{r:?}");
    }
    let in_force = hub.setpoint(1).expect("in force");
    assert_eq!((in_force.version, in_force.desired), (1, 20.0));
    let bad_readings = [
        SensorReading {
            sensor: 1,
            t_ms: now,
            temperature: f64::NAN,
        },
        SensorReading {
            sensor: 1,
            t_ms: now + 3_600_000,
            temperature: 20.0,
        },
    ];
    for r in bad_readings {
        assert!(hub.on_reading(r, at).is_err(), "{r:?}");
    }
    let nan_command = Decision {
        temperature: f64::INFINITY,
        ..decision(1, now)
    };
    assert!(hub.on_decision(nan_command, at).is_err());
    hub.flush();
    clients.deliver(&mut hub);
    let shown = clients.sent_to(c);
    assert!(
        shown
            .iter()
            .all(|m| !matches!(m, ServerMessage::Readings(_) | ServerMessage::Decision(_))),
        "nothing refused reached the client: {shown:?}"
    );
    // The sensor bound: 1 is known; 2 and 3 fit; 4 does not. Readings count the sensors this bridge
    // keeps; setpoints count the table's, which every reader of `tempset` counts alike.
    hub.on_reading(reading(2, now), at).expect("fits");
    hub.on_reading(reading(3, now), at).expect("fits");
    assert!(matches!(
        hub.on_reading(reading(4, now), at),
        Err(ReadingError::TooManySensors(_))
    ));
    for sensor in [2, 3] {
        let first = SetpointChange {
            sensor,
            ..record(0, None, 20.0, "")
        };
        hub.on_setpoint(first, at).expect("fits");
    }
    let fourth = SetpointChange {
        sensor: 4,
        ..record(0, None, 20.0, "")
    };
    assert!(matches!(
        hub.on_setpoint(fourth, at),
        Err(RecordError::TooManySensors(_))
    ));
    hub.on_reading(reading(1, now + 1), at)
        .expect("a known sensor is always admitted");
    // The schedule bound: a new schedule past it is refused; an existing one may still change.
    let schedule = |name: String, desired| ScheduleRecord {
        schedule: Schedule {
            name,
            zone: "UTC".into(),
            steps: vec![ScheduleStep {
                days: Weekday::ALL.to_vec(),
                time: "06:00".into(),
                desired,
                up_delta: 0.5,
                down_delta: 0.5,
                mode: None,
                policy: None,
            }],
            sensors: vec![1],
        },
        author: "admin".into(),
        t_ms: now,
        deleted: false,
    };
    for n in 0..MAX_SCHEDULES {
        hub.on_schedule(schedule(format!("s{n}"), 20.0), now)
            .expect("within the bound");
    }
    assert!(hub.on_schedule(schedule("one-more".into(), 20.0), now).is_err());
    hub.on_schedule(schedule("s0".into(), 21.0), now)
        .expect("replacing one is not adding one");
    assert_eq!(hub.schedules().len(), MAX_SCHEDULES);
}
