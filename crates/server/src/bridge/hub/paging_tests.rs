//! Paging and filtering the sensor list ([`HubState::sensor_page`]) and a browser's views
//! ([`HubState::view`]) against a reference written here, the obvious way: every sensor once across pages,
//! in the order asked, exactly those that pass the query and the filters.

use proptest::prelude::*;
use setpoint_control::{Arrival, Command, Config, Decision, DecisionCause, SensorReading, Setpoint};
use setpoint_wire::api::SensorFilter;
use setpoint_wire::view::{ViewRequest, ViewSort};
use setpoint_wire::ws::ServerMessage;

use super::state::{HubOptions, HubState, Output, Watch};
use crate::bus::SetpointChange;

/// What the test gave one sensor.
#[derive(Clone, Debug)]
struct Room {
    sensor: i32,
    /// Temperature and age (ms before `NOW`) of its newest reading.
    reading: Option<(f64, i64)>,
    /// Desired temperature, up and down deltas.
    setpoint: Option<(f64, f64, f64)>,
    heater_on: Option<bool>,
}

const NOW: i64 = 10_000_000;
const STALE_MS: i64 = 300_000;

fn room() -> impl Strategy<Value = Room> {
    (
        0..60i32,
        proptest::option::of((10.0..30.0f64, prop_oneof![0..1_000i64, 400_000..500_000i64])),
        proptest::option::of((15.0..25.0f64, 0.0..2.0f64, 0.0..2.0f64)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(sensor, reading, setpoint, heater_on)| Room {
            sensor,
            reading,
            setpoint,
            heater_on,
        })
}

fn filters() -> impl Strategy<Value = Vec<SensorFilter>> {
    proptest::sample::subsequence(SensorFilter::ALL.to_vec(), 0..=3)
}

/// The reference: whether `room` passes `filter`, from the band's edges (inclusive: on the edge is in band).
fn passes(room: &Room, filter: SensorFilter) -> bool {
    match filter {
        SensorFilter::HeaterOn => room.heater_on == Some(true),
        SensorFilter::Stale => room.reading.is_none_or(|(_, age)| age > STALE_MS),
        SensorFilter::OutOfBand => match (room.reading, room.setpoint) {
            (Some((t, _)), Some((desired, up, down))) => t > desired + up || t < desired - down,
            _ => false,
        },
    }
}

/// What the hub holds of each sensor, by id: its newest reading by event time (the later of two alike), its
/// last setpoint and its last command.
fn kept(rooms: &[Room]) -> std::collections::BTreeMap<i32, Room> {
    let mut by_id = std::collections::BTreeMap::new();
    for r in rooms {
        let kept: &mut Room = by_id.entry(r.sensor).or_insert_with(|| Room {
            sensor: r.sensor,
            reading: None,
            setpoint: None,
            heater_on: None,
        });
        if let Some((_, age)) = r.reading {
            if kept.reading.is_none_or(|(_, kept_age)| age <= kept_age) {
                kept.reading = r.reading;
            }
        }
        if r.setpoint.is_some() {
            kept.setpoint = r.setpoint;
        }
        if r.heater_on.is_some() {
            kept.heater_on = r.heater_on;
        }
    }
    by_id
}

fn hub_of(rooms: &[Room]) -> HubState {
    let config = Config {
        stale_after_ms: Some(STALE_MS),
        ..Config::default()
    };
    let mut hub = HubState::new(config, HubOptions::default());
    let live = Arrival::at(NOW);
    for r in rooms {
        if let Some((desired, up, down)) = r.setpoint {
            let change = SetpointChange::new(r.sensor, Setpoint::new(desired, up, down), 0, "", NOW - 1);
            hub.on_setpoint(change, live).expect("valid setpoint");
        }
        if let Some((temperature, age)) = r.reading {
            let reading = SensorReading {
                sensor: r.sensor,
                t_ms: NOW - age,
                temperature,
            };
            hub.on_reading(reading, live).expect("valid reading");
        }
        if let Some(on) = r.heater_on {
            let decision = Decision {
                sensor: r.sensor,
                command: if on { Command::On } else { Command::Off },
                t_ms: NOW - 1,
                temperature: 20.0,
                setpoint_version: 1,
                cause: DecisionCause::Band,
            };
            hub.on_decision(decision, live).expect("valid decision");
        }
    }
    hub.flush();
    hub
}

proptest! {
    #[test]
    fn pages_hold_every_matching_sensor_once_in_id_order(
        rooms in proptest::collection::vec(room(), 0..40),
        filters in filters(),
        limit in 1..6usize,
    ) {
        let by_id = kept(&rooms);
        // A sensor the hub heard of only through a setpoint is listed too.
        let expected: Vec<i32> = by_id
            .values()
            .filter(|r| r.reading.is_some() || r.setpoint.is_some() || r.heater_on.is_some())
            .filter(|r| filters.iter().all(|&f| passes(r, f)))
            .map(|r| r.sensor)
            .collect();
        let hub = hub_of(&rooms);
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = hub.sensor_page(after, limit, &filters, NOW);
            prop_assert_eq!(page.matching, expected.len());
            prop_assert!(page.sensors.len() <= limit);
            seen.extend(page.sensors.iter().map(|v| v.sensor));
            pages += 1;
            prop_assert!(pages <= expected.len() + 1, "paging does not end");
            match page.next_after {
                Some(next) => {
                    prop_assert_eq!(page.sensors.len(), limit, "a page before the last is full");
                    after = Some(next);
                }
                None => break,
            }
        }
        prop_assert_eq!(seen, expected);
    }
}

