//! The one shared state of the page — the model, the inbound queue and the socket — handed to components as a
//! Yew context.
//!
//! A `RefCell<Model>` rather than a Yew `use_reducer`: messages arrive at up to hundreds per second and are
//! applied in batches once per animation frame, and a `use_reducer` would re-render its component on every
//! dispatch (and clone or rebuild the model to do it). The reducer is the model's own [`Model::dispatch`];
//! components read the model through [`Store::model`] and change it only through [`Store::dispatch`].

use std::cell::{Ref, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use yew::prelude::*;

use crate::model::schedules::ScheduleAction;
use crate::model::{Action, Model};
use crate::net::api;
use crate::net::socket::{Inbound, Queue, Socket};
use crate::net::token;

/// Cheap to clone; equal when it is the same store, so a context holding it never changes.
#[derive(Clone)]
pub struct Store(Rc<Shared>);

struct Shared {
    model: RefCell<Model>,
    queue: Queue,
    socket: Socket,
    /// The write token, for the HTTP API's `Authorization: Bearer` (the model never holds it).
    token: Option<String>,
}

impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
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
            token,
        }))
    }

    /// The model, to read. Never held across a dispatch.
    pub fn model(&self) -> Ref<'_, Model> {
        self.0.model.borrow()
    }

    /// Applies `action` and sends the messages it released; one the socket refuses is reported on its card.
    /// API calls go out through `fetch`, and their answers come back as actions.
    pub fn dispatch(&self, action: Action) {
        let (out, calls) = {
            let mut model = self.0.model.borrow_mut();
            let out = model.dispatch(action);
            (out, model.take_api_calls())
        };
        for msg in out {
            if let Err(why) = self.0.socket.send(&msg) {
                self.dispatch(Action::SendFailed { msg, why });
            }
        }
        for call in calls {
            let store = self.clone();
            yew::platform::spawn_local(async move {
                let result = api::send(&call, store.0.token.as_deref()).await;
                store.dispatch(Action::Schedule(ScheduleAction::Answer { id: call.id, result }));
            });
        }
    }

    /// Applies everything received since the last call, then the per-frame housekeeping. Returns the model
    /// version afterwards.
    pub fn pump(&self) -> u64 {
        let t = now();
        let events: Vec<Inbound> = self.0.queue.borrow_mut().drain(..).collect();
        for e in events {
            self.dispatch(match e {
                Inbound::Text(text) => Action::Frame { text, now: t },
                Inbound::Closed => Action::Closed,
            });
        }
        self.dispatch(Action::Tick { now: t });
        self.model().version()
    }
}

/// The page's store, from the context [`crate::ui::app::App`] provides.
#[hook]
pub fn use_store() -> Store {
    // Every component that calls this is rendered inside `App`'s provider; without it there is no page.
    use_context::<Store>().expect("rendered inside App's store provider")
}
