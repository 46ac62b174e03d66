//! The HTTP face of the fake API server: routing, bearer-token authentication, RBAC refusals,
//! LIST (selectors, `limit`/`continue`, resourceVersion semantics), GET, the discovery
//! documents, and the `Status` bodies the real server answers errors with.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::log::{LoggedRequest, Verb};
use super::resource::{Resource, Route, route};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Expired, Key};
use super::{Shared, watch};

/// Query parameters, first value of each.
pub(crate) type Params = HashMap<String, String>;

/// Answers every request: the router's only handler.
pub(crate) async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let route = route(uri.path());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let watching = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let (verb, resource, namespace) = match &route {
        Some(Route::Collection { resource, namespace }) if method == Method::GET => (
            if watching { Verb::Watch } else { Verb::List },
            Some(*resource),
            namespace.clone(),
        ),
        Some(Route::Object {
            resource, namespace, ..
        }) if method == Method::GET => (Verb::Get, Some(*resource), namespace.clone()),
        Some(_) if method == Method::GET => (Verb::Discovery, None, None),
        _ => (Verb::Other, None, None),
    };
    let response = answer(&shared, route, &method, verb, token.as_deref(), &params);
    shared.log(LoggedRequest {
        verb,
        resource,
        namespace,
        path: uri.path().to_owned(),
        label_selector: params.get("labelSelector").cloned(),
        field_selector: params.get("fieldSelector").cloned(),
        resource_version: params.get("resourceVersion").cloned(),
        token,
        status: response.status().as_u16(),
    });
    response
}

/// The response to one request, after authentication and authorization.
fn answer(
    shared: &Arc<Shared>,
    route: Option<Route>,
    method: &Method,
    verb: Verb,
    token: Option<&str>,
    params: &Params,
) -> Response {
    if !shared.authenticated(token) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized".into(), None);
    }
    let Some(route) = route else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            None,
        );
    };
    if method != Method::GET {
        let message = format!("the server does not allow this method on the requested resource ({method})");
        return status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message, None);
    }
    match route {
        Route::Version => json_ok(version_doc()),
        Route::CoreVersions => json_ok(core_versions_doc(shared.port)),
        Route::Groups => json_ok(groups_doc()),
        Route::GroupResources(group) => json_ok(group_resources_doc(group)),
        Route::Collection { resource, namespace }
        | Route::Object {
            resource, namespace, ..
        } if shared.forbidden(resource) => forbidden(resource, namespace.as_deref(), verb, &shared.user(token)),
        Route::Collection { resource, namespace } if verb == Verb::Watch => {
            watch::start(shared, resource, namespace, params)
        }
        Route::Collection { resource, namespace } => list(shared, resource, namespace.as_deref(), params),
        Route::Object {
            resource,
            namespace,
            name,
        } => {
            let found = shared.store().get(resource, namespace.as_deref().unwrap_or(""), &name);
            match found {
                Some(object) => json_ok((*object).clone()),
                None => not_found(resource, &name),
            }
        }
    }
}

