//! Applying what the server sends: the state of a (re)connection, live data, write outcomes and status.

use std::cmp::Reverse;

use setpoint_control::{Decision, TimeMs};
use setpoint_wire::ws::{
    DecisionsBatch, ErrorMsg, Hello, ReadingsBatch, ServerMessage, SetpointMsg, StatusMsg,
};

use crate::model::action::Changes;
use crate::model::editor::explain;
use crate::model::{ConnState, Model, Rates, LOG_LEN};

impl Model {
    /// A frame that does not decode is reported in the header, never a panic.
    pub(super) fn on_frame(&mut self, text: &str, now: f64, changes: &mut Changes) {
        match ServerMessage::from_json(text) {
            Ok(msg) => self.on_server(msg, now, changes),
            Err(e) => {
                self.notice = Some(format!(
                    "ignored a message the dashboard does not understand: {e}"
                ));
                changes.model();
            }
        }
    }

    /// Every message counts as a change, even one that turns out to hold nothing new: telling the two apart
    /// costs more than the render it would save.
    pub(super) fn on_server(&mut self, msg: ServerMessage, now: f64, changes: &mut Changes) {
        changes.model();
        match msg {
            ServerMessage::Hello(h) => self.on_hello(h, now, changes),
            ServerMessage::View(v) => self.on_view(v, changes),
            ServerMessage::Readings(b) => self.on_readings(b, now, changes),
            ServerMessage::Decision(d) => self.on_decision(d, changes),
            ServerMessage::Decisions(b) => self.on_decisions(b, now, changes),
            ServerMessage::Setpoint(s) => self.on_setpoint(s, now, changes),
            ServerMessage::SetpointHistory(h) => self.on_setpoint_history(h, changes),
            ServerMessage::Ack { request_id, setpoint } => self.on_ack(&request_id, setpoint, changes),
            ServerMessage::Error(e) => self.on_error(e, changes),
            ServerMessage::Status(s) => self.on_status(s, now),
            ServerMessage::Schedules(s) => self.on_schedules(s, changes),
        }
    }

    /// Start of a (re)connection: what the tab may do, the controller's configuration and the size of the
    /// building. The connection watches nothing yet, so the view is asked for at once; its answer treats
    /// every room of the page as new (summary, then history), so what happened while away is neither
    /// missing nor doubled. The readings already held are kept (the history is merged into them without
    /// duplicates); the heater history and the decision log restart from the answer.
    fn on_hello(&mut self, h: Hello, now: f64, changes: &mut Changes) {
        self.conn = ConnState::Live;
        self.can_write = h.can_write;
        self.config = h.config;
        self.sensor_count = h.sensor_count;
        self.clock_offset = h.server_time_ms as f64 - now;
        self.rates = Rates::default();
        self.status = None;
        self.notice = None;
        self.log.clear();
        self.crosscheck.reset(h.config);
        self.ask_view(now, changes);
        self.refresh_histories(changes);
        changes.all_sensors();
    }

    fn on_readings(&mut self, b: ReadingsBatch, now: f64, changes: &mut Changes) {
        if b.missed > 0 {
            self.missed_total += b.missed;
            if !b.backfill {
                self.crosscheck.on_missed(&b.items);
            }
        }
        let live = !b.backfill && self.conn == ConnState::Live;
        for item in b.items {
            // A room not kept (it left the page) is not brought back by a reading still on its way.
            let Some(v) = self.sensors.get_mut(&item.sensor) else {
                continue;
            };
            if v.readings.insert(item.reading()) {
                changes.sensor(item.sensor);
                // Only new live readings go to the cross-check: backfill happened before the state in `hello`.
                if live {
                    self.crosscheck.on_reading(item, now);
                }
            }
        }
    }

    /// A live decision. Only one new to this tab reaches the cross-check: a copy of one already held came
    /// in `hello` or the backfill too, and the cross-check knows those already.
    fn on_decision(&mut self, d: Decision, changes: &mut Changes) {
        if self
            .sensors
            .get_mut(&d.sensor)
            .is_some_and(|v| v.decisions.insert(d))
        {
            changes.sensor(d.sensor);
            self.log_insert(d);
            self.crosscheck.on_server_decision(d);
        }
    }

    /// Decisions from before this connection (sent after `hello`), merged like live ones. They are history
    /// to the cross-check, not decisions to compare: their readings are not judged here (only live readings
    /// are), so they only bring its state forward where they are newer than what `hello` said.
    fn on_decisions(&mut self, b: DecisionsBatch, now: f64, changes: &mut Changes) {
        if !b.backfill {
            b.items.into_iter().for_each(|d| self.on_decision(d, changes));
            return;
        }
        let mut any = false;
        for d in b.items {
            if self
                .sensors
                .get_mut(&d.sensor)
                .is_some_and(|v| v.decisions.insert(d))
            {
                any = true;
                self.log_insert(d);
                self.crosscheck.on_backfill_decision(d, now);
            }
        }
        if any {
            changes.all_sensors();
        }
    }

