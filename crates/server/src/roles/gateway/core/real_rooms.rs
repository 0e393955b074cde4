//! The real rooms' devices: a thermometer's payloads become readings, the command in force goes to the
//! heater — when it changes, and again when the heater says it is online, reports the other state, or its
//! period is up. Part of [`Gateway`].

use setpoint_control::{check_temperature, Command, Decision, SensorId, SensorReading, TimeMs};

use super::{refuse, Effect, Gateway, MISMATCH_RESEND_MS};
use crate::roles::gateway::payload::{extract_number, extract_text, shown};

impl Gateway {
    /// A command of the heatercontrol stream.
    pub fn on_decision(&mut self, decision: &Decision, now: TimeMs, out: &mut Vec<Effect>) {
        let sensor = decision.sensor;
        let changed = self.commands.insert(sensor, decision.command) != Some(decision.command);
        if changed {
            if self.announced.contains(&sensor) {
                self.publish_action(sensor, out);
            }
            self.send_command(sensor, now, out);
        }
    }

    pub(super) fn on_temperature(
        &mut self,
        sensor: SensorId,
        topic: &str,
        payload: &[u8],
        now: TimeMs,
        out: &mut Vec<Effect>,
    ) {
        let Some(extract) = self
            .devices
            .get(&sensor)
            .and_then(|r| r.thermometer.as_ref())
            .map(|t| t.extract.clone())
        else {
            return;
        };
        let Some(value) = extracted(extract_number(&extract, payload), topic, payload, out) else {
            return;
        };
        if let Err(e) = check_temperature(sensor, value) {
            return refuse(out, "temperature_implausible", format!("{topic}: {e}"));
        }
        out.push(Effect::Reading(SensorReading {
            sensor,
            t_ms: now,
            temperature: value,
        }));
    }

    pub(super) fn on_relay_state(
        &mut self,
        sensor: SensorId,
        topic: &str,
        payload: &[u8],
        now: TimeMs,
        out: &mut Vec<Effect>,
    ) {
        let Some(state) = self
            .devices
            .get(&sensor)
            .and_then(|r| r.heater.as_ref())
            .and_then(|h| h.state.clone())
        else {
            return;
        };
        let Some(value) = extracted(extract_text(&state.extract, payload), topic, payload, out) else {
            return;
        };
        let actual = if value.eq_ignore_ascii_case(&state.on) {
            Command::On
        } else if value.eq_ignore_ascii_case(&state.off) {
            Command::Off
        } else {
            return refuse(out, "relay_state_unknown", format!("{topic}: {}", shown(payload)));
        };
        let wrong = self.commands.get(&sensor).is_some_and(|c| *c != actual);
        let quiet = self
            .sent
            .get(&sensor)
            .is_none_or(|at| now - at >= MISMATCH_RESEND_MS);
        if !wrong {
            self.mismatched.remove(&sensor);
        } else if quiet {
            self.send_command(sensor, now, out);
        } else {
            self.mismatched.insert(sensor);
        }
    }

    /// Sends a real heater the command in force, if it has a heater and there is one.
    pub(super) fn send_command(&mut self, sensor: SensorId, now: TimeMs, out: &mut Vec<Effect>) {
        let (Some(command), Some(heater)) = (
            self.commands.get(&sensor),
            self.devices.get(&sensor).and_then(|r| r.heater.as_ref()),
        ) else {
            return;
        };
        let payload = match command {
            Command::On => heater.on.clone(),
            Command::Off => heater.off.clone(),
        };
        let topic = heater.topic.clone();
        self.sent.insert(sensor, now);
        self.mismatched.remove(&sensor);
        // A command is not retained: a relay that reconnects gets the command in force from us, not a stale
        // one from the broker.
        self.publish(out, topic, payload, false);
    }

    /// Commands sent again to heaters that reported the wrong state too soon after a send, and to every
    /// heater whose period (`--mqtt-resend`) is up.
    pub(super) fn resend_due(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        let since_sent = |s: &SensorId, period: TimeMs| self.sent.get(s).is_some_and(|at| now - at >= period);
        let mut resend: Vec<SensorId> = self
            .mismatched
            .iter()
            .filter(|s| since_sent(s, MISMATCH_RESEND_MS))
            .copied()
            .collect();
        resend.extend(
            self.devices
                .keys()
                .filter(|s| since_sent(s, self.opts.resend_ms))
                .copied(),
        );
        resend.sort_unstable();
        resend.dedup();
        for sensor in resend {
            self.send_command(sensor, now, out);
        }
    }
}

/// A value a payload carries: `None`, and nothing else, when it does not carry it (a battery report without a
/// temperature is not an error); `None` and a refusal of that kind when it cannot be read.
fn extracted<T>(
    value: Result<Option<T>, &'static str>,
    topic: &str,
    payload: &[u8],
    out: &mut Vec<Effect>,
) -> Option<T> {
    value.unwrap_or_else(|kind| {
        refuse(out, kind, format!("{topic}: {}", shown(payload)));
        None
    })
}
