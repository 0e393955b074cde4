//! Drawing one card's chart on a `<canvas>` with the 2D context: temperature line, comfort band, desired line,
//! and under it, on the same time axis, the heater strip with decision markers (plus the what-if strip while a
//! draft is previewed).
//!
//! Canvas rather than SVG/DOM: a chart is redrawn up to 20 times a second and a DOM of thousands of path points
//! per card would dominate the frame. On/Off differ in more than hue — On is hatched and labelled, Off is flat
//! grey, markers point up (On) or down (Off) — so the strip reads without colour vision.

use setpoint_control::{Command, Setpoint, TimeMs};
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::model::format;
use crate::model::sensor::SensorView;
use crate::model::whatif::WhatIf;
use crate::ui::geometry::{columns, segments, y_range, Segment};

/// Colours for one colour scheme; chosen from a colour-blind-safe palette (blue line, orange heat).
struct Palette {
    text: &'static str,
    grid: &'static str,
    line: &'static str,
    band: &'static str,
    desired: &'static str,
    on: &'static str,
    on_hatch: &'static str,
    off: &'static str,
    unknown: &'static str,
    whatif: &'static str,
}

const LIGHT: Palette = Palette {
    text: "#475569",
    grid: "rgba(100,116,139,0.18)",
    line: "#1d4ed8",
    band: "rgba(16,185,129,0.16)",
    desired: "#047857",
    on: "#ea580c",
    on_hatch: "rgba(255,255,255,0.55)",
    off: "#cbd5e1",
    unknown: "rgba(148,163,184,0.25)",
    whatif: "#7c3aed",
};

const DARK: Palette = Palette {
    text: "#cbd5e1",
    grid: "rgba(148,163,184,0.16)",
    line: "#60a5fa",
    band: "rgba(52,211,153,0.16)",
    desired: "#34d399",
    on: "#fb923c",
    on_hatch: "rgba(0,0,0,0.45)",
    off: "#475569",
    unknown: "rgba(100,116,139,0.25)",
    whatif: "#c4b5fd",
};

/// What to draw.
pub struct ChartSpec<'a> {
    pub view: &'a SensorView,
    /// The band shown: the draft while editing, else the setpoint in force.
    pub shown: Option<Setpoint>,
    /// The setpoint in force, outlined while a different draft is shown.
    pub committed: Option<Setpoint>,
    pub whatif: Option<&'a WhatIf>,
    pub from: TimeMs,
    pub to: TimeMs,
    pub compact: bool,
}

fn prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}

/// Draws `spec` on `canvas`, resizing its backing store to the displayed size × device pixel ratio first.
pub fn draw(canvas: &HtmlCanvasElement, spec: &ChartSpec<'_>) {
    let Some(window) = web_sys::window() else { return };
    let dpr = window.device_pixel_ratio().max(1.0);
    let css_w = f64::from(canvas.client_width().max(1));
    let css_h = f64::from(canvas.client_height().max(1));
    let (pw, ph) = ((css_w * dpr).round() as u32, (css_h * dpr).round() as u32);
    if canvas.width() != pw || canvas.height() != ph {
        canvas.set_width(pw);
        canvas.set_height(ph);
    }
    let Some(ctx) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.clear_rect(0.0, 0.0, css_w, css_h);
    let p = if prefers_dark() { &DARK } else { &LIGHT };
    Painter {
        ctx,
        w: css_w,
        h: css_h,
        spec,
        p,
    }
    .paint();
}

struct Painter<'a> {
    ctx: CanvasRenderingContext2d,
    w: f64,
    h: f64,
    spec: &'a ChartSpec<'a>,
    p: &'static Palette,
}

