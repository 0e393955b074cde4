//! Over 400 lines on purpose: the temperature plot and the heater strip share one time axis and one
//! canvas, and the strip's cached hatch pattern and `data-heater` attribute live beside the code they cache.
//!
//! Drawing one card's chart on a `<canvas>` with the 2D context: temperature line, comfort band, desired line,
//! and under it, on the same time axis, the heater strip with decision markers (plus the what-if strip while a
//! draft is previewed).
//!
//! Canvas rather than SVG/DOM: a chart is redrawn up to 20 times a second and a DOM of thousands of path points
//! per card would dominate the frame. On/Off differ in more than hue — On is hatched and labelled, Off is flat
//! grey, markers point up (On) or down (Off) — so the strip reads without colour vision.

use std::cell::RefCell;

use setpoint_control::{Command, Setpoint, TimeMs};
use wasm_bindgen::JsCast;
use web_sys::{CanvasPattern, CanvasRenderingContext2d, HtmlCanvasElement, MediaQueryList};

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

thread_local! {
    /// The colour-scheme query, made once: `matchMedia` builds a new query object per call, and every chart
    /// draw asks.
    static DARK_QUERY: Option<MediaQueryList> = web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten());
    /// The On hatch as a pattern tile for one colour scheme and pixel ratio (`(dark, dpr, pattern)`), made
    /// on first use.
    static HATCH: RefCell<Option<(bool, f64, CanvasPattern)>> = const { RefCell::new(None) };
}

fn prefers_dark() -> bool {
    DARK_QUERY.with(|q| q.as_ref().is_some_and(MediaQueryList::matches))
}

/// Side of the hatch tile, in CSS pixels: the distance between two stripes.
const HATCH_STEP: f64 = 5.0;

/// A tile of `HATCH_STEP` CSS pixels square, in device pixels, with one diagonal stripe (and the corners of
/// its neighbours, so tiles join without gaps). Filling a rectangle with it is one call, where stroking the
/// stripes one by one inside a clip was three dozen per On stretch — on every card, every redraw.
fn hatch_pattern(ctx: &CanvasRenderingContext2d, colour: &str, dpr: f64) -> Option<CanvasPattern> {
    let tile: HtmlCanvasElement = web_sys::window()?
        .document()?
        .create_element("canvas")
        .ok()?
        .dyn_into()
        .ok()?;
    let px = (HATCH_STEP * dpr).round().max(1.0);
    tile.set_width(px as u32);
    tile.set_height(px as u32);
    let t: CanvasRenderingContext2d = tile.get_context("2d").ok()??.dyn_into().ok()?;
    t.set_stroke_style_str(colour);
    t.set_line_width(1.5 * px / HATCH_STEP);
    t.begin_path();
    for (x0, y0) in [(0.0, px), (-px, px), (px, px)] {
        t.move_to(x0, y0);
        t.line_to(x0 + px, y0 - px);
    }
    t.stroke();
    ctx.create_pattern_with_html_canvas_element(&tile, "repeat")
        .ok()?
}

/// Draws `spec` on `canvas`, resizing its backing store to the displayed size × device pixel ratio first.
/// The heater switches drawn are also written to the canvas's `data-heater` (`t_ms:on|off`, space-separated,
/// oldest first), for tests and benchmarks to see what the strip holds.
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
    let dark = prefers_dark();
    let p = if dark { &DARK } else { &LIGHT };
    let hatch = HATCH.with(|h| {
        let mut h = h.borrow_mut();
        if h.as_ref().is_none_or(|(d, r, _)| *d != dark || *r != dpr) {
            *h = hatch_pattern(&ctx, p.on_hatch, dpr).map(|pat| (dark, dpr, pat));
        }
        h.as_ref().map(|(_, _, pat)| pat.clone())
    });
    let switches = Painter {
        ctx,
        w: css_w,
        h: css_h,
        spec,
        p,
        hatch,
        dpr,
    }
    .paint();
    let mut attr = String::with_capacity(switches.len() * 18);
    for (t, c) in &switches {
        if !attr.is_empty() {
            attr.push(' ');
        }
        attr.push_str(&t.to_string());
        attr.push_str(if *c == Command::On { ":on" } else { ":off" });
    }
    // Written only when it changed (rarely: a switch entering or leaving the window).
    if canvas.get_attribute("data-heater").as_deref() != Some(attr.as_str()) {
        let _ = canvas.set_attribute("data-heater", &attr);
    }
}

