//! The Yew components, one per file, and the canvas drawing. Only the chart geometry is target-independent
//! (and tested natively); the rest needs a browser.
//!
//! The tree (browser only, so named rather than linked): `App` holds the `Header`, the `Toolbar` with its
//! `Pager`, a page of `Card`s — each a `CardHead`, a canvas drawn by `chart` and a `SetpointEditor` of three
//! `FieldRow`s, and the `SetpointHistory` toggle and list — and the `DecisionLog`.

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
pub mod header;
#[cfg(target_arch = "wasm32")]
pub mod log;
#[cfg(target_arch = "wasm32")]
pub mod pager;
#[cfg(target_arch = "wasm32")]
pub mod setpoint_editor;
#[cfg(target_arch = "wasm32")]
pub mod setpoint_history;
#[cfg(target_arch = "wasm32")]
pub mod toolbar;
