//! Golden bytes worked out by hand from the protobuf encoding rules: tag byte = field number << 3 | wire type
//! (0 = varint, 1 = 64-bit), doubles little-endian IEEE 754, negative int32 as a 10-byte varint, and proto3
//! zero values (sensorID 0, command On) not written at all.

use prost::Message;
use setpoint_control::{Command, Decision, DecisionCause, Reading, Setpoint};
use setpoint_wire::proto::{check_key, DecodeError, HeaterControl, SensorData, TemperatureControl};

/// 21.5 = 0x4035_8000_0000_0000.
const D21_5: [u8; 8] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x35, 0x40];
/// 1.0 = 0x3FF0_0000_0000_0000.
const D1: [u8; 8] = [0, 0, 0, 0, 0, 0, 0xf0, 0x3f];
/// 45.0 = 0x4046_8000_0000_0000.
const D45: [u8; 8] = [0, 0, 0, 0, 0, 0x80, 0x46, 0x40];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn reference_sensor_data(sensor: i32, temperature: f64) -> SensorData {
    SensorData {
        sensor_id: sensor,
        temperature,
        event_time_ms: 0,
    }
}

#[test]
fn sensor_data_golden_bytes() {
    let bytes = reference_sensor_data(1, 21.5).encode_to_vec();
    assert_eq!(bytes, cat(&[&[0x08, 0x01, 0x11], &D21_5]));
    // sensorID 0 is the default and is not written.
    assert_eq!(
        reference_sensor_data(0, 21.5).encode_to_vec(),
        cat(&[&[0x11], &D21_5])
    );
    // A negative int32 is sign-extended to 64 bits: ten varint bytes.
    assert_eq!(
        reference_sensor_data(-5, 21.5).encode_to_vec(),
        cat(&[
            &[0x08, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x11],
            &D21_5
        ])
    );
    // i32::MAX = 0x7fffffff: five varint bytes.
    assert_eq!(
        reference_sensor_data(i32::MAX, 21.5).encode_to_vec(),
        cat(&[&[0x08, 0xff, 0xff, 0xff, 0xff, 0x07, 0x11], &D21_5])
    );
    // All zero: empty message.
    assert!(reference_sensor_data(0, 0.0).encode_to_vec().is_empty());
}

#[test]
fn sensor_data_extension_is_field_10_and_skipped_by_reference_readers() {
    let ours = SensorData::from_reading(
        1,
        &Reading {
            t_ms: 300,
            temperature: 21.5,
        },
    )
    .encode_to_vec();
    // field 10, varint: tag 0x50; 300 = 0b10_0101100 -> 0xac 0x02.
    assert_eq!(ours, cat(&[&[0x08, 0x01, 0x11], &D21_5, &[0x50, 0xac, 0x02]]));
    // A reader that knows only fields 1-2 (the reference schema) decodes the same reading.
    #[derive(Clone, PartialEq, prost::Message)]
    struct ReferenceSensorData {
        #[prost(int32, tag = "1")]
        sensor_id: i32,
        #[prost(double, tag = "2")]
        temperature: f64,
    }
    let reference = ReferenceSensorData::decode(ours.as_slice()).expect("reference decodes ours");
    assert_eq!((reference.sensor_id, reference.temperature), (1, 21.5));
    // And a reference message reads with the record time standing in for the missing event time.
    let decoded = SensorData::decode_value(&cat(&[&[0x08, 0x01, 0x11], &D21_5])).expect("decodes");
    assert_eq!(
        decoded.reading(777),
        Reading {
            t_ms: 777,
            temperature: 21.5
        }
    );
}

#[test]
fn temperature_control_golden_bytes() {
    let msg = TemperatureControl {
        sensor_id: 2,
        desired: 45.0,
        up_delta: 1.0,
        down_delta: 1.0,
        ..TemperatureControl::default()
    };
    assert_eq!(
        msg.encode_to_vec(),
        cat(&[&[0x08, 0x02, 0x11], &D45, &[0x19], &D1, &[0x21], &D1])
    );
    // Zero deltas are not written.
    let zero = TemperatureControl {
        sensor_id: 0,
        desired: 45.0,
        ..TemperatureControl::default()
    };
    assert_eq!(zero.encode_to_vec(), cat(&[&[0x11], &D45]));
    let decoded = TemperatureControl::decode_value(&cat(&[&[0x11], &D45])).expect("decodes");
    assert_eq!(
        (decoded.sensor_id, decoded.setpoint()),
        (0, Setpoint::new(45.0, 0.0, 0.0))
    );
}

