//! One sensor's setpoint draft and the life of a write: draft → pending → saved, or an error in words.
//!
//! Kept apart from the DOM so the rules a user relies on are testable: a draft survives a conflict so it can be
//! retried, a commit is validated by the control crate's `Limits` before it is sent (the same function the server
//! runs), and a write in flight when the connection drops is reported as lost rather than left "pending" forever.

use setpoint_control::{Limits, Mode, Policy, SensorId, Setpoint, SetpointField, Tpi};
use setpoint_wire::ws::{ErrorCode, ErrorMsg, SetpointMsg, SetpointWrite};

/// How long after a slider release or Enter the write goes out; repeated commits within it collapse into one.
const COMMIT_DEBOUNCE_MS: f64 = 250.0;

/// How long a write may wait for `ack`/`error` before the user is told it got no answer: the server's own
/// bound on answering, so a slow publish's real answer is not dropped.
const PENDING_TIMEOUT_MS: f64 = setpoint_wire::ws::WRITE_ANSWER_WITHIN_MS as f64;

/// Where the draft starts when a sensor has no setpoint yet (the control crate's, as Home Assistant's).
pub use setpoint_control::DEFAULT_SETPOINT;

/// What the editor needs of the control crate's [`SetpointField`] beyond what that crate offers: every field,
/// in the order a card shows them, and the number a field names in a setpoint.
pub trait FieldExt: Sized {
    const ALL: [Self; 3];
    fn get(self, sp: &Setpoint) -> f64;
    fn set(self, sp: &mut Setpoint, value: f64);
}

impl FieldExt for SetpointField {
    const ALL: [Self; 3] = [
        SetpointField::Desired,
        SetpointField::UpDelta,
        SetpointField::DownDelta,
    ];

    /// A TPI parameter of a room under hysteresis reads as NaN (the card shows no such input).
    fn get(self, sp: &Setpoint) -> f64 {
        let tpi = match sp.policy {
            Policy::Tpi(t) => Some(t),
            Policy::Hysteresis => None,
        };
        let param = |f: fn(&Tpi) -> f64| tpi.as_ref().map_or(f64::NAN, f);
        match self {
            SetpointField::Desired => sp.desired,
            SetpointField::UpDelta => sp.up_delta,
            SetpointField::DownDelta => sp.down_delta,
            SetpointField::CycleS => param(|t| f64::from(t.cycle_s)),
            SetpointField::KInt => param(|t| t.k_int),
            SetpointField::KExt => param(|t| t.k_ext),
            SetpointField::MinOnS => param(|t| f64::from(t.min_on_s)),
            SetpointField::MinOffS => param(|t| f64::from(t.min_off_s)),
            SetpointField::OutdoorSensor => param(|t| t.outdoor_sensor.map_or(f64::NAN, f64::from)),
        }
    }

    /// Setting a TPI parameter of a room under hysteresis does nothing; seconds and ids are rounded (the
    /// number inputs step by one).
    fn set(self, sp: &mut Setpoint, value: f64) {
        let seconds = value.round().clamp(0.0, f64::from(u32::MAX)) as u32;
        match (self, &mut sp.policy) {
            (SetpointField::Desired, _) => sp.desired = value,
            (SetpointField::UpDelta, _) => sp.up_delta = value,
            (SetpointField::DownDelta, _) => sp.down_delta = value,
            (_, Policy::Hysteresis) => {}
            (SetpointField::CycleS, Policy::Tpi(t)) => t.cycle_s = seconds,
            (SetpointField::KInt, Policy::Tpi(t)) => t.k_int = value,
            (SetpointField::KExt, Policy::Tpi(t)) => t.k_ext = value,
            (SetpointField::MinOnS, Policy::Tpi(t)) => t.min_on_s = seconds,
            (SetpointField::MinOffS, Policy::Tpi(t)) => t.min_off_s = seconds,
            (SetpointField::OutdoorSensor, Policy::Tpi(t)) => {
                t.outdoor_sensor = value
                    .is_finite()
                    .then(|| value.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32);
            }
        }
    }
}

