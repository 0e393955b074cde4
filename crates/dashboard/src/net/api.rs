//! The HTTP API from the page: the schedule editor's `PUT` and `DELETE` through the browser's `fetch`, with
//! the write token as `Authorization: Bearer`. What to send and what the answer means are the model's
//! ([`crate::model::schedules`]); this only carries it.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use crate::model::schedules::{ApiCall, ApiResult};

/// Sends `call` to the page's own origin and returns the status and body, or why there was no answer.
pub async fn send(call: &ApiCall, token: Option<&str>) -> ApiResult {
    let js = |e: JsValue| {
        e.as_string()
            .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
            .unwrap_or_else(|| "the browser refused the request".to_owned())
    };
    let window = web_sys::window().ok_or("no window")?;
    let headers = Headers::new().map_err(js)?;
    if let Some(t) = token {
        headers.set("Authorization", &format!("Bearer {t}")).map_err(js)?;
    }
    let init = RequestInit::new();
    init.set_method(call.method.as_str());
    if let Some(body) = &call.body {
        headers.set("Content-Type", "application/json").map_err(js)?;
        init.set_body(&JsValue::from_str(body));
    }
    init.set_headers(&headers);
    let request = Request::new_with_str_and_init(&call.path, &init).map_err(js)?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(js)?
        .dyn_into()
        .map_err(js)?;
    let body = JsFuture::from(response.text().map_err(js)?)
        .await
        .map_err(js)?
        .as_string()
        .unwrap_or_default();
    Ok((response.status(), body))
}