impl Painter<'_> {
    fn x(&self, t: TimeMs) -> f64 {
        let span = (self.spec.to - self.spec.from).max(1) as f64;
        self.left() + (t - self.spec.from) as f64 / span * (self.w - self.left() - 2.0)
    }

    fn left(&self) -> f64 {
        if self.spec.compact {
            1.0
        } else {
            38.0
        }
    }

    fn paint(&self) {
        let s = self.spec;
        let strip_h = if s.compact { 4.0 } else { 16.0 };
        let whatif_h = if s.whatif.is_some() && !s.compact {
            12.0
        } else {
            0.0
        };
        let axis_h = if s.compact { 0.0 } else { 12.0 };
        let plot_bottom = self.h - strip_h - whatif_h - axis_h - 2.0;
        self.plot(1.0, plot_bottom);
        let mut y = plot_bottom + 2.0;
        if let Some(w) = s.whatif.filter(|_| !s.compact) {
            self.whatif_strip(w, y, whatif_h - 2.0);
            y += whatif_h;
        }
        self.heater_strip(y, strip_h);
        if !s.compact {
            self.time_axis(y + strip_h + 1.0);
        }
    }

    fn plot(&self, top: f64, bottom: f64) {
        let s = self.spec;
        let ctx = &self.ctx;
        let width_px = (self.w - self.left()).max(1.0) as usize;
        let cols = columns(s.view.readings.range(s.from, s.to), s.from, s.to, width_px);
        let band = s.shown.map(|sp| (sp.lower(), sp.upper()));
        let (lo, hi) = y_range(&cols, band);
        let y = |v: f64| bottom - (v - lo) / (hi - lo) * (bottom - top);
        let left = self.left();

        // Comfort band and desired line.
        if let Some(sp) = s.shown {
            ctx.set_fill_style_str(self.p.band);
            ctx.fill_rect(
                left,
                y(sp.upper()),
                self.w - left,
                (y(sp.lower()) - y(sp.upper())).max(1.0),
            );
            ctx.set_stroke_style_str(self.p.desired);
            ctx.set_line_width(1.0);
            let _ = ctx.set_line_dash(&dash(&[4.0, 3.0]));
            ctx.begin_path();
            ctx.move_to(left, y(sp.desired));
            ctx.line_to(self.w, y(sp.desired));
            ctx.stroke();
        }
        if let (Some(c), Some(shown)) = (s.committed, s.shown) {
            if c != shown {
                // Where the band is now, so the user sees what the draft changes.
                ctx.set_stroke_style_str(self.p.text);
                let _ = ctx.set_line_dash(&dash(&[1.0, 3.0]));
                for v in [c.lower(), c.upper()] {
                    ctx.begin_path();
                    ctx.move_to(left, y(v));
                    ctx.line_to(self.w, y(v));
                    ctx.stroke();
                }
            }
        }
        let _ = ctx.set_line_dash(&dash(&[]));

        if !s.compact {
            ctx.set_fill_style_str(self.p.text);
            ctx.set_font("10px system-ui, sans-serif");
            ctx.set_text_baseline("top");
            let _ = ctx.fill_text(&format::num(hi), 2.0, top);
            ctx.set_text_baseline("bottom");
            let _ = ctx.fill_text(&format::num(lo), 2.0, bottom);
            // Decision times as faint verticals, so a switch can be related to the curve.
            ctx.set_stroke_style_str(self.p.grid);
            ctx.begin_path();
            for d in s.view.decisions.range(s.from, s.to) {
                let x = self.x(d.t_ms);
                ctx.move_to(x, top);
                ctx.line_to(x, bottom);
            }
            ctx.stroke();
        }

        // Temperature: min–max per column (keeps spikes), joined through each column's last value.
        ctx.set_stroke_style_str(self.p.line);
        ctx.set_line_width(if s.compact { 1.0 } else { 1.5 });
        ctx.begin_path();
        let mut first = true;
        for c in &cols {
            let x = left + c.x as f64;
            if first {
                ctx.move_to(x, y(c.min));
                first = false;
            } else {
                ctx.line_to(x, y(c.min));
            }
            if c.max > c.min {
                ctx.line_to(x, y(c.max));
            }
            ctx.line_to(x, y(c.last));
        }
        ctx.stroke();
    }

    fn heater_strip(&self, top: f64, h: f64) {
        let s = self.spec;
        let before = s.view.decisions.before(s.from).map(|d| d.command);
        let switches: Vec<(TimeMs, Command)> = s
            .view
            .decisions
            .range(s.from, s.to)
            .map(|d| (d.t_ms, d.command))
            .collect();
        let segs = segments(before, &switches, s.from, s.to);
        for seg in &segs {
            self.segment(seg, top, h, false);
        }
        if !s.compact {
            for &(t, c) in &switches {
                self.marker(self.x(t), top, c, true, self.p.text);
            }
        }
    }

    fn whatif_strip(&self, w: &WhatIf, top: f64, h: f64) {
        let s = self.spec;
        let before = s.view.decisions.before(s.from).map(|d| d.command);
        let switches: Vec<(TimeMs, Command)> = w.decisions.iter().map(|d| (d.t_ms, d.command)).collect();
        for seg in segments(before, &switches, s.from, s.to) {
            self.segment(&seg, top, h, true);
        }
        for &(t, c) in &switches {
            self.marker(self.x(t), top, c, false, self.p.whatif);
        }
    }

    /// One stretch of heater state. On: orange, hatched, labelled; Off: flat grey, labelled; unknown: faint.
    /// The what-if variant is outlined with a dashed border instead of filled solid.
    fn segment(&self, seg: &Segment, top: f64, h: f64, whatif: bool) {
        let ctx = &self.ctx;
        let (x0, x1) = (self.x(seg.from), self.x(seg.to));
        let w = (x1 - x0).max(0.5);
        let (fill, label) = match seg.command {
            Some(Command::On) => (self.p.on, "ON"),
            Some(Command::Off) => (self.p.off, "OFF"),
            None => (self.p.unknown, ""),
        };
        ctx.set_global_alpha(if whatif { 0.45 } else { 1.0 });
        ctx.set_fill_style_str(fill);
        ctx.fill_rect(x0, top, w, h);
        ctx.set_global_alpha(1.0);
        if seg.command == Some(Command::On) {
            ctx.save();
            ctx.begin_path();
            ctx.rect(x0, top, w, h);
            ctx.clip();
            ctx.set_stroke_style_str(self.p.on_hatch);
            ctx.set_line_width(1.5);
            ctx.begin_path();
            let mut x = x0 - h;
            while x < x1 {
                ctx.move_to(x, top + h);
                ctx.line_to(x + h, top);
                x += 5.0;
            }
            ctx.stroke();
            ctx.restore();
        }
        if whatif {
            ctx.set_stroke_style_str(self.p.whatif);
            ctx.set_line_width(1.0);
            let _ = ctx.set_line_dash(&dash(&[3.0, 2.0]));
            ctx.stroke_rect(x0 + 0.5, top + 0.5, (w - 1.0).max(0.5), h - 1.0);
            let _ = ctx.set_line_dash(&dash(&[]));
        }
        if !self.spec.compact && !label.is_empty() && w > 26.0 && h >= 10.0 {
            ctx.set_fill_style_str(if seg.command == Some(Command::On) {
                "#111827"
            } else {
                self.p.text
            });
            ctx.set_font(if whatif {
                "8px system-ui, sans-serif"
            } else {
                "bold 9px system-ui, sans-serif"
            });
            ctx.set_text_baseline("middle");
            let _ = ctx.fill_text(label, x0 + 3.0, top + h / 2.0);
        }
    }

    /// A decision marker: ▲ for On, ▼ for Off (shape, not only colour). Hollow for what-if.
    fn marker(&self, x: f64, top: f64, c: Command, filled: bool, colour: &str) {
        let ctx = &self.ctx;
        let s = 4.0;
        ctx.begin_path();
        match c {
            Command::On => {
                ctx.move_to(x - s, top + s * 1.5);
                ctx.line_to(x + s, top + s * 1.5);
                ctx.line_to(x, top);
            }
            Command::Off => {
                ctx.move_to(x - s, top);
                ctx.line_to(x + s, top);
                ctx.line_to(x, top + s * 1.5);
            }
        }
        ctx.close_path();
        if filled {
            ctx.set_fill_style_str(colour);
            ctx.fill();
        } else {
            ctx.set_stroke_style_str(colour);
            ctx.set_line_width(1.2);
            ctx.stroke();
        }
    }

    fn time_axis(&self, top: f64) {
        let ctx = &self.ctx;
        let span_min = (self.spec.to - self.spec.from) as f64 / 60_000.0;
        ctx.set_fill_style_str(self.p.text);
        ctx.set_font("10px system-ui, sans-serif");
        ctx.set_text_baseline("top");
        let _ = ctx.fill_text(
            &format!("−{} min", format::num(span_min).trim_end_matches(".0")),
            self.left(),
            top,
        );
        let now = "now";
        let w = ctx.measure_text(now).map(|m| m.width()).unwrap_or(18.0);
        let _ = ctx.fill_text(now, self.w - w - 2.0, top);
    }
}

fn dash(v: &[f64]) -> js_sys::Array {
    v.iter().map(|x| wasm_bindgen::JsValue::from_f64(*x)).collect()
}
