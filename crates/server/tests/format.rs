//! The data file a previous release wrote is read by this one: table names, the format marker and the
//! committed-offset keys are the file format, spelled out in `bus/store` and `StreamKind::stored_name`.
//!
//! `fixtures/store-format-1/setpoint.redb` was written by `setpoint run --data-dir … --sensors 2` of format
//! 1 (`setpoint-store-1`): the simulator's two seeded setpoints, then `alice` set sensor 1 to 23.5 (up 0.5,
//! down 1.5: version 2) over the HTTP API and saved the schedule `mornings` (sensor 2, Mondays 07:00, 21 °C).
//! A change to the format must keep this test passing or migrate the file; a new format adds a fixture.

mod common;

use std::path::Path;

use common::binary::Binary;
use setpoint::bus::store::Store;
use setpoint::bus::StreamKind;
use setpoint::roles::controller::CONTROLLER_GROUP;

/// A writable copy of the fixture (the server opens its data file for writing, and the checkout's copy must
/// stay as it was).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-format-1/setpoint.redb");
    std::fs::copy(&fixture, dir.path().join(setpoint::bus::store::FILE_NAME)).expect("copy the fixture");
    dir
}

#[test]
fn the_format_1_file_keeps_its_records_and_its_consumers_positions() {
    let dir = fixture_copy();
    let store = Store::open(dir.path()).expect("format 1 opens");
    let setpoints = store.load(StreamKind::Setpoints).expect("setpoints");
    assert_eq!(setpoints.len(), 3, "two seeded setpoints and alice's change");
    assert_eq!(store.load(StreamKind::Schedules).expect("schedules").len(), 1);
    assert!(!store.load(StreamKind::Readings).expect("readings").is_empty());
    // The controller's committed position in the readings: found under the key format 1 wrote. A renamed
    // key would read as `None` and the controller would start over from the oldest reading.
    let committed = store
        .committed(CONTROLLER_GROUP, StreamKind::Readings)
        .expect("offsets table");
    assert!(committed.is_some_and(|o| o > 0), "{committed:?}");
    drop(store);
}

#[test]
fn a_server_on_the_format_1_file_serves_what_it_held() {
    let dir = fixture_copy();
    let data_dir = dir.path().to_str().expect("utf-8");
    let server = Binary::run(
        "format-1",
        &["--data-dir", data_dir],
        &[("SETPOINT_TOKEN", "alice=fixture-secret-0123456789")],
    );
    let setpoint = server.get("/api/v1/sensors/1/setpoint", "");
    assert_eq!(setpoint.status, 200, "{setpoint:?}");
    let json: serde_json::Value = serde_json::from_str(&setpoint.body).expect("JSON");
    assert_eq!(
        (
            json["desired"].as_f64(),
            json["version"].as_u64(),
            json["author"].as_str()
        ),
        (Some(23.5), Some(2), Some("alice")),
        "{json}"
    );
    let schedule = server.get("/api/v1/schedules/mornings", "");
    assert_eq!(schedule.status, 200, "{schedule:?}");
    assert!(schedule.body.contains("Europe/Berlin"), "{}", schedule.body);
}