/// Sensors added between pages: every sensor there at the start is listed once, none twice, in order.
#[test]
fn sensors_added_while_paging_never_repeat_one_or_skip_one_that_was_there() {
    let rooms: Vec<Room> = (0..20)
        .map(|s| Room {
            sensor: s * 10,
            reading: Some((20.0, 0)),
            setpoint: None,
            heater_on: None,
        })
        .collect();
    let mut hub = hub_of(&rooms);
    let (mut seen, mut after) = (Vec::new(), None);
    let mut added = 0;
    loop {
        let page = hub.sensor_page(after, 3, &[], NOW);
        seen.extend(page.sensors.iter().map(|v| v.sensor));
        let Some(next) = page.next_after else { break };
        after = Some(next);
        // One new sensor before the cursor and one after it.
        for sensor in [next - 5, next + 5] {
            let reading = SensorReading {
                sensor,
                t_ms: NOW,
                temperature: 20.0,
            };
            hub.on_reading(reading, Arrival::at(NOW)).expect("valid");
            added += 1;
        }
        hub.flush();
    }
    assert!(added > 0);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in id order, none twice: {seen:?}"
    );
    for r in &rooms {
        assert!(
            seen.contains(&r.sensor),
            "sensor {} was there from the start",
            r.sensor
        );
    }
}

/// The reference order of [`ViewSort::Attention`]: stale, then out of band the farthest from the desired
/// temperature first, then the rest; by id within each.
fn attention_key(room: &Room) -> (u8, f64, i32) {
    let class = if passes(room, SensorFilter::Stale) {
        0
    } else if passes(room, SensorFilter::OutOfBand) {
        1
    } else {
        2
    };
    let nearness = match (room.reading, room.setpoint) {
        (Some((t, _)), Some((desired, _, _))) => -(t - desired).abs(),
        _ => 0.0,
    };
    (class, nearness, room.sensor)
}

proptest! {
    /// A browser's view (query, filters, order, page) over all rooms, answered by the hub, against the
    /// reference: the same rooms in the same order, the same total and page count, and the client then
    /// watches exactly the page.
    #[test]
    fn a_view_is_the_page_of_the_matching_rooms_in_the_order_asked(
        rooms in proptest::collection::vec(room(), 0..40),
        filters in filters(),
        query in prop_oneof![Just(String::new()), (0..10u8).prop_map(|d| d.to_string()), Just(" 1 ".to_owned())],
        attention in any::<bool>(),
        page in 0..6u32,
        page_size in 1..8u32,
    ) {
        let by_id = kept(&rooms);
        let mut matching: Vec<&Room> = by_id
            .values()
            .filter(|r| r.reading.is_some() || r.setpoint.is_some() || r.heater_on.is_some())
            .filter(|r| query.trim().is_empty() || r.sensor.to_string().contains(query.trim()))
            .filter(|r| filters.iter().all(|&f| passes(r, f)))
            .collect();
        if attention {
            matching.sort_by(|a, b| attention_key(a).partial_cmp(&attention_key(b)).expect("no NaN"));
        }
        let pages = matching.len().div_ceil(page_size as usize).max(1);
        let shown_page = (page as usize).min(pages - 1);
        let expected: Vec<i32> = matching.iter().skip(shown_page * page_size as usize).take(page_size as usize).map(|r| r.sensor).collect();

        let mut hub = hub_of(&rooms);
        let client = hub.register(false, NOW).id;
        let request = ViewRequest {
            query: query.clone(),
            filters: filters.clone(),
            sort: if attention { ViewSort::Attention } else { ViewSort::Id },
            page,
            page_size,
        };
        prop_assert_eq!(request.check(), Ok(()));
        hub.view(client, &request, NOW);
        let outputs = hub.take_outputs();
        let view = outputs.iter().find_map(|o| match o {
            Output::Send(c, ServerMessage::View(v)) if *c == client => Some(v.clone()),
            _ => None,
        });
        let Some(view) = view else { panic!("answered: {outputs:?}") };
        prop_assert_eq!(view.sensors.iter().map(|v| v.sensor).collect::<Vec<_>>(), expected.clone());
        prop_assert_eq!(view.total, matching.len() as u64);
        prop_assert_eq!((view.page as usize, view.pages as usize), (shown_page, pages));
        let watch = outputs.iter().find_map(|o| match o {
            Output::Watch(c, w) if *c == client => Some(w.clone()),
            _ => None,
        });
        prop_assert_eq!(watch, Some(Watch::rooms(expected.iter().copied())));
        let mut fresh = expected.clone();
        fresh.sort_unstable();
        prop_assert_eq!(view.fresh, fresh, "every room is new to a new client");
    }
}
