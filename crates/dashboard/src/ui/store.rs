//! The one shared state of the page: the model, the inbound queue and the socket.
//!
//! A `Rc<RefCell<Model>>` rather than a Yew reducer: messages arrive at up to hundreds per second and are
//! applied in batches once per animation frame, and cards read their sensor's slice directly. Components learn
//! about changes through version counters (the model's and each sensor's `rev`), so only what changed renders.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::model::Model;
use crate::net::socket::{Inbound, Queue, Socket};
use crate::net::token;

/// Cheap to clone; equal when it is the same store (so it can sit in component props).
#[derive(Clone)]
pub struct Store(Rc<Shared>);

/// What the store holds.
pub struct Shared {
    pub model: RefCell<Model>,
    pub queue: Queue,
    pub socket: Socket,
}

impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Store {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Local wall clock in ms; the model converts to server time with the offset it learned.
pub fn now() -> f64 {
    js_sys::Date::now()
}

impl Store {
    /// Reads the token, opens the socket and starts with an empty model.
    pub fn start() -> Self {
        let token = token::load();
        let (protocol, host) = web_sys::window()
            .map(|w| {
                let l = w.location();
                (l.protocol().unwrap_or_default(), l.host().unwrap_or_default())
            })
            .unwrap_or_default();
        let queue: Queue = Rc::new(RefCell::new(VecDeque::new()));
        let socket = Socket::connect(
            token::ws_url(&protocol, &host),
            token::subprotocols(token.as_deref()),
            queue.clone(),
        );
        let session = format!("{:x}", (js_sys::Math::random() * 4_294_967_296.0) as u64);
        Store(Rc::new(Shared {
            model: RefCell::new(Model::new(session)),
            queue,
            socket,
        }))
    }

    /// Applies everything received since the last call, sends due writes and runs housekeeping. Returns the
    /// model version afterwards.
    pub fn pump(&self) -> u64 {
        let t = now();
        let events: Vec<Inbound> = self.queue.borrow_mut().drain(..).collect();
        let mut model = self.model.borrow_mut();
        for e in events {
            match e {
                Inbound::Text(text) => model.on_text(&text, t),
                Inbound::Closed => model.on_close(),
            }
        }
        for msg in model.take_due_commits(t) {
            if let (Err(why), setpoint_wire::ws::ClientMessage::SetSetpoint(req)) =
                (self.socket.send(&msg), &msg)
            {
                model.send_failed(req.sensor, &why);
            }
        }
        model.tick(t);
        model.version
    }
}
