//! Which watches a `kubernetes_sd_configs` entry needs, as Prometheus `Discovery.Run`: the role's
//! own resource per namespace, plus services and pods for the endpoints roles and nodes for
//! `attach_metadata.node`; selectors per resource, with node-local mode's field selectors
//! (`spec.nodeName=<node>` for pods, `metadata.name=<node>` for nodes) joined to the user's by `,`.

use super::meta::JoinOptions;
use crate::config::{KubernetesSdConfig, Role};

/// One list+watch: a resource in one namespace (`None`: all namespaces, or cluster-scoped),
/// with its selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchSpec {
    /// The resource watched.
    pub resource: Role,
    /// The namespace; `None` for all namespaces and for nodes.
    pub namespace: Option<String>,
    /// Label selector sent to the API server.
    pub label: Option<String>,
    /// Field selector sent to the API server.
    pub field: Option<String>,
}

/// The namespaces to watch: `names`, plus the agent's own namespace with `own_namespace`
/// (each once); `[None]` (all) when that leaves none, as Prometheus `getNamespaces`.
pub(crate) fn namespaces(cfg: &KubernetesSdConfig, own_namespace: Option<&str>) -> Vec<Option<String>> {
    let mut names = cfg.namespaces.names.clone();
    if cfg.namespaces.own_namespace
        && let Some(own) = own_namespace
        && !names.iter().any(|n| n == own)
    {
        names.push(own.to_owned());
    }
    if names.is_empty() && !cfg.namespaces.own_namespace {
        return vec![None];
    }
    names.into_iter().map(Some).collect()
}

/// Every watch of `cfg`, in a stable order: the role's resource first, then the joined ones.
pub(crate) fn watches(cfg: &KubernetesSdConfig, own_namespace: Option<&str>) -> Vec<WatchSpec> {
    let namespaced: &[Role] = match cfg.role {
        Role::Node => &[],
        Role::Service => &[Role::Service],
        Role::Pod => &[Role::Pod],
        Role::Endpoints => &[Role::Endpoints, Role::Service, Role::Pod],
        Role::EndpointSlice => &[Role::EndpointSlice, Role::Service, Role::Pod],
        Role::Ingress => &[Role::Ingress],
    };
    let namespaces = namespaces(cfg, own_namespace);
    let mut out = Vec::new();
    for &resource in namespaced {
        for namespace in &namespaces {
            out.push(spec(cfg, resource, namespace.clone()));
        }
    }
    if cfg.role == Role::Node || join_options(cfg).attach_node {
        out.push(spec(cfg, Role::Node, None));
    }
    out
}

fn spec(cfg: &KubernetesSdConfig, resource: Role, namespace: Option<String>) -> WatchSpec {
    let user = cfg.selector(resource);
    let node_local = cfg.node_name.as_deref().and_then(|node| match resource {
        Role::Pod => Some(format!("spec.nodeName={node}")),
        Role::Node => Some(format!("metadata.name={node}")),
        _ => None,
    });
    let field = match (user.and_then(|s| s.field.clone()), node_local) {
        (Some(user), Some(node)) => Some(format!("{user},{node}")),
        (user, node) => user.or(node),
    };
    WatchSpec {
        resource,
        namespace,
        label: user.and_then(|s| s.label.clone()),
        field,
    }
}

/// How the endpoints builders join and filter for `cfg`: node labels only for roles that can
/// carry them, the node-local filter only in node-local mode.
pub(crate) fn join_options(cfg: &KubernetesSdConfig) -> JoinOptions {
    JoinOptions {
        attach_node: cfg.attach_metadata.node && cfg.role.joins_node(),
        node_name: cfg.node_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn sd(entry: &str) -> KubernetesSdConfig {
        let text = format!("scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - {entry}\n");
        Config::from_yaml(&text, "t.yml").unwrap().scrape_configs[0].kubernetes_sd_configs[0].clone()
    }

    fn w(resource: Role, namespace: Option<&str>, label: Option<&str>, field: Option<&str>) -> WatchSpec {
        WatchSpec {
            resource,
            namespace: namespace.map(str::to_owned),
            label: label.map(str::to_owned),
            field: field.map(str::to_owned),
        }
    }

    #[test]
    fn one_watch_per_resource_and_namespace() {
        assert_eq!(watches(&sd("role: pod"), None), vec![w(Role::Pod, None, None, None)]);
        assert_eq!(watches(&sd("role: node"), None), vec![w(Role::Node, None, None, None)]);
        assert_eq!(
            watches(&sd("{role: ingress, namespaces: {names: [a, b]}}"), None),
            vec![
                w(Role::Ingress, Some("a"), None, None),
                w(Role::Ingress, Some("b"), None, None)
            ]
        );
        assert_eq!(
            watches(&sd("{role: endpointslice, attach_metadata: {node: true}}"), None),
            vec![
                w(Role::EndpointSlice, None, None, None),
                w(Role::Service, None, None, None),
                w(Role::Pod, None, None, None),
                w(Role::Node, None, None, None),
            ]
        );
        // attach_metadata is ignored by roles that cannot carry node labels.
        assert_eq!(
            watches(&sd("{role: service, attach_metadata: {node: true}}"), None),
            vec![w(Role::Service, None, None, None)]
        );
    }

    #[test]
    fn own_namespace_joins_the_names_once() {
        let cfg = sd("{role: pod, namespaces: {own_namespace: true, names: [a]}}");
        assert_eq!(
            namespaces(&cfg, Some("mon")),
            vec![Some("a".into()), Some("mon".into())]
        );
        assert_eq!(namespaces(&cfg, Some("a")), vec![Some("a".into())]);
        let only_own = sd("{role: pod, namespaces: {own_namespace: true}}");
        assert_eq!(namespaces(&only_own, Some("mon")), vec![Some("mon".into())]);
        // Never "all namespaces" when only the own namespace was asked for.
        assert!(namespaces(&only_own, None).is_empty());
        assert_eq!(namespaces(&sd("role: pod"), Some("mon")), vec![None]);
    }

    #[test]
    fn node_local_mode_adds_field_selectors_to_the_users() {
        let cfg =
            sd("{role: pod, node_name: w1, selectors: [{role: pod, label: app=web, field: status.phase=Running}]}");
        assert_eq!(
            watches(&cfg, None),
            vec![w(
                Role::Pod,
                None,
                Some("app=web"),
                Some("status.phase=Running,spec.nodeName=w1")
            )]
        );
        assert_eq!(
            watches(&sd("{role: node, node_name: w1}"), None),
            vec![w(Role::Node, None, None, Some("metadata.name=w1"))]
        );
        let cfg = sd(
            "{role: endpoints, node_name: w1, attach_metadata: {node: true}, namespaces: {names: [x]}, selectors: [{role: service, label: team=a}, {role: node, field: spec.unschedulable=false}]}",
        );
        assert_eq!(
            watches(&cfg, None),
            vec![
                // Endpoints and services cannot be filtered by node on the server.
                w(Role::Endpoints, Some("x"), None, None),
                w(Role::Service, Some("x"), Some("team=a"), None),
                w(Role::Pod, Some("x"), None, Some("spec.nodeName=w1")),
                w(
                    Role::Node,
                    None,
                    None,
                    Some("spec.unschedulable=false,metadata.name=w1")
                ),
            ]
        );
        assert_eq!(
            join_options(&cfg),
            JoinOptions {
                attach_node: true,
                node_name: Some("w1".into())
            }
        );
        assert_eq!(join_options(&sd("role: endpoints")), JoinOptions::default());
    }
}
