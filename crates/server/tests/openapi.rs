//! The OpenAPI document (`GET /api/v1/openapi.json`) against the API's real answers: every route the
//! router serves is documented, and every answer — each endpoint, each kind of success and error the tests
//! of `api.rs` provoke — has a status the document lists for its operation and a body valid against the
//! JSON Schema (2020-12, as OpenAPI 3.1 has it) the document declares for that status.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::{addr, start, PATIENCE, TOKEN};
use serde_json::{json, Value};
use setpoint_testkit::http::{request, Response};

const BEARER: &str = "Bearer test-token-0123456789abcdef";

/// Request headers, as (name, value).
type Headers<'a> = &'a [(&'a str, &'a str)];

/// Every operation the router serves under `/api/v1`, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/sensors"),
    ("get", "/api/v1/sensors/{id}"),
    ("get", "/api/v1/sensors/{id}/setpoint"),
    ("put", "/api/v1/sensors/{id}/setpoint"),
    ("get", "/api/v1/sensors/{id}/history"),
    ("put", "/api/v1/setpoints"),
    ("get", "/api/v1/schedules"),
    ("get", "/api/v1/schedules/{name}"),
    ("put", "/api/v1/schedules/{name}"),
    ("delete", "/api/v1/schedules/{name}"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// The document, and what the test has checked against it.
struct Contract {
    doc: Value,
    /// Per operation, the statuses seen (every one documented and its body valid).
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl Contract {
    fn new(doc: Value) -> Self {
        Self {
            doc,
            seen: BTreeMap::new(),
        }
    }

    /// A validator for the schema at `pointer` (a JSON pointer into the document), its `$ref`s resolved
    /// against the document's components: the schema is the root, with the components beside it.
    fn validator(&self, pointer: &str) -> jsonschema::Validator {
        let schema = self
            .doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the document has no schema at {pointer}"));
        let mut root = schema.clone();
        let object = root
            .as_object_mut()
            .unwrap_or_else(|| panic!("the schema at {pointer} is not an object: {schema}"));
        object.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        object.insert("components".into(), self.doc["components"].clone());
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"))
    }

    /// The errors of `value` against the schema at `pointer`; empty if it is valid.
    fn errors(&self, pointer: &str, value: &Value) -> Vec<String> {
        self.validator(pointer)
            .iter_errors(value)
            .map(|e| format!("{e} (at \"{}\")", e.instance_path()))
            .collect()
    }

    fn operation_pointer(method: &str, template: &str) -> String {
        format!("/paths/{}/{method}", escape(template))
    }

    /// The JSON Schema the document declares for `template`'s response `status`.
    fn response_schema(method: &str, template: &str, status: u16) -> String {
        format!(
            "{}/responses/{status}/content/application~1json/schema",
            Self::operation_pointer(method, template)
        )
    }

    fn request_schema(method: &str, template: &str) -> String {
        format!(
            "{}/requestBody/content/application~1json/schema",
            Self::operation_pointer(method, template)
        )
    }

    /// Checks one real answer: its status is documented for the operation, its headers named there are
    /// present, and its body is what the document declares (or empty where it declares none).
    fn check(&mut self, method: &str, template: &str, r: &Response) {
        let what = format!("{} {template} → {}", method.to_uppercase(), r.status);
        let op = self
            .doc
            .pointer(&Self::operation_pointer(method, template))
            .unwrap_or_else(|| panic!("{what}: the operation is not documented"));
        let documented = &op["responses"][r.status.to_string()];
        assert!(
            documented.is_object(),
            "{what}: status not documented (documented: {:?}); body {}",
            op["responses"].as_object().map(|m| m.keys().collect::<Vec<_>>()),
            r.body
        );
        // A header typed as nullable (`Link`: absent on the last page) may be absent.
        let always = |h: &Value| {
            !h["schema"]["type"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "null"))
        };
        for name in documented["headers"]
            .as_object()
            .into_iter()
            .flat_map(|h| h.iter())
            .filter(|(_, h)| always(h))
            .map(|(name, _)| name)
        {
            assert!(
                r.header(&name.to_ascii_lowercase()).is_some(),
                "{what}: documented header {name} missing"
            );
        }
        if documented["content"]["application/json"]["schema"].is_null() {
            assert!(r.body.is_empty(), "{what}: no body documented, got {}", r.body);
        } else {
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{what}: content type {:?}",
                r.header("content-type")
            );
            let body = r.json();
            let errors = self.errors(&Self::response_schema(method, template, r.status), &body);
            assert!(
                errors.is_empty(),
                "{what}: the body drifted from the document: {errors:#?}\n{}",
                r.body
            );
        }
        self.seen
            .entry((method.to_owned(), template.to_owned()))
            .or_default()
            .insert(r.status);
    }

    /// Checks that a request body the server accepted is valid against the documented request schema.
    fn check_request(&self, method: &str, template: &str, body: &str) {
        let value: Value = serde_json::from_str(body).expect("request JSON");
        let errors = self.errors(&Self::request_schema(method, template), &value);
        assert!(
            errors.is_empty(),
            "{method} {template}: an accepted request body is not valid against the document: {errors:#?}"
        );
    }
}