/// The outcome of the latest write, as shown in the card's `.save-status`.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum SaveStatus {
    #[default]
    Idle,
    /// Refused in the browser by `Limits::validate`; nothing was sent.
    Invalid(String),
    /// Sent; waiting for `ack` or `error`.
    Pending { request_id: String, sent_at: f64 },
    /// Acknowledged by the server.
    Saved,
    /// The server saved the write but could not yet confirm it took effect (`unconfirmed`); the outcome
    /// arrives as a `setpoint` update: ours (→ saved) or someone else's that won (→ conflict).
    Unconfirmed,
    /// Refused by the server or lost; the text says why.
    Failed(String),
    /// Someone else changed the setpoint first; `current` is what is in force now. The draft is kept.
    Conflict { current: SetpointMsg },
}

impl SaveStatus {
    /// Text for the status element. Contains "pending", "saved" or the error, as the end-to-end test expects.
    pub fn text(&self) -> String {
        match self {
            SaveStatus::Idle => String::new(),
            SaveStatus::Invalid(m) => format!("not sent: {m}"),
            SaveStatus::Pending { .. } => "pending…".to_owned(),
            SaveStatus::Saved => "saved".to_owned(),
            SaveStatus::Unconfirmed => "saved; waiting for it to take effect…".to_owned(),
            SaveStatus::Failed(m) => format!("error: {m}"),
            SaveStatus::Conflict { current } => format!(
                "conflict: someone else set {} (+{}/−{}) — your draft is kept; save again to overwrite",
                crate::model::format::temp(current.desired),
                crate::model::format::num(current.up_delta),
                crate::model::format::num(current.down_delta)
            ),
        }
    }

    /// Whether the status reports a problem (styled as an error).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            SaveStatus::Invalid(_) | SaveStatus::Failed(_) | SaveStatus::Conflict { .. }
        )
    }
}

/// One sensor's editing state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Editor {
    /// The user's proposed setpoint; `None` while the card simply follows the setpoint in force.
    pub draft: Option<Setpoint>,
    /// The version the user started editing from, sent as `base_version` so concurrent edits are detected.
    pub base_version: Option<u64>,
    pub status: SaveStatus,
    /// When a debounced commit is due (local clock), if one is scheduled.
    pub commit_due: Option<f64>,
}

