//! What a device's payload says: a number at a JSON path or the whole payload, a relay's state, an
//! availability message. Bounded and typed: anything else is an error kind the gateway counts.

use super::devices::Extract;

/// A payload for a log line: at most 80 characters, lossy UTF-8.
pub(super) fn shown(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(&payload[..payload.len().min(80)]);
    format!("{text:?}")
}

pub(super) fn number(value: f64) -> String {
    // Two decimals are more than any thermometer resolves, and keep `21.100000000000001` out of the UI.
    let rounded = (value * 100.0).round() / 100.0;
    format!("{rounded}")
}

pub(super) fn parse_number(payload: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    (text.len() <= 32)
        .then(|| text.parse::<f64>().ok())
        .flatten()
        .filter(|v| v.is_finite())
}

pub(super) fn is_online(payload: &[u8]) -> bool {
    // zigbee2mqtt's legacy availability is `online`; its current one `{"state":"online"}`; Shelly says `true`.
    let text = String::from_utf8_lossy(payload);
    let text = text.trim();
    if text.eq_ignore_ascii_case("online") || text == "true" {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("state")
                .and_then(|s| s.as_str().map(|s| s.eq_ignore_ascii_case("online")))
        })
        .unwrap_or(false)
}

/// The value at `extract` in `payload`: `Ok(None)` when a JSON object does not carry it.
pub(super) fn extract_value(
    extract: &Extract,
    payload: &[u8],
) -> Result<Option<serde_json::Value>, &'static str> {
    match extract {
        Extract::Plain => {
            let text = std::str::from_utf8(payload)
                .map_err(|_| "payload_not_utf8")?
                .trim();
            Ok(Some(serde_json::Value::String(text.to_owned())))
        }
        Extract::Json(path) => {
            let mut value: serde_json::Value =
                serde_json::from_slice(payload).map_err(|_| "payload_not_json")?;
            for key in path {
                let is_object = value.is_object();
                match value.get_mut(key).map(serde_json::Value::take) {
                    Some(v) => value = v,
                    None if is_object => return Ok(None),
                    None => return Err("payload_not_an_object"),
                }
            }
            Ok(Some(value))
        }
    }
}

pub(super) fn extract_number(extract: &Extract, payload: &[u8]) -> Result<Option<f64>, &'static str> {
    Ok(match extract_value(extract, payload)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(n.as_f64().ok_or("temperature_not_a_number")?),
        Some(serde_json::Value::String(s)) => {
            Some(parse_number(s.as_bytes()).ok_or("temperature_not_a_number")?)
        }
        Some(_) => return Err("temperature_not_a_number"),
    })
}

pub(super) fn extract_text(extract: &Extract, payload: &[u8]) -> Result<Option<String>, &'static str> {
    Ok(match extract_value(extract, payload)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Bool(b)) => Some(if b { "on" } else { "off" }.into()),
        Some(_) => return Err("relay_state_unknown"),
    })
}
