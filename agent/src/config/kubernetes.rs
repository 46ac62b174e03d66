//! `kubernetes_sd_configs:` entries, as Prometheus `discovery/kubernetes/kubernetes.go`
//! (`SDConfig.UnmarshalYAML`, `SetDirectory`): the raw serde struct, the validated public
//! types, and the rules (role required, `api_server`/`kubeconfig_file`/`own_namespace`
//! exclusions, HTTP client keys only with `api_server`, one selector per role and only for the
//! roles the config's role watches, selector syntax as `labels.Parse`/`fields.ParseSelector`).
//!
//! Trawl adds `node_name` (node-local discovery for DaemonSets, usually `${NODE_NAME}`): see
//! [`KubernetesSdConfig::node_name`].

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use super::raw::{RawAuthorization, RawBasicAuth, RawHttp, RawTls, nullable, with_http_client_keys, yes};
use super::selector::{check_field_selector, check_label_selector, is_dns_subdomain};
use super::validate::{Ctx, line};
use super::{ConfigError, HttpClientConfig};

/// What a `kubernetes_sd_configs` entry discovers (`role:`), as Prometheus `kubernetes.Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `node`: one target per node (kubelet address).
    Node,
    /// `service`: one target per service port.
    Service,
    /// `pod`: one target per container port of each pod.
    Pod,
    /// `endpoints`: one target per address and port of `Endpoints`, joined with pods/services.
    Endpoints,
    /// `endpointslice`: one target per endpoint and port of `EndpointSlice`s, joined likewise.
    EndpointSlice,
    /// `ingress`: one target per rule host and path.
    Ingress,
}

impl Role {
    /// Every role, in Prometheus's order of documentation.
    pub const ALL: [Role; 6] = [
        Role::Node,
        Role::Service,
        Role::Pod,
        Role::Endpoints,
        Role::EndpointSlice,
        Role::Ingress,
    ];

    /// The role as written in YAML and in metric labels (`endpointslice`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Service => "service",
            Role::Pod => "pod",
            Role::Endpoints => "endpoints",
            Role::EndpointSlice => "endpointslice",
            Role::Ingress => "ingress",
        }
    }

    /// Roles whose `selectors` this role's watches use (Prometheus's `allowedSelectors`); node
    /// selectors also apply to pod/endpoints/endpointslice when nodes are watched for
    /// `attach_metadata.node`.
    fn allowed_selectors(self, attach_node: bool) -> Vec<Role> {
        let mut allowed = match self {
            Role::Endpoints => vec![Role::Pod, Role::Service, Role::Endpoints],
            Role::EndpointSlice => vec![Role::Pod, Role::Service, Role::EndpointSlice],
            other => vec![other],
        };
        if attach_node && self.joins_node() {
            allowed.push(Role::Node);
        }
        allowed
    }

    /// Whether targets of this role can carry node metadata (`attach_metadata.node`).
    pub fn joins_node(self) -> bool {
        matches!(self, Role::Pod | Role::Endpoints | Role::EndpointSlice)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    /// Prometheus's message for an unknown role: `unknown Kubernetes SD role "x"`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown Kubernetes SD role {text:?}")))
    }
}

/// One `kubernetes_sd_configs:` entry, validated. Compared and hashed whole: jobs with equal
/// entries share one discoverer (one watch per resource).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubernetesSdConfig {
    /// What is discovered; required.
    pub role: Role,
    /// API server URL (`http` or `https`); with it, the HTTP client keys of the entry are used.
    /// Neither this nor `kubeconfig_file` → in-cluster service account.
    pub api_server: Option<url::Url>,
    /// A kubeconfig file (its current context), resolved against the config file's directory;
    /// exclusive with `api_server`, `namespaces.own_namespace` and the HTTP client keys.
    pub kubeconfig_file: Option<PathBuf>,
    /// `namespaces:`; no names and no `own_namespace` → all namespaces.
    pub namespaces: NamespaceDiscovery,
    /// `selectors:`, at most one per role, each for a role this entry watches.
    pub selectors: Vec<SelectorConfig>,
    /// `attach_metadata:`; only pod, endpoints and endpointslice use it (other roles accept
    /// and ignore it, as Prometheus does).
    pub attach_metadata: AttachMetadata,
    /// Trawl's addition, node-local mode: only objects on this node. Pods and nodes are
    /// filtered by the API server (`spec.nodeName=` / `metadata.name=` field selectors,
    /// joined to the user's with `,`); endpoints and endpointslice addresses whose `nodeName`
    /// is another node (or absent) are dropped. Only for roles node, pod, endpoints and
    /// endpointslice; never empty (an empty value is usually an unset `${NODE_NAME}`).
    pub node_name: Option<String>,
    /// HTTP client settings for the API server (only with `api_server`).
    pub http: HttpClientConfig,
}

