//! The browser WebSocket: connects with the token subprotocol, queues incoming frames, reconnects with backoff.
//!
//! Frames are not applied where they arrive: `onmessage` only appends the text to a queue, which the animation
//! frame loop drains. A burst of a hundred frames thus costs one render, and the model is never touched from a
//! socket callback.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use setpoint_wire::ws::ClientMessage;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, WebSocket};

use crate::net::backoff::Backoff;

/// What the socket reports to the frame loop, in arrival order.
#[derive(Debug)]
pub enum Inbound {
    Text(String),
    Closed,
}

/// Shared queue of inbound events.
pub type Queue = Rc<RefCell<VecDeque<Inbound>>>;

struct Inner {
    url: String,
    protocols: Vec<String>,
    ws: Option<WebSocket>,
    /// Incremented per connection attempt; late events of an abandoned socket carry an old number and are ignored.
    generation: u64,
    opened_at: Option<f64>,
    backoff: Backoff,
    retry: Option<Timeout>,
    queue: Queue,
    // Kept alive as long as their socket; replaced on reconnect.
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// A self-reconnecting WebSocket.
#[derive(Clone)]
pub struct Socket(Rc<RefCell<Inner>>);

fn now() -> f64 {
    js_sys::Date::now()
}

impl Socket {
    /// Starts connecting at once.
    pub fn connect(url: String, protocols: Vec<String>, queue: Queue) -> Self {
        let s = Socket(Rc::new(RefCell::new(Inner {
            url,
            protocols,
            ws: None,
            generation: 0,
            opened_at: None,
            backoff: Backoff::default(),
            retry: None,
            queue,
            handlers: Vec::new(),
        })));
        s.open();
        s
    }

    fn open(&self) {
        let mut inner = self.0.borrow_mut();
        inner.generation += 1;
        inner.opened_at = None;
        inner.retry = None;
        let generation = inner.generation;
        let protocols: js_sys::Array = inner.protocols.iter().map(|p| JsValue::from_str(p)).collect();
        let ws = match WebSocket::new_with_str_sequence(&inner.url, &protocols) {
            Ok(ws) => ws,
            Err(_) => {
                drop(inner);
                self.schedule_retry(generation);
                return;
            }
        };

        let queue = inner.queue.clone();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            if let Some(text) = e
                .dyn_into::<MessageEvent>()
                .ok()
                .and_then(|m| m.data().as_string())
            {
                queue.borrow_mut().push_back(Inbound::Text(text));
            }
        });
        let me = self.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
            let mut inner = me.0.borrow_mut();
            if inner.generation == generation {
                inner.opened_at = Some(now());
            }
        });
        let me = self.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
            let current = me.0.borrow().generation == generation;
            if current {
                me.0.borrow().queue.borrow_mut().push_back(Inbound::Closed);
                me.schedule_retry(generation);
            }
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        if let Some(old) = inner.ws.take() {
            old.set_onmessage(None);
            old.set_onopen(None);
            old.set_onclose(None);
            let _ = old.close();
        }
        inner.ws = Some(ws);
        inner.handlers = vec![on_message, on_open, on_close];
    }

    fn schedule_retry(&self, generation: u64) {
        let mut inner = self.0.borrow_mut();
        if inner.generation != generation || inner.retry.is_some() {
            return;
        }
        let up_for = inner.opened_at.map(|t| now() - t);
        let delay = inner.backoff.next_delay(up_for, js_sys::Math::random());
        let me = self.clone();
        inner.retry = Some(Timeout::new(delay.round() as u32, move || me.open()));
    }

    /// Sends a message if the socket is open. The error text is shown to the user.
    pub fn send(&self, msg: &ClientMessage) -> Result<(), String> {
        let inner = self.0.borrow();
        let ws = inner
            .ws
            .as_ref()
            .filter(|ws| ws.ready_state() == WebSocket::OPEN)
            .ok_or("not connected")?;
        let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
        ws.send_with_str(&text)
            .map_err(|_| "the browser refused to send".to_owned())
    }
}
