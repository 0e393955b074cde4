//! The pure replay behind the dashboard's what-if preview: one sensor's readings under a proposed setpoint,
//! through the same step function as [`Controller::on_reading`](crate::Controller::on_reading).

use crate::sensor::{SensorState, VersionedSetpoint};
use crate::{Config, Decision, Reading, SensorId, SetpointError};

/// Replays one sensor's readings under a proposed setpoint, starting from `initial` state, and returns the
/// decisions the controller would have made. Pure: the dashboard's what-if preview runs it on every slider
/// move, and it shares the step function with
/// [`Controller::on_reading`](crate::Controller::on_reading), so preview and reality agree.
/// Readings the controller would refuse (not finite, or below absolute zero) are skipped, as it skips them.
///
/// `outdoor` is the outdoor sensor's readings, in time order, for a TPI policy with an outdoor term: each
/// reading is decided with the newest outdoor reading dated at or before it (none yet: no outdoor term).
/// The live controller takes the newest one it has *taken*, which on one log is the same thing; across
/// partitions it can differ by the lag between them, so a preview with `k_ext` is exact up to that.
pub fn replay(
    config: &Config,
    sensor: SensorId,
    initial: &SensorState,
    setpoint: VersionedSetpoint,
    readings: &[Reading],
    outdoor: &[Reading],
) -> Result<Vec<Decision>, SetpointError> {
    config.limits.validate(&setpoint.setpoint)?;
    let mut state = initial.clone();
    state.setpoints.replace(setpoint);
    let mut out = Vec::new();
    let mut taken = 0;
    let mut outdoor_now = None;
    for reading in readings {
        while let Some(o) = outdoor.get(taken).filter(|o| o.t_ms <= reading.t_ms) {
            if o.temperature.is_finite() {
                outdoor_now = Some(o.temperature);
            }
            taken += 1;
        }
        if let Ok((_, Some(decision))) = state.step_with(config, sensor, reading, None, outdoor_now) {
            out.push(decision);
        }
    }
    Ok(out)
}