impl KubernetesSdConfig {
    /// The selector configured for watches of `role`, if any.
    pub fn selector(&self, role: Role) -> Option<&SelectorConfig> {
        self.selectors.iter().find(|s| s.role == role)
    }
}

/// `namespaces:`, as Prometheus `NamespaceDiscovery`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NamespaceDiscovery {
    /// Namespaces to watch, each once, in the order written.
    pub names: Vec<String>,
    /// Also watch the agent's own namespace (from the service account's namespace file);
    /// in-cluster only.
    pub own_namespace: bool,
}

/// A `selectors:` entry: label and field selectors for the watches of one role, in the
/// Kubernetes syntax (`app=web,tier!=db`, `spec.nodeName=n1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SelectorConfig {
    /// Which watches the selectors apply to.
    pub role: Role,
    /// Label selector; `None` when absent or empty.
    pub label: Option<String>,
    /// Field selector; `None` when absent or empty.
    pub field: Option<String>,
}

/// `attach_metadata:`, as Prometheus `AttachMetadataConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttachMetadata {
    /// Add the `__meta_kubernetes_node_*` labels of the target's node (watches nodes).
    pub node: bool,
}

with_http_client_keys! {
    /// One `kubernetes_sd_configs:` entry as written.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawKubernetesSdConfig {
        #[serde(default)]
        pub role: Option<Role>,
        #[serde(default)]
        pub api_server: Option<String>,
        #[serde(default)]
        pub kubeconfig_file: Option<PathBuf>,
        #[serde(default, deserialize_with = "nullable")]
        pub namespaces: RawNamespaces,
        #[serde(default, deserialize_with = "nullable")]
        pub selectors: Vec<Spanned<RawSelector>>,
        #[serde(default, deserialize_with = "nullable")]
        pub attach_metadata: RawAttachMetadata,
        #[serde(default, deserialize_with = "present_string")]
        pub node_name: Option<String>,
    }
}

/// A key that is present gives `Some`, even when null: `node_name: ${NODE_NAME}` with an empty
/// variable expands to `node_name:`, which must be an error, not "no node_name".
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

/// `namespaces:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNamespaces {
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    #[serde(default)]
    pub own_namespace: bool,
}

/// A `selectors:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelector {
    pub role: Role,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

/// `attach_metadata:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttachMetadata {
    #[serde(default)]
    pub node: bool,
}