#[test]
fn heater_control_golden_bytes() {
    let on = HeaterControl {
        sensor_id: 1,
        command: 0,
        ..HeaterControl::default()
    };
    assert_eq!(on.encode_to_vec(), vec![0x08, 0x01], "On = 0 is not written");
    let off = HeaterControl {
        sensor_id: 0,
        command: 1,
        ..HeaterControl::default()
    };
    assert_eq!(off.encode_to_vec(), vec![0x10, 0x01], "sensor 0 is not written");
    assert_eq!(
        HeaterControl::decode_value(&[]).and_then(|m| m.heater_command()),
        Ok(Command::On)
    );
    assert_eq!(
        HeaterControl::decode_value(&[0x10, 0x01]).map(|m| (m.sensor_id, m.heater_command())),
        Ok((0, Ok(Command::Off)))
    );
}

#[test]
fn heater_control_round_trips_a_decision() {
    for (sensor, command, cause) in [
        (0, Command::On, DecisionCause::Band),
        (-5, Command::Off, DecisionCause::Failsafe),
        (i32::MAX, Command::On, DecisionCause::Band),
    ] {
        let d = Decision {
            sensor,
            command,
            t_ms: 1_700_000_000_123,
            temperature: -3.25,
            setpoint_version: 4,
            cause,
        };
        let bytes = HeaterControl::from_decision(&d).encode_to_vec();
        assert_eq!(
            HeaterControl::decode_value(&bytes).and_then(|m| m.decision(0)),
            Ok(d)
        );
    }
}

#[test]
fn setpoint_and_reading_round_trip() {
    let sp = Setpoint::new(21.375, 0.5, 0.0);
    let bytes = TemperatureControl::from_setpoint(-5, &sp, 12, "alice", 99).encode_to_vec();
    let back = TemperatureControl::decode_value(&bytes).expect("decodes");
    assert_eq!(
        (
            back.sensor_id,
            back.setpoint(),
            back.version,
            back.author.as_str(),
            back.event_time_ms
        ),
        (-5, sp, 12, "alice", 99)
    );
    let r = Reading {
        t_ms: 5,
        temperature: -0.0,
    };
    let back =
        SensorData::decode_value(&SensorData::from_reading(i32::MIN, &r).encode_to_vec()).expect("decodes");
    // prost treats -0.0 as the default value and omits it, so it reads back as +0.0 — numerically equal,
    // and the control rule compares numbers, so no decision can differ.
    assert_eq!((back.sensor_id, back.reading(0).temperature), (i32::MIN, 0.0));
}

#[test]
fn bad_bytes_are_typed_errors() {
    for garbage in [&[0xff_u8][..], &[0x08], &[0x11, 0x00, 0x01], &[0x0a, 0x05, 0x01]] {
        assert!(
            matches!(
                SensorData::decode_value(garbage),
                Err(DecodeError::Protobuf { .. })
            ),
            "{garbage:?}"
        );
        assert!(matches!(
            TemperatureControl::decode_value(garbage),
            Err(DecodeError::Protobuf { .. })
        ));
    }
    assert_eq!(
        HeaterControl::decode_value(&[0x10, 0x07]),
        Err(DecodeError::UnknownCommand(7))
    );
    // Unknown fields are skipped.
    let with_unknown = cat(&[&[0x08, 0x01, 0x11], &D21_5, &[0xf8, 0x01, 0x05]]);
    assert_eq!(
        SensorData::decode_value(&with_unknown).map(|m| m.sensor_id),
        Ok(1)
    );
}

#[test]
fn keys_are_decimal_sensor_ids_and_optional() {
    assert_eq!(check_key(None, 3), Ok(()));
    assert_eq!(check_key(Some(b"3"), 3), Ok(()));
    assert_eq!(check_key(Some(b"-2147483648"), i32::MIN), Ok(()));
    assert_eq!(
        check_key(Some(b"4"), 3),
        Err(DecodeError::KeyMismatch { key: 4, value: 3 })
    );
    assert!(matches!(
        check_key(Some(b"abc"), 3),
        Err(DecodeError::BadKey { .. })
    ));
    assert!(matches!(
        check_key(Some(b"2147483648"), 3),
        Err(DecodeError::BadKey { .. })
    ));
    assert!(matches!(
        check_key(Some(&[0xff, 0xfe]), 3),
        Err(DecodeError::BadKey { .. })
    ));
    assert_eq!(setpoint_wire::proto::sensor_key(-7), "-7");
}

