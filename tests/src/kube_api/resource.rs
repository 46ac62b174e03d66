//! The resource kinds the fake API server serves, and the request paths that name them
//! (`/api/v1/pods`, `/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}`, …).

use std::fmt;

/// A resource kind served by the fake API server, as Kubernetes' REST paths name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// core/v1 `pods`.
    Pods,
    /// core/v1 `nodes` (cluster-scoped).
    Nodes,
    /// core/v1 `services`.
    Services,
    /// core/v1 `endpoints`.
    Endpoints,
    /// core/v1 `namespaces` (cluster-scoped).
    Namespaces,
    /// discovery.k8s.io/v1 `endpointslices`.
    EndpointSlices,
    /// networking.k8s.io/v1 `ingresses`.
    Ingresses,
}

impl Resource {
    /// Every served resource, in discovery-document order.
    pub const ALL: [Resource; 7] = [
        Resource::Pods,
        Resource::Nodes,
        Resource::Services,
        Resource::Endpoints,
        Resource::Namespaces,
        Resource::EndpointSlices,
        Resource::Ingresses,
    ];

    /// The plural name used in paths and RBAC rules (`pods`, `endpointslices`).
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Nodes => "nodes",
            Resource::Services => "services",
            Resource::Endpoints => "endpoints",
            Resource::Namespaces => "namespaces",
            Resource::EndpointSlices => "endpointslices",
            Resource::Ingresses => "ingresses",
        }
    }

    /// The singular name of the discovery document (`pod`).
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Endpoints => "endpoints",
            Resource::Ingresses => "ingress",
            other => other.plural().trim_end_matches('s'),
        }
    }

    /// The object kind (`Pod`, `EndpointSlice`).
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Nodes => "Node",
            Resource::Services => "Service",
            Resource::Endpoints => "Endpoints",
            Resource::Namespaces => "Namespace",
            Resource::EndpointSlices => "EndpointSlice",
            Resource::Ingresses => "Ingress",
        }
    }

    /// The API group; `""` is the core group.
    pub fn group(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "discovery.k8s.io",
            Resource::Ingresses => "networking.k8s.io",
            _ => "",
        }
    }

    /// The `apiVersion` of its objects (`v1`, `discovery.k8s.io/v1`).
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "discovery.k8s.io/v1",
            Resource::Ingresses => "networking.k8s.io/v1",
            _ => "v1",
        }
    }

    /// Whether its objects live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Resource::Nodes | Resource::Namespaces)
    }

    /// The resource whose objects have `apiVersion`/`kind`, if served.
    pub fn from_kind(api_version: &str, kind: &str) -> Option<Resource> {
        Resource::ALL
            .into_iter()
            .find(|r| r.api_version() == api_version && r.kind() == kind)
    }

    /// The field-selector fields the real API server accepts for this resource besides
    /// `metadata.name` and `metadata.namespace` (Kubernetes `pkg/registry/*/strategy.go`
    /// `…ToSelectableFields`); any other field is a 400 "field label not supported".
    pub(crate) fn selectable_fields(self) -> &'static [&'static str] {
        match self {
            Resource::Pods => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Resource::Nodes => &["spec.unschedulable"],
            Resource::Services => &["spec.clusterIP", "spec.type"],
            Resource::Namespaces => &["status.phase"],
            Resource::Endpoints | Resource::EndpointSlices | Resource::Ingresses => &[],
        }
    }

    /// The resource with plural name `plural` in API group `group`.
    fn from_path(group: &str, plural: &str) -> Option<Resource> {
        Resource::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/version`.
    Version,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: the named groups.
    Groups,
    /// `/api/v1` or `/apis/{group}/{version}`: that group version's resources.
    GroupResources(&'static str),
    /// A collection: all namespaces when `namespace` is `None`.
    Collection {
        resource: Resource,
        namespace: Option<String>,
    },
    /// One object.
    Object {
        resource: Resource,
        namespace: Option<String>,
        name: String,
    },
}

/// Parses a request path; `None` for paths the fake server does not serve (404).
pub(crate) fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["version"] => return Some(Route::Version),
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, "v1", rest @ ..] => {
            let group = Resource::ALL.into_iter().map(Resource::group).find(|g| g == group)?;
            (group, rest)
        }
        _ => return None,
    };
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    let namespaced = |resource: Resource| resource.namespaced().then_some(resource);
    let cluster = |resource: Resource| (!resource.namespaced()).then_some(resource);
    match *rest {
        [] => Some(Route::GroupResources(group)),
        [plural] => Some(Route::Collection {
            resource: Resource::from_path(group, plural)?,
            namespace: None,
        }),
        ["namespaces", ns, plural] => Some(Route::Collection {
            resource: namespaced(Resource::from_path(group, plural)?)?,
            namespace: Some(ns.to_owned()),
        }),
        ["namespaces", ns, plural, name] => Some(Route::Object {
            resource: namespaced(Resource::from_path(group, plural)?)?,
            namespace: Some(ns.to_owned()),
            name: name.to_owned(),
        }),
        [plural, name] => Some(Route::Object {
            resource: cluster(Resource::from_path(group, plural)?)?,
            namespace: None,
            name: name.to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_kubernetes_paths() {
        let coll = |resource, namespace: Option<&str>| {
            Some(Route::Collection {
                resource,
                namespace: namespace.map(str::to_owned),
            })
        };
        assert_eq!(route("/api/v1/pods"), coll(Resource::Pods, None));
        assert_eq!(
            route("/api/v1/namespaces/kube-system/pods"),
            coll(Resource::Pods, Some("kube-system"))
        );
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"),
            coll(Resource::EndpointSlices, Some("a"))
        );
        assert_eq!(
            route("/apis/networking.k8s.io/v1/ingresses"),
            coll(Resource::Ingresses, None)
        );
        assert_eq!(route("/api/v1/namespaces"), coll(Resource::Namespaces, None));
        assert_eq!(route("/api/v1/nodes"), coll(Resource::Nodes, None));
        assert_eq!(
            route("/api/v1/namespaces/default"),
            Some(Route::Object {
                resource: Resource::Namespaces,
                namespace: None,
                name: "default".into()
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/default/services/web"),
            Some(Route::Object {
                resource: Resource::Services,
                namespace: Some("default".into()),
                name: "web".into()
            })
        );
        assert_eq!(route("/api/v1"), Some(Route::GroupResources("")));
        assert_eq!(
            route("/apis/discovery.k8s.io/v1"),
            Some(Route::GroupResources("discovery.k8s.io"))
        );
        assert_eq!(route("/version"), Some(Route::Version));
    }

    #[test]
    fn hostile_paths_are_not_routed() {
        for path in [
            "/",
            "/api/v2/pods",
            "/api/v1/deployments",
            "/apis/apps/v1/deployments",
            "/apis/discovery.k8s.io/v1/pods",
            "/api/v1/pods/x",
            "/api/v1/namespaces/a/nodes",
            "/api/v1/namespaces//pods",
            "/api/v1/namespaces/a/pods/b/c/d",
            "/apis/discovery.k8s.io/v1beta1/endpointslices",
        ] {
            assert_eq!(route(path), None, "{path}");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for r in Resource::ALL {
            assert_eq!(Resource::from_kind(r.api_version(), r.kind()), Some(r));
            assert_eq!(Resource::from_path(r.group(), r.plural()), Some(r));
        }
        assert_eq!(Resource::from_kind("v1", "EndpointSlice"), None);
        assert_eq!(Resource::Ingresses.singular(), "ingress");
        assert_eq!(Resource::EndpointSlices.singular(), "endpointslice");
    }
}