impl Ctx<'_> {
    /// Validates one entry; `key` is its path (`scrape_configs[0].kubernetes_sd_configs[1]`).
    pub(super) fn kubernetes_sd(
        &self,
        raw: Spanned<RawKubernetesSdConfig>,
        key: &str,
    ) -> Result<KubernetesSdConfig, ConfigError> {
        let at = line(&raw);
        let mut raw = raw.value;
        let fail = |field: &str, message: String| self.err(at, format!("{key}.{field}"), message);

        let role = raw.role.ok_or_else(|| {
            fail(
                "role",
                "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)".to_owned(),
            )
        })?;
        let http = self.http(raw.take_http(), at, key)?;
        let api_server = match raw.api_server.filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(api_server_url(&text).map_err(|message| fail("api_server", message))?),
        };
        let kubeconfig_file = self.path(raw.kubeconfig_file);
        let own_namespace = raw.namespaces.own_namespace;
        let custom_http = http != HttpClientConfig::default();

        // Where the client comes from decides which other keys make sense.
        let conflict = if api_server.is_some() && kubeconfig_file.is_some() {
            Some((
                "kubeconfig_file",
                "cannot use 'kubeconfig_file' and 'api_server' simultaneously",
            ))
        } else if kubeconfig_file.is_some() && custom_http {
            Some((
                "kubeconfig_file",
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'",
            ))
        } else if api_server.is_none() && custom_http {
            Some((
                "api_server",
                "to use custom HTTP client configuration please provide the 'api_server' URL explicitly",
            ))
        } else if api_server.is_some() && own_namespace {
            Some((
                "namespaces.own_namespace",
                "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously",
            ))
        } else if kubeconfig_file.is_some() && own_namespace {
            Some((
                "namespaces.own_namespace",
                "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously",
            ))
        } else {
            None
        };
        if let Some((field, message)) = conflict {
            return Err(fail(field, message.to_owned()));
        }

        let mut names: Vec<String> = Vec::with_capacity(raw.namespaces.names.len());
        for name in raw.namespaces.names {
            if name.is_empty() {
                return Err(fail("namespaces.names", "namespace name is empty".to_owned()));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }

        let attach_metadata = AttachMetadata {
            node: raw.attach_metadata.node,
        };
        let selectors = self.selectors(raw.selectors, role, attach_metadata.node, key)?;

        let node_name = match raw.node_name {
            None => None,
            Some(name) => Some(check_node_name(role, name).map_err(|message| fail("node_name", message))?),
        };

        Ok(KubernetesSdConfig {
            role,
            api_server,
            kubeconfig_file,
            namespaces: NamespaceDiscovery { names, own_namespace },
            selectors,
            attach_metadata,
            node_name,
            http,
        })
    }

    /// One selector per role, each for a watched role, each parsing as Kubernetes does.
    fn selectors(
        &self,
        raw: Vec<Spanned<RawSelector>>,
        role: Role,
        attach_node: bool,
        key: &str,
    ) -> Result<Vec<SelectorConfig>, ConfigError> {
        let allowed = role.allowed_selectors(attach_node);
        let mut out: Vec<SelectorConfig> = Vec::with_capacity(raw.len());
        for (i, spanned) in raw.into_iter().enumerate() {
            let at = line(&spanned);
            let sel = spanned.value;
            let fail = |field: &str, message: String| self.err(at, format!("{key}.selectors[{i}]{field}"), message);
            if out.iter().any(|s| s.role == sel.role) {
                return Err(fail(".role", format!("duplicated selector role: {}", sel.role)));
            }
            if !allowed.contains(&sel.role) {
                let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                let mut message = format!("{role} role supports only {} selectors", names.join(", "));
                if sel.role == Role::Node && role.joins_node() {
                    message.push_str(" (node selectors need attach_metadata: {node: true})");
                }
                return Err(fail(".role", message));
            }
            let label = sel.label.filter(|s| !s.trim().is_empty());
            let field = sel.field.filter(|s| !s.trim().is_empty());
            if let Some(label) = &label {
                check_label_selector(label)
                    .map_err(|m| fail(".label", format!("invalid label selector {label:?}: {m}")))?;
            }
            if let Some(field) = &field {
                check_field_selector(field)
                    .map_err(|m| fail(".field", format!("invalid field selector {field:?}: {m}")))?;
            }
            out.push(SelectorConfig {
                role: sel.role,
                label,
                field,
            });
        }
        Ok(out)
    }
}

/// `api_server` as a URL with an `http`/`https` scheme and a host.
fn api_server_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("URL scheme must be 'http' or 'https', got {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {text:?} has no host"));
    }
    Ok(url)
}

/// `node_name`: only for roles that can be filtered by node, and a valid node name (a DNS
/// subdomain), so it can be put in a field selector as is.
fn check_node_name(role: Role, name: String) -> Result<String, String> {
    if !matches!(role, Role::Node | Role::Pod | Role::Endpoints | Role::EndpointSlice) {
        return Err(format!(
            "node_name is not supported for role {role} (only node, pod, endpoints and endpointslice)"
        ));
    }
    if name.is_empty() {
        return Err(
            "node_name is empty; is the environment variable it names (e.g. ${NODE_NAME}) set to a value?".to_owned(),
        );
    }
    if !is_dns_subdomain(&name) {
        return Err(format!(
            "node_name {name:?} is not a valid node name (lower-case letters, digits, '-' and '.')"
        ));
    }
    Ok(name)
}

#[cfg(test)]
#[path = "kubernetes_tests.rs"]
mod tests;
