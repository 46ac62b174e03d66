//! The request log: what clients asked the fake API server, for tests to count LIST and WATCH
//! requests per resource and per token.

use super::resource::Resource;

/// The kind of request, as Kubernetes audit logs name verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// A collection read without `watch=true`.
    List,
    /// A collection read with `watch=true`.
    Watch,
    /// A read of one object.
    Get,
    /// `/version`, `/api`, `/apis` and group-version documents.
    Discovery,
    /// A path the server does not serve, or a method other than GET.
    Other,
}

/// One request as the fake API server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// What was asked.
    pub verb: Verb,
    /// The resource, for collection and object requests.
    pub resource: Option<Resource>,
    /// The namespace of the path (`/api/v1/namespaces/{ns}/…`); `None` for all namespaces.
    pub namespace: Option<String>,
    /// The path, e.g. `/api/v1/pods`.
    pub path: String,
    /// The `labelSelector` parameter.
    pub label_selector: Option<String>,
    /// The `fieldSelector` parameter, e.g. `spec.nodeName=node-a`.
    pub field_selector: Option<String>,
    /// The `resourceVersion` parameter.
    pub resource_version: Option<String>,
    /// The bearer token of the `Authorization` header.
    pub token: Option<String>,
    /// The HTTP status answered (200 for watches, even those ended by an ERROR event).
    pub status: u16,
}