/// A path template as one JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

async fn call(a: SocketAddr, method: &str, path: &str, headers: Headers<'_>, body: Option<&str>) -> Response {
    request(a, &method.to_uppercase(), path, headers, body).await
}

async fn document(a: SocketAddr) -> Value {
    let r = request(a, "GET", "/api/v1/openapi.json", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The operations a document lists, as (method, path template).
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| ((*m).to_owned(), path.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_every_endpoint_matches_the_openapi_document() {
    assert!(BEARER.ends_with(TOKEN));
    let server = start(3, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let doc = document(a).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not OpenAPI 3: {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "setpoint");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(operations(&doc), expected, "documented operations ≠ the router's");
    // Writes name the bearer scheme; the scheme is defined.
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (m, p) in ROUTES.iter().filter(|(m, _)| *m != "get") {
        let op = &doc["paths"][*p][*m];
        assert_eq!(op["security"], json!([{"bearer": []}]), "{m} {p}");
    }
    let mut c = Contract::new(doc);
    let auth = [("Authorization", BEARER)];
    // The token bucket refills at 5 writes/s: pace the writes so only the rate-limit case hits it.
    let pace = || tokio::time::sleep(Duration::from_millis(220));

    // Wait for a decision, so a sensor's `heater` and its history's decisions are objects, not null/empty.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hub
        .sensor_views()
        .iter()
        .all(|v| v.heater.is_none() || v.reading.is_none())
    {
        assert!(tokio::time::Instant::now() < deadline, "no decision yet");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let heated = hub
        .sensor_views()
        .into_iter()
        .find(|v| v.heater.is_some())
        .map(|v| v.sensor)
        .expect("a sensor with a decision");

    // Reads.
    let r = call(a, "get", "/api/v1/openapi.json", &[], None).await;
    c.check("get", "/api/v1/openapi.json", &r);
    let r = call(a, "get", "/api/v1/sensors", &[], None).await;
    c.check("get", "/api/v1/sensors", &r);
    for (path, status) in [
        (format!("/api/v1/sensors/{heated}"), 200),
        ("/api/v1/sensors/x".to_owned(), 400),
        ("/api/v1/sensors/999".to_owned(), 404),
    ] {
        let r = call(a, "get", &path, &[], None).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        c.check("get", "/api/v1/sensors/{id}", &r);
    }
    for (path, status) in [
        ("/api/v1/sensors/1/setpoint", 200),
        ("/api/v1/sensors/x/setpoint", 400),
        ("/api/v1/sensors/999/setpoint", 404),
    ] {
        let r = call(a, "get", path, &[], None).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        c.check("get", "/api/v1/sensors/{id}/setpoint", &r);
    }
    for (path, status) in [
        (format!("/api/v1/sensors/{heated}/history"), 200),
        (
            "/api/v1/sensors/1/history?since=0&until=2026-11-25T08:00:00Z".to_owned(),
            200,
        ),
        ("/api/v1/sensors/1/history?since=yesterday".to_owned(), 400),
        ("/api/v1/sensors/1/history?from=1".to_owned(), 400),
        ("/api/v1/sensors/999/history".to_owned(), 404),
    ] {
        let r = call(a, "get", &path, &[], None).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        c.check("get", "/api/v1/sensors/{id}/history", &r);
    }
    let r = call(a, "get", &format!("/api/v1/sensors/{heated}/history"), &[], None).await;
    assert!(
        r.json()["decisions"].as_array().is_some_and(|d| !d.is_empty()),
        "the history checked has no decision: {}",
        r.body
    );

    // One sensor's setpoint: written, conditionally written, and each refusal.
    let sp = "/api/v1/sensors/{id}/setpoint";
    let body = r#"{"desired":23.5,"up_delta":0.5,"down_delta":1.5}"#;
    c.check_request("put", sp, body);
    let r = call(a, "put", "/api/v1/sensors/2/setpoint", &auth, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.check("put", sp, &r);
    let version = r.json()["version"].as_u64().expect("version");
    pace().await;
    let stale = format!("\"{}\"", version - 1);
    let huge = format!(
        r#"{{"desired":22,"up_delta":1,"down_delta":1,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let foreign = [("Authorization", BEARER), ("Origin", "http://evil.example")];
    let if_match = [("Authorization", BEARER), ("If-Match", stale.as_str())];
    let cases: Vec<(&str, Headers, &str, u16)> = vec![
        ("/api/v1/sensors/2/setpoint", &if_match, body, 409),
        ("/api/v1/sensors/2/setpoint", &[], body, 401),
        ("/api/v1/sensors/2/setpoint", &foreign, body, 403),
        ("/api/v1/sensors/2/setpoint", &auth, "{", 400),
        (
            "/api/v1/sensors/2/setpoint",
            &auth,
            r#"{"desired":22,"up_delta":1}"#,
            400,
        ),
        ("/api/v1/sensors/x/setpoint", &auth, body, 400),
        ("/api/v1/sensors/2/setpoint", &auth, &huge, 413),
        (
            "/api/v1/sensors/2/setpoint",
            &auth,
            r#"{"desired":500,"up_delta":1,"down_delta":1}"#,
            422,
        ),
    ];
    for (path, headers, body, status) in cases {
        let r = call(a, "put", path, headers, Some(body)).await;
        assert_eq!(r.status, status, "{path} {headers:?}: {}", r.body);
        c.check("put", sp, &r);
        pace().await;
    }

    // A group write: applied, conflicting and invalid outcomes in one answer; then its refusals.
    let group = "/api/v1/setpoints";
    let v3 = hub.setpoint(3).map_or(0, |s| s.version);
    let writes = json!([
        {"sensor": 1, "desired": 19.0, "up_delta": 0.5, "down_delta": 0.5},
        {"sensor": 3, "desired": 19.0, "up_delta": 0.5, "down_delta": 0.5, "base_version": v3 + 7},
        {"sensor": 1, "desired": 900.0, "up_delta": 0.5, "down_delta": 0.5},
    ])
    .to_string();
    c.check_request("put", group, &writes);
    let r = call(a, "put", group, &auth, Some(&writes)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<u64> = r
        .json()
        .as_array()
        .expect("outcomes")
        .iter()
        .filter_map(|o| o["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![200, 409, 422], "{}", r.body);
    c.check("put", group, &r);
    pace().await;
    for (headers, body, status) in [
        (&auth[..], r#"{"sensor":1}"#, 400),
        (&[][..], "[]", 401),
        (&foreign[..], "[]", 403),
        (&auth[..], huge.as_str(), 413),
    ] {
        let r = call(a, "put", group, headers, Some(body)).await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.body);
        c.check("put", group, &r);
        pace().await;
    }

    // Schedules: none, saved, read, shown as the sensors' next step, refused, deleted.
    let named = "/api/v1/schedules/{name}";
    let r = call(a, "get", "/api/v1/schedules", &[], None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    c.check("get", "/api/v1/schedules", &r);
    let schedule = r#"{"zone":"Europe/Berlin","sensors":[1,2],"steps":[
        {"days":["mon","tue","wed","thu","fri"],"time":"06:30","desired":21.0,"up_delta":0.5,"down_delta":0.5},
        {"days":["sat","sun"],"time":"22:00:30","desired":17.0,"up_delta":0.5,"down_delta":0.5}]}"#;
    c.check_request("put", named, schedule);
    let r = call(a, "put", "/api/v1/schedules/night", &auth, Some(schedule)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.check("put", named, &r);
    pace().await;
    let r = call(a, "get", "/api/v1/schedules", &[], None).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{}", r.body);
    c.check("get", "/api/v1/schedules", &r);
    let r = call(a, "get", "/api/v1/schedules/night", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.check("get", named, &r);
    let r = call(a, "get", "/api/v1/sensors/1", &[], None).await;
    assert!(r.json()["next_step"].is_object(), "no next step: {}", r.body);
    c.check("get", "/api/v1/sensors/{id}", &r);
    let r = call(a, "get", "/api/v1/sensors", &[], None).await;
    c.check("get", "/api/v1/sensors", &r);
    let bad_zone = r#"{"zone":"Mars/Olympus","steps":[{"days":["mon"],"time":"07:00","desired":20,"up_delta":0.5,"down_delta":0.5}]}"#;
    for (path, headers, body, status) in [
        ("/api/v1/schedules/a", &auth[..], bad_zone, 422),
        (
            "/api/v1/schedules/a",
            &auth[..],
            r#"{"zone":"UTC","steps":[],"colour":1}"#,
            400,
        ),
        ("/api/v1/schedules/a", &auth[..], "{", 400),
        ("/api/v1/schedules/a", &[][..], schedule, 401),
        ("/api/v1/schedules/a", &foreign[..], schedule, 403),
        ("/api/v1/schedules/a", &auth[..], huge.as_str(), 413),
    ] {
        let r = call(a, "put", path, headers, Some(body)).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.body);
        c.check("put", named, &r);
        pace().await;
    }
    for (headers, status) in [
        (&[][..], 401),
        (&foreign[..], 403),
        (&auth[..], 204),
        (&auth[..], 404),
    ] {
        let r = call(a, "delete", "/api/v1/schedules/night", headers, None).await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.body);
        c.check("delete", named, &r);
        pace().await;
    }
    let r = call(a, "get", "/api/v1/schedules/night", &[], None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    c.check("get", named, &r);

    // Last, as it spends the token's budget: 429 on each kind of write.
    for (method, path, template, body) in [
        (
            "put",
            "/api/v1/sensors/1/setpoint",
            sp,
            Some(r#"{"desired":500,"up_delta":1,"down_delta":1}"#),
        ),
        ("put", "/api/v1/setpoints", group, Some("[]")),
        ("put", "/api/v1/schedules/a", named, Some(bad_zone)),
        ("delete", "/api/v1/schedules/a", named, None),
    ] {
        let mut limited = false;
        for _ in 0..20 {
            let r = call(a, method, path, &auth, body).await;
            if r.status == 429 {
                c.check(method, template, &r);
                limited = true;
                break;
            }
        }
        assert!(limited, "{method} {path}: never rate-limited");
    }

    // Every operation was exercised, and the statuses provoked cover every kind the API answers with
    // in a running embedded server (202, 500 and 503 need a bus that fails or stalls).
    let exercised: BTreeSet<(String, String)> = c.seen.keys().cloned().collect();
    assert_eq!(exercised, expected, "operations not exercised");
    let kinds: BTreeSet<u16> = c.seen.values().flatten().copied().collect();
    assert_eq!(
        kinds,
        BTreeSet::from([200, 204, 400, 401, 403, 404, 409, 413, 422, 429]),
        "{:?}",
        c.seen
    );
    server.shutdown().await;
}

/// The check above has teeth: bodies that drift from the document are refused by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_drifts_from_the_document_is_rejected() {
    let server = start(1, 50).await;
    let a = addr(&server);
    let c = Contract::new(document(a).await);
    let one = Contract::response_schema("get", "/api/v1/sensors/{id}", 200);
    let real = request(a, "GET", "/api/v1/sensors/1", &[], None).await.json();
    assert!(c.errors(&one, &real).is_empty(), "{real}");

    let mut drifted = real.clone();
    drifted["sensor"] = json!("1");
    assert!(
        !c.errors(&one, &drifted).is_empty(),
        "a string sensor id passed: {drifted}"
    );
    let mut missing = real.clone();
    missing.as_object_mut().expect("object").remove("setpoint");
    assert!(
        !c.errors(&one, &missing).is_empty(),
        "a missing setpoint passed: {missing}"
    );
    let mut nested = real.clone();
    nested["setpoint"]["version"] = json!(-1);
    assert!(
        !c.errors(&one, &nested).is_empty(),
        "a negative version passed: {nested}"
    );

    let error = Contract::response_schema("put", "/api/v1/sensors/{id}/setpoint", 409);
    let conflict = json!({"code": "conflict", "message": "stale", "current": null});
    assert!(c.errors(&error, &conflict).is_empty());
    let unknown = json!({"code": "teapot", "message": "stale", "current": null});
    assert!(
        !c.errors(&error, &unknown).is_empty(),
        "an unknown error code passed"
    );

    let list = Contract::response_schema("get", "/api/v1/schedules", 200);
    let bad_day = json!([{"name": "n", "zone": "UTC", "sensors": [1],
        "steps": [{"days": ["monday"], "time": "07:00", "desired": 20, "up_delta": 1, "down_delta": 1}]}]);
    assert!(!c.errors(&list, &bad_day).is_empty(), "an unknown weekday passed");

    let body = Contract::request_schema("put", "/api/v1/sensors/{id}/setpoint");
    let extra = json!({"desired": 22, "up_delta": 1, "down_delta": 1, "colour": 2});
    assert!(!c.errors(&body, &extra).is_empty(), "an unknown field passed");
    server.shutdown().await;
}
