//! The Yew components, one per file, and the canvas drawing. Only the chart geometry is target-independent
//! (and tested natively); the rest needs a browser.
//!
//! The tree (browser only, so named rather than linked): `App` holds the `Header`, the `Toolbar` with its
//! `Pager`, the `SchedulesPanel` when open (the list and a `ScheduleEditor` of `StepRowEditor`s), the
//! `GroupPanel` (pages that can write: selection and one setpoint of three `FieldRow`s for many cards), a
//! page of `Card`s — each a `CardHead` (with its selection box), a canvas drawn by `chart`, its
//! `NextStepLine` and a `SetpointEditor` of three `FieldRow`s, and the `SetpointHistory` toggle and list —
//! and the `DecisionLog`.

pub mod geometry;

#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod card;
#[cfg(target_arch = "wasm32")]
pub mod card_head;
#[cfg(target_arch = "wasm32")]
pub mod chart;
#[cfg(target_arch = "wasm32")]
pub mod field_row;
#[cfg(target_arch = "wasm32")]
pub mod group_panel;
#[cfg(target_arch = "wasm32")]
pub mod header;
#[cfg(target_arch = "wasm32")]
pub mod log;
#[cfg(target_arch = "wasm32")]
pub mod next_step;
#[cfg(target_arch = "wasm32")]
pub mod pager;
#[cfg(target_arch = "wasm32")]
pub mod policy_picker;
#[cfg(target_arch = "wasm32")]
pub mod schedule_editor;
#[cfg(target_arch = "wasm32")]
pub mod schedules_panel;
#[cfg(target_arch = "wasm32")]
pub mod setpoint_editor;
#[cfg(target_arch = "wasm32")]
pub mod setpoint_history;
#[cfg(target_arch = "wasm32")]
pub mod step_row;
#[cfg(target_arch = "wasm32")]
pub mod toolbar;