/// The selectors of a LIST or WATCH request.
pub(crate) struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`; a rejected selector is a 400 response.
    pub(crate) fn parse(
        resource: Resource,
        namespace: Option<String>,
        params: &Params,
    ) -> Result<Filter, Box<Response>> {
        let bad = |message: String| Box::new(status(StatusCode::BAD_REQUEST, "BadRequest", message, None));
        let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str)).map_err(bad)?;
        let fields =
            FieldSelector::parse(params.get("fieldSelector").map_or("", String::as_str), resource).map_err(bad)?;
        Ok(Filter {
            namespace,
            labels,
            fields,
        })
    }

    /// Whether the selectors are empty (the server then reports `remainingItemCount`).
    fn is_empty(&self) -> bool {
        self.labels == LabelSelector::default() && self.fields == FieldSelector::default()
    }

    /// Whether `object`, stored under `namespace`, is selected.
    pub(crate) fn matches(&self, namespace: &str, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.matches(object["metadata"]["labels"].as_object())
            && self.fields.matches(object)
    }
}

/// LIST: a consistent snapshot, filtered, one page of it.
fn list(shared: &Shared, resource: Resource, namespace: Option<&str>, params: &Params) -> Response {
    let bad = |message: String| status(StatusCode::BAD_REQUEST, "BadRequest", message, None);
    let filter = match Filter::parse(resource, namespace.map(str::to_owned), params) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None | Some(Ok(0)) => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad(format!("invalid limit {:?}", params["limit"])),
    };
    let store = shared.store();
    // Which resourceVersion to read at, and where a continued list resumes.
    let (at, after): (Option<u64>, Option<Key>) = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match decode_continue(token) {
            Some((rv, key)) => (Some(rv), Some(key)),
            None => return bad(format!("continue key is not valid: {token}")),
        },
        None => match params.get("resourceVersion").map(String::as_str) {
            None | Some("" | "0") => (None, None),
            Some(rv) => {
                let Ok(rv) = rv.parse::<u64>() else {
                    return bad(format!("invalid resource version {rv:?}"));
                };
                if rv > store.rv() {
                    let message = format!("Too large resource version: {rv}, current: {}", store.rv());
                    let details = json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": message}], "retryAfterSeconds": 1});
                    return status(StatusCode::GATEWAY_TIMEOUT, "Timeout", message, Some(details));
                }
                // Without resourceVersionMatch, a paginated list reads exactly at the given
                // version (legacy semantics); otherwise any version not older will do.
                let exact = match params.get("resourceVersionMatch").map(String::as_str) {
                    Some("Exact") => true,
                    Some(_) => false,
                    None => params.contains_key("limit"),
                };
                (exact.then_some(rv), None)
            }
        },
    };
    let snapshot = match store.snapshot(resource, namespace, at) {
        Ok(s) => s,
        Err(expired) => return gone(&expired, params.contains_key("continue")),
    };
    drop(store);
    let mut selected = snapshot
        .objects
        .into_iter()
        .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
        .filter(|((ns, _), object)| filter.matches(ns, object));
    let items: Vec<(Key, Arc<Value>)> = selected.by_ref().take(limit).collect();
    let remaining = selected.count();
    let mut metadata = json!({"resourceVersion": snapshot.rv.to_string()});
    if remaining > 0 {
        if let Some((last, _)) = items.last() {
            metadata["continue"] = encode_continue(snapshot.rv, last).into();
        }
        if filter.is_empty() {
            metadata["remainingItemCount"] = remaining.into();
        }
    }
    // List items carry neither apiVersion nor kind: the list's own fields name them.
    let items: Vec<Value> = items
        .into_iter()
        .map(|(_, object)| {
            let mut item = (*object).clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            item
        })
        .collect();
    json_ok(json!({
        "kind": format!("{}List", resource.kind()),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

/// A continue token shaped like the real server's: base64 of
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"<ns>/<name>\u0000"}`.
fn encode_continue(rv: u64, (ns, name): &Key) -> String {
    let start = if ns.is_empty() {
        format!("{name}\0")
    } else {
        format!("{ns}/{name}\0")
    };
    BASE64.encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

fn decode_continue(token: &str) -> Option<(u64, Key)> {
    let json: Value = serde_json::from_slice(&BASE64.decode(token).ok()?).ok()?;
    if json["v"] != "meta.k8s.io/v1" {
        return None;
    }
    let rv = json["rv"].as_u64()?;
    let start = json["start"].as_str()?.strip_suffix('\0')?;
    let key = match start.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (String::new(), start.to_owned()),
    };
    Some((rv, key))
}

/// A `Status` object as the API server answers errors (`metav1.Status`).
pub(crate) fn status_object(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

/// An error response with a `Status` body.
pub(crate) fn status(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Response {
    let body = status_object(code.as_u16(), reason, &message, details);
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// 410 Gone for a list at a compacted resourceVersion.
fn gone(expired: &Expired, continued: bool) -> Response {
    let message = if continued {
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".to_owned()
    } else {
        format!("too old resource version: {} ({})", expired.requested, expired.oldest)
    };
    status(StatusCode::GONE, "Expired", message, None)
}

/// 403 as the RBAC authorizer words it.
fn forbidden(resource: Resource, namespace: Option<&str>, verb: Verb, user: &str) -> Response {
    let verb = match verb {
        Verb::Watch => "watch",
        Verb::Get => "get",
        _ => "list",
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    let message = format!(
        "{plural} is forbidden: User \"{user}\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}",
        plural = resource.plural(),
        group = resource.group(),
    );
    let mut details = json!({"kind": resource.plural()});
    if !resource.group().is_empty() {
        details["group"] = resource.group().into();
    }
    status(StatusCode::FORBIDDEN, "Forbidden", message, Some(details))
}

fn not_found(resource: Resource, name: &str) -> Response {
    let message = format!("{} \"{name}\" not found", resource.plural());
    let mut details = json!({"name": name, "kind": resource.plural()});
    if !resource.group().is_empty() {
        details["group"] = resource.group().into();
    }
    status(StatusCode::NOT_FOUND, "NotFound", message, Some(details))
}

fn json_ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `/version`, as a v1.33 server answers.
fn version_doc() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "gitVersion": "v1.33.1",
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn core_versions_doc(port: u16) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}],
    })
}

fn groups_doc() -> Value {
    let groups: Vec<Value> = ["discovery.k8s.io", "networking.k8s.io"]
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_resources_doc(group: &str) -> Value {
    let resources: Vec<Value> = Resource::ALL
        .into_iter()
        .filter(|r| r.group() == group)
        .map(|r| {
            json!({
                "name": r.plural(),
                "singularName": r.singular(),
                "namespaced": r.namespaced(),
                "kind": r.kind(),
                "verbs": ["get", "list", "watch"],
            })
        })
        .collect();
    let group_version = if group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{group}/v1")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let key = ("kube-system".to_owned(), "coredns-0".to_owned());
        let token = encode_continue(42, &key);
        assert_eq!(decode_continue(&token), Some((42, key)));
        let node = (String::new(), "node-a".to_owned());
        assert_eq!(decode_continue(&encode_continue(7, &node)), Some((7, node)));
        for bad in [
            "",
            "!!!",
            "eyJ2IjoxfQ==",
            &BASE64.encode(r#"{"v":"meta.k8s.io/v1","rv":"x","start":"a\u0000"}"#),
        ] {
            assert_eq!(decode_continue(bad), None, "{bad}");
        }
    }
}