/// Rounds to 0.01 so slider arithmetic never shows 20.100000000000001.
pub(crate) fn tidy(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl Editor {
    /// The setpoint the card shows: the draft if any, else the one in force.
    pub fn shown(&self, committed: Option<&SetpointMsg>) -> Option<Setpoint> {
        self.draft.or_else(|| committed.map(SetpointMsg::setpoint))
    }

    /// Whether the draft differs from the setpoint in force (the what-if preview is shown only then).
    pub fn is_dirty(&self, committed: Option<&SetpointMsg>) -> bool {
        match (self.draft, committed) {
            (None, _) => false,
            (Some(d), Some(c)) => d != c.setpoint(),
            (Some(_), None) => true,
        }
    }

    /// Switches the draft's mode (heat or off); sent with the rest of the draft (Save, or a released slider).
    pub fn set_mode(&mut self, committed: Option<&SetpointMsg>, mode: Mode) {
        self.change(committed, |d| d.mode = mode);
    }

    /// Switches the draft's policy, keeping its band.
    pub fn set_policy(&mut self, committed: Option<&SetpointMsg>, policy: Policy) {
        self.change(committed, |d| d.policy = policy);
    }

    fn change(&mut self, committed: Option<&SetpointMsg>, f: impl FnOnce(&mut Setpoint)) {
        let mut d = match self.draft {
            Some(d) => d,
            None => {
                self.base_version = committed.map(|c| c.version);
                committed.map_or(DEFAULT_SETPOINT, SetpointMsg::setpoint)
            }
        };
        f(&mut d);
        self.draft = Some(d);
        if !matches!(
            self.status,
            SaveStatus::Pending { .. } | SaveStatus::Conflict { .. }
        ) {
            self.status = SaveStatus::Idle;
        }
    }

    /// Changes one field of the draft (starting one from the setpoint in force if needed). Non-finite input —
    /// a half-typed number — is ignored so the field keeps what the user is typing.
    pub fn edit(&mut self, committed: Option<&SetpointMsg>, field: SetpointField, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.change(committed, |d| field.set(d, tidy(value)));
    }

    /// Takes a whole setpoint as the draft, based on the version in force now: a group write gives every
    /// selected card the same value, each conditional on what that card shows, and replaces any draft of
    /// its own (the user chose the group's value over it).
    pub fn adopt(&mut self, committed: Option<&SetpointMsg>, setpoint: Setpoint) {
        self.draft = Some(setpoint);
        self.base_version = committed.map(|c| c.version);
        self.commit_due = None;
        if !matches!(self.status, SaveStatus::Pending { .. }) {
            self.status = SaveStatus::Idle;
        }
    }

    /// Schedules a commit (slider released, Enter pressed); repeated requests collapse into the last.
    pub fn request_commit(&mut self, now: f64) {
        self.commit_due = Some(now + COMMIT_DEBOUNCE_MS);
    }

    /// Abandons the draft and follows the setpoint in force again.
    pub fn discard(&mut self) {
        self.draft = None;
        self.base_version = None;
        self.commit_due = None;
        if !matches!(self.status, SaveStatus::Pending { .. }) {
            self.status = SaveStatus::Idle;
        }
    }

    /// Turns the draft into a write if it is valid. Validation is the control crate's — one source of truth —
    /// and an invalid draft is reported without being sent.
    pub fn commit(
        &mut self,
        sensor: SensorId,
        committed: Option<&SetpointMsg>,
        limits: &Limits,
        request_id: String,
        now: f64,
    ) -> Option<SetpointWrite> {
        self.commit_due = None;
        let draft = self.draft?;
        if !self.is_dirty(committed) {
            self.draft = None;
            return None;
        }
        if let Err(e) = limits.validate(&draft) {
            self.status = SaveStatus::Invalid(e.to_string());
            return None;
        }
        self.status = SaveStatus::Pending {
            request_id: request_id.clone(),
            sent_at: now,
        };
        // Mode and policy go out only when the draft changes them: absent, the write keeps those of the
        // version it is conditional on (which the draft started from), and a group write of 500 rooms
        // stays inside one frame.
        let base = committed.map_or(DEFAULT_SETPOINT, SetpointMsg::setpoint);
        let mut write = SetpointWrite::new(request_id, sensor, draft, self.base_version);
        write.mode = write.mode.filter(|m| *m != base.mode);
        write.policy = write.policy.filter(|p| *p != base.policy);
        Some(write)
    }

    fn owns(&self, request_id: &str) -> bool {
        matches!(&self.status, SaveStatus::Pending { request_id: r, .. } if r == request_id)
    }

    /// Handles an `ack`; returns whether it was for this editor. The draft is kept until the server's
    /// `setpoint` broadcast brings the new value in force, so the slider never jumps back meanwhile.
    pub fn on_ack(&mut self, request_id: &str) -> bool {
        if !self.owns(request_id) {
            return false;
        }
        self.status = SaveStatus::Saved;
        true
    }

    /// Handles an `error`; returns whether it was for this editor.
    pub fn on_error(&mut self, err: &ErrorMsg) -> bool {
        let Some(id) = err.request_id.as_deref() else {
            return false;
        };
        if !self.owns(id) {
            return false;
        }
        self.status = match (err.code, &err.current) {
            (ErrorCode::Conflict, Some(current)) => {
                // The user has now seen the value in force; a retry deliberately overwrites it.
                self.base_version = Some(current.version);
                SaveStatus::Conflict {
                    current: current.clone(),
                }
            }
            (ErrorCode::Unconfirmed, _) => SaveStatus::Unconfirmed,
            (code, _) => SaveStatus::Failed(explain(code, &err.message)),
        };
        true
    }

    /// Settles an [`SaveStatus::Unconfirmed`] write against the setpoint in force: our value in force (or the
    /// draft already gone because it landed) means it took effect; a different value newer than the write's
    /// base means another write won — the same as a conflict, draft kept. Anything else: still waiting.
    pub fn settle_unconfirmed(&mut self, in_force: Option<&SetpointMsg>) {
        if self.status != SaveStatus::Unconfirmed {
            return;
        }
        let Some(draft) = self.draft else {
            self.status = SaveStatus::Saved;
            return;
        };
        let Some(current) = in_force else { return };
        if current.setpoint() == draft {
            self.draft = None;
            self.base_version = None;
            self.status = SaveStatus::Saved;
        } else if self.base_version.is_none_or(|base| current.version > base) {
            self.base_version = Some(current.version);
            self.status = SaveStatus::Conflict {
                current: current.clone(),
            };
        }
    }

    /// A new setpoint is in force. Once it matches the draft (our write landed), the draft is dropped; an
    /// unrelated change leaves a draft alone — saving it will then report the conflict (or, for a write the
    /// server could not confirm, this change is its outcome).
    pub fn on_setpoint(&mut self, msg: &SetpointMsg) {
        self.settle_unconfirmed(Some(msg));
        if self.draft == Some(msg.setpoint()) {
            self.draft = None;
            self.base_version = None;
        }
    }

    /// The connection dropped: a write in flight has no answer coming.
    pub fn on_disconnect(&mut self) {
        if matches!(self.status, SaveStatus::Pending { .. }) {
            self.status =
                SaveStatus::Failed("connection lost before the server answered; save again".to_owned());
        }
    }

    /// Reports a write that got no answer in time. Returns whether the status changed.
    pub fn check_timeout(&mut self, now: f64) -> bool {
        if let SaveStatus::Pending { sent_at, .. } = self.status {
            if now - sent_at > PENDING_TIMEOUT_MS {
                self.status = SaveStatus::Failed("no answer from the server; save again".to_owned());
                return true;
            }
        }
        false
    }
}

/// Words for an error code, so the user learns what to do rather than a code name.
pub fn explain(code: ErrorCode, message: &str) -> String {
    let why = match code {
        ErrorCode::Unauthorized => "not authorised — this page has no valid write token",
        ErrorCode::InvalidSetpoint => return format!("invalid setpoint: {message}"),
        ErrorCode::Conflict => "changed elsewhere in the meantime",
        ErrorCode::RateLimited => "too many changes at once; wait a moment and save again",
        ErrorCode::BrokerUnavailable => "the message bus is unavailable; the change was not saved",
        ErrorCode::Internal => "server error; save again",
        ErrorCode::TooManyConnections | ErrorCode::RequestTimeout => "the server is busy; save again",
        ErrorCode::Unconfirmed => "saved, but not yet confirmed to have taken effect",
        ErrorCode::NotFound => "the server does not know this sensor",
        ErrorCode::Forbidden => "this page's origin may not write to the server",
        ErrorCode::InvalidSchedule => return format!("invalid schedule: {message}"),
        ErrorCode::MalformedFrame
        | ErrorCode::UnknownType
        | ErrorCode::InvalidMessage
        | ErrorCode::FrameTooLarge
        | ErrorCode::BinaryFrame
        | ErrorCode::MethodNotAllowed
        | ErrorCode::MisdirectedRequest
        | ErrorCode::UpgradeRequired => "the server did not understand the request",
    };
    if message.is_empty() {
        why.to_owned()
    } else {
        format!("{why} ({message})")
    }
}

#[cfg(test)]
#[path = "editor_tests.rs"]
mod tests;