struct Painter<'a> {
    ctx: CanvasRenderingContext2d,
    w: f64,
    h: f64,
    spec: &'a ChartSpec<'a>,
    p: &'static Palette,
    /// The On hatch, in device pixels; without it (no DOM to make one), On is still orange and labelled.
    hatch: Option<CanvasPattern>,
    dpr: f64,
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

    /// Returns the heater switches drawn.
    fn paint(&self) -> Vec<(TimeMs, Command)> {
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
        let switches = self.heater_strip(y, strip_h);
        if !s.compact {
            self.time_axis(y + strip_h + 1.0);
        }
        switches
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

    fn heater_strip(&self, top: f64, h: f64) -> Vec<(TimeMs, Command)> {
        let s = self.spec;
        let before = s.view.decisions.before(s.from).map(|d| d.command);
        let switches: Vec<(TimeMs, Command)> = s
            .view
            .decisions
            .range(s.from, s.to)
            .map(|d| (d.t_ms, d.command))
            .collect();
        self.strip(&segments(before, &switches, s.from, s.to), top, h, false);
        if !s.compact {
            for &(t, c) in &switches {
                self.marker(self.x(t), top, c, true, self.p.text);
            }
        }
        switches
    }

    fn whatif_strip(&self, w: &WhatIf, top: f64, h: f64) {
        let s = self.spec;
        let before = s.view.decisions.before(s.from).map(|d| d.command);
        let switches: Vec<(TimeMs, Command)> = w.decisions.iter().map(|d| (d.t_ms, d.command)).collect();
        self.strip(&segments(before, &switches, s.from, s.to), top, h, true);
        for &(t, c) in &switches {
            self.marker(self.x(t), top, c, false, self.p.whatif);
        }
    }

    /// Stretches of heater state. On: orange, hatched, labelled; Off: flat grey, labelled; unknown: faint.
    /// The what-if variant is translucent and outlined with a dashed border. All stretches of one state are
    /// one path and one fill (plus one for the hatch): a strip holding a quarter hour of switching costs a
    /// handful of canvas calls, not a dozen per stretch.
    fn strip(&self, segs: &[Segment], top: f64, h: f64, whatif: bool) {
        let ctx = &self.ctx;
        let span = |seg: &Segment| {
            let x0 = self.x(seg.from);
            (x0, (self.x(seg.to) - x0).max(0.5))
        };
        if whatif {
            ctx.set_global_alpha(0.45);
        }
        for (command, fill) in [
            (None, self.p.unknown),
            (Some(Command::Off), self.p.off),
            (Some(Command::On), self.p.on),
        ] {
            ctx.begin_path();
            let mut any = false;
            for seg in segs.iter().filter(|seg| seg.command == command) {
                let (x0, w) = span(seg);
                ctx.rect(x0, top, w, h);
                any = true;
            }
            if !any {
                continue;
            }
            ctx.set_fill_style_str(fill);
            ctx.fill();
            if let Some(hatch) = self.hatch.as_ref().filter(|_| command == Some(Command::On)) {
                // The same path, filled in device pixels, so the stripes stay crisp at any pixel ratio (a
                // path keeps the transform it was built under).
                let d = self.dpr;
                let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
                ctx.set_fill_style_canvas_pattern(hatch);
                ctx.fill();
                let _ = ctx.set_transform(d, 0.0, 0.0, d, 0.0, 0.0);
            }
        }
        if whatif {
            ctx.set_global_alpha(1.0);
            ctx.set_stroke_style_str(self.p.whatif);
            ctx.set_line_width(1.0);
            let _ = ctx.set_line_dash(&dash(&[3.0, 2.0]));
            for seg in segs {
                let (x0, w) = span(seg);
                ctx.stroke_rect(x0 + 0.5, top + 0.5, (w - 1.0).max(0.5), h - 1.0);
            }
            let _ = ctx.set_line_dash(&dash(&[]));
        }
        if self.spec.compact || h < 10.0 {
            return;
        }
        ctx.set_font(if whatif {
            "8px system-ui, sans-serif"
        } else {
            "bold 9px system-ui, sans-serif"
        });
        ctx.set_text_baseline("middle");
        for seg in segs {
            let (x0, w) = span(seg);
            let (label, colour) = match seg.command {
                Some(Command::On) => ("ON", "#111827"),
                Some(Command::Off) => ("OFF", self.p.text),
                None => continue,
            };
            if w > 26.0 {
                ctx.set_fill_style_str(colour);
                let _ = ctx.fill_text(label, x0 + 3.0, top + h / 2.0);
            }
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
