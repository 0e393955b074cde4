//! The page header: connection state, totals, the read-only notice and the cross-check verdict.

use setpoint_wire::ws::BusStatus;
use yew::prelude::*;

use crate::model::{ConnState, Model};

/// Everything the header shows, computed once per render so the component compares cheaply.
#[derive(Clone, Debug, PartialEq, Properties)]
pub struct HeaderProps {
    pub conn: &'static str,
    pub totals: String,
    pub read_only: bool,
    pub divergence: Option<String>,
    pub crosscheck: String,
    pub notice: Option<String>,
}

impl HeaderProps {
    /// Builds the header's props from the model.
    pub fn from_model(m: &Model) -> Self {
        let rate = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"));
        let mut totals = format!(
            "{} sensors · {} heating · {} readings/s · {} decisions/min",
            m.sensor_count,
            m.heating,
            rate(m.rates.readings_per_s),
            rate(m.rates.decisions_per_min)
        );
        if let Some(s) = m.status {
            totals.push_str(&format!(
                " · {} connected client{}",
                s.clients,
                if s.clients == 1 { "" } else { "s" }
            ));
        }
        let bus = match m.bus() {
            Some(BusStatus::Embedded) => "embedded",
            Some(BusStatus::Connected) => "Kafka connected",
            Some(BusStatus::Unavailable) => "Kafka UNAVAILABLE",
            None => "unknown",
        };
        totals.push_str(&format!(" · bus: {bus}"));
        if m.missed_total > 0 {
            totals.push_str(&format!(
                " · missed: {} readings (this tab fell behind)",
                m.missed_total
            ));
        }
        let st = m.crosscheck.stats();
        let crosscheck = format!(
            "cross-check: {} readings re-decided in the browser, {} decisions agreed{}",
            st.readings,
            st.agreed,
            if st.tolerated > 0 {
                format!(", {} ambiguous (setpoint change or gap) skipped", st.tolerated)
            } else {
                String::new()
            }
        );
        Self {
            conn: m.conn_label(),
            totals,
            read_only: m.conn == ConnState::Live && !m.can_write,
            divergence: m.crosscheck.divergence().map(ToString::to_string),
            crosscheck,
            notice: m.notice.clone(),
        }
    }
}

#[function_component]
pub fn Header(p: &HeaderProps) -> Html {
    html! {
        <header class="top">
            <div class="brand">
                <h1>{ "setpoint" }</h1>
                <span id="conn-state" class={classes!("conn", p.conn)} role="status" aria-label="connection">{ p.conn }</span>
            </div>
            <p id="totals">{ p.totals.clone() }</p>
            <p class="crosscheck">{ p.crosscheck.clone() }</p>
            if p.read_only {
                <p class="readonly-note">
                    { "Read-only: this page has no write token, so setpoints cannot be changed. For write access, open the URL printed by " }
                    <code>{ "setpoint run" }</code>{ ", which carries " }<code>{ "#token=…" }</code>{ "." }
                </p>
            }
            if let Some(d) = &p.divergence {
                <p id="divergence" role="alert">
                    <strong>{ "Cross-check divergence: " }</strong>{ d.clone() }
                    { ". The browser ran the same control core on the same readings and reached a different decision — the server's controller may have missed a setpoint or a reading." }
                </p>
            }
            if let Some(n) = &p.notice {
                <p class="notice" role="status">{ n.clone() }</p>
            }
        </header>
    }
}