/// The controllers' changelog record: optional fields say "unknown" by absence, so a heater that never got a
/// command is told apart from one whose last command was On (enum value 0).
#[test]
fn controller_state_keeps_absent_and_zero_apart() {
    use setpoint_control::HeaterMemory;
    use setpoint_wire::proto::ControllerState;

    let never = HeaterMemory::default();
    let on = HeaterMemory {
        last_command: Some(Command::On),
        last_change_ms: Some(0),
        newest_ms: Some(1_700_000_000_123),
        last_temperature: Some(19.5),
        stale: true,
        cycle: Some(setpoint_control::TpiCycle {
            start_ms: 0,
            on_until_ms: 0,
            version: 0,
        }),
    };
    let never_bytes = ControllerState::from_memory(7, &never).encode_to_vec();
    // Only field 1 (sensorID = 7): nothing else is written for an empty memory.
    assert_eq!(never_bytes, vec![0x08, 0x07]);
    let on_bytes = ControllerState::from_memory(7, &on).encode_to_vec();
    // lastCommand = On is present (0x10 0x00) although it is proto3's zero.
    assert_eq!(&on_bytes[2..4], &[0x10, 0x00]);
    for (memory, bytes) in [(never, never_bytes), (on, on_bytes)] {
        let decoded = ControllerState::decode_value(&bytes).expect("decodes");
        assert_eq!(decoded.sensor_id, 7);
        assert_eq!(decoded.memory(), Ok(memory));
    }
    // A temperature no reading could have (another producer's record) is not remembered.
    for bad in [f64::NAN, f64::INFINITY, -300.0] {
        let record = ControllerState {
            sensor_id: 7,
            last_temperature: Some(bad),
            ..ControllerState::default()
        };
        assert_eq!(record.memory().map(|m| m.last_temperature), Ok(None), "{bad}");
    }
    let unknown = ControllerState {
        last_command: Some(9),
        ..ControllerState::default()
    }
    .encode_to_vec();
    assert!(ControllerState::decode_value(&unknown)
        .and_then(|m| m.memory())
        .is_err());
}

/// Mode and policy are extension fields 15 and 16: a heat/hysteresis setpoint encodes exactly as before (a
/// reference reader and an older setpoint see the same bytes), an off/TPI one round-trips every parameter,
/// and a reference reader decoding it still gets its three numbers.
#[test]
fn mode_and_policy_are_extensions_reference_readers_skip() {
    use setpoint_control::{Mode, Policy, Tpi};
    let plain = Setpoint::new(21.5, 1.0, 1.0);
    let plain_bytes = TemperatureControl::from_setpoint(3, &plain, 0, "", 0).encode_to_vec();
    assert_eq!(
        plain_bytes,
        cat(&[&[0x08, 0x03, 0x11], &D21_5, &[0x19], &D1, &[0x21], &D1])
    );
    let tpi = Tpi {
        k_ext: 0.02,
        outdoor_sensor: Some(-4),
        min_on_s: 30,
        min_off_s: 20,
        ..Tpi::new(600, 0.6)
    };
    let rich = plain.with_mode(Mode::Off).with_policy(Policy::Tpi(tpi));
    let bytes = TemperatureControl::from_setpoint(3, &rich, 2, "a", 5).encode_to_vec();
    let decoded = TemperatureControl::decode_value(&bytes).expect("decodes");
    assert_eq!(decoded.setpoint(), rich);
    // A reader that knows only fields 1-4 (prost skips unknown fields, as every protobuf reader does).
    #[derive(Clone, PartialEq, prost::Message)]
    struct ReferenceTemperatureControl {
        #[prost(int32, tag = "1")]
        sensor_id: i32,
        #[prost(double, tag = "2")]
        desired: f64,
        #[prost(double, tag = "3")]
        up_delta: f64,
        #[prost(double, tag = "4")]
        down_delta: f64,
    }
    let reference = ReferenceTemperatureControl::decode(bytes.as_slice()).expect("reference decodes");
    assert_eq!(
        (
            reference.sensor_id,
            reference.desired,
            reference.up_delta,
            reference.down_delta
        ),
        (3, 21.5, 1.0, 1.0)
    );
    // A mode outside the enum is a typed error, not a guess.
    let bad = TemperatureControl {
        mode: 7,
        ..TemperatureControl::from_setpoint(3, &plain, 0, "", 0)
    }
    .encode_to_vec();
    assert_eq!(
        TemperatureControl::decode_value(&bad),
        Err(DecodeError::UnknownMode(7))
    );
}