    fn on_setpoint(&mut self, s: SetpointMsg, now: f64, changes: &mut Changes) {
        let server_now = self.server_now(now) as TimeMs;
        let Some(v) = self.sensors.get_mut(&s.sensor) else {
            return; // a room not kept
        };
        if v.setpoint.as_ref().is_some_and(|cur| cur.version > s.version) {
            return; // an older broadcast overtaken by a newer one
        }
        v.editor.on_setpoint(&s);
        if let Some(list) = v.history.as_mut() {
            list.on_live(&s, v.setpoint.as_ref(), server_now);
        }
        v.setpoint = Some(s.clone());
        changes.sensor(s.sensor);
        self.crosscheck.on_setpoint(s, now);
    }

    /// An ack carries the value the write put in force: a room the page no longer watches gets no
    /// `setpoint` update, so the ack's value is what settles its card (a newer one only; a watched room had
    /// the update first).
    fn on_ack(&mut self, request_id: &str, in_force: Option<SetpointMsg>, changes: &mut Changes) {
        let Some(sensor) = self.inflight.remove(request_id) else {
            return;
        };
        if let Some(v) = self.sensors.get_mut(&sensor) {
            if v.editor.on_ack(request_id) {
                changes.sensor(sensor);
            }
            let newer = |sp: &SetpointMsg| v.setpoint.as_ref().is_none_or(|cur| cur.version < sp.version);
            if let Some(sp) = in_force.filter(|sp| sp.sensor == sensor && newer(sp)) {
                v.editor.on_setpoint(&sp);
                v.setpoint = Some(sp);
                changes.sensor(sensor);
            }
        }
    }

    /// An error answering one of our writes goes to its card; any other is shown in the header.
    fn on_error(&mut self, e: ErrorMsg, changes: &mut Changes) {
        let routed = e.request_id.as_ref().and_then(|id| self.inflight.remove(id));
        match routed.and_then(|sensor| self.sensors.get_mut(&sensor)) {
            Some(v) => {
                if let Some(current) = e.current.as_ref().filter(|c| c.sensor == v.id) {
                    // A conflict tells us the value in force; show it even before its broadcast arrives.
                    if v.setpoint
                        .as_ref()
                        .is_none_or(|cur| cur.version <= current.version)
                    {
                        v.setpoint = Some(current.clone());
                    }
                }
                v.editor.on_error(&e);
                // An `unconfirmed` write's outcome may already be in force.
                v.editor.settle_unconfirmed(v.setpoint.as_ref());
                changes.sensor(v.id);
            }
            None => self.notice = Some(format!("server: {}", explain(e.code, &e.message))),
        }
    }

    fn on_status(&mut self, s: StatusMsg, now: f64) {
        if let Some(prev) = self.status {
            let dt = (s.server_time_ms - prev.server_time_ms) as f64 / 1000.0;
            // Two statuses closer together than this (or out of order) give a rate that is mostly noise.
            if dt > 0.2 {
                let dr = s.readings_total.saturating_sub(prev.readings_total) as f64;
                let dd = s.decisions_total.saturating_sub(prev.decisions_total) as f64;
                self.rates = Rates {
                    readings_per_s: Some(dr / dt),
                    decisions_per_min: Some(dd * 60.0 / dt),
                };
            }
        }
        self.clock_offset = s.server_time_ms as f64 - now;
        self.sensor_count = s.sensors;
        self.heating = s.heating;
        self.status = Some(s);
    }

    /// The connection closed: show it, and fail writes that can no longer be answered.
    pub(super) fn on_close(&mut self, changes: &mut Changes) {
        self.conn = ConnState::Reconnecting;
        self.inflight.clear();
        changes.model();
        for v in self.sensors.values_mut() {
            let before = v.editor.status.clone();
            v.editor.on_disconnect();
            if v.editor.status != before {
                changes.sensor(v.id);
            }
        }
    }

    /// Keeps the log sorted newest first and free of duplicates, whatever order decisions arrive in.
    pub(super) fn log_insert(&mut self, d: Decision) {
        let key = |e: &Decision| (e.t_ms, Reverse(e.sensor));
        if self.log.len() >= LOG_LEN && self.log.back().is_some_and(|oldest| key(&d) < key(oldest)) {
            return; // older than every row of a full log: a backfill mostly is
        }
        let mut idx = 0;
        for (i, e) in self.log.iter().enumerate() {
            if e.t_ms == d.t_ms && e.sensor == d.sensor {
                return;
            }
            if (e.t_ms, Reverse(e.sensor)) < (d.t_ms, Reverse(d.sensor)) {
                break;
            }
            idx = i + 1;
        }
        if idx >= LOG_LEN {
            return;
        }
        self.log.insert(idx, d);
        self.log.truncate(LOG_LEN);
    }
}
