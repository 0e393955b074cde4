//! The decision log: the latest commands, newest first.

use setpoint_control::{Command, Decision, DecisionCause};
use yew::prelude::*;

use crate::model::format;

#[derive(Clone, PartialEq, Properties)]
pub struct LogProps {
    pub rows: Vec<Decision>,
    /// Browser's offset from UTC in minutes (east positive), for local wall-clock times.
    pub utc_offset_min: i64,
}

#[function_component]
pub fn DecisionLog(p: &LogProps) -> Html {
    html! {
        <section class="log" aria-labelledby="log-title">
            <h2 id="log-title">{ "Decision log" }<span class="muted">{ format!(" — latest {}", p.rows.len()) }</span></h2>
            <div class="log-scroll">
                <table>
                    <thead><tr><th>{ "Time" }</th><th>{ "Sensor" }</th><th>{ "Temp." }</th><th>{ "Heater" }</th><th>{ "Cause" }</th></tr></thead>
                    <tbody id="decision-log">
                        { for p.rows.iter().map(|d| {
                            let (cls, text) = match d.command { Command::On => ("cmd on", "ON"), Command::Off => ("cmd off", "OFF") };
                            let cause = match d.cause {
                                DecisionCause::Band => "band",
                                DecisionCause::Failsafe => "failsafe (sensor silent)",
                            };
                            html! {
                                <tr class="log-row" key={format!("{}-{}", d.sensor, d.t_ms)} data-sensor={d.sensor.to_string()}
                                    data-t-ms={d.t_ms.to_string()} data-command={text}>
                                    <td>{ format::clock(d.t_ms, p.utc_offset_min) }</td>
                                    <td>{ d.sensor }</td>
                                    <td>{ format::temp(d.temperature) }</td>
                                    <td><span class={cls}>{ text }</span></td>
                                    <td>{ cause }</td>
                                </tr>
                            }
                        }) }
                    </tbody>
                </table>
            </div>
        </section>
    }
}
