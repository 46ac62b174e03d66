//! Endpoints and EndpointSlices, as the endpoints controllers write them for a service.

use serde_json::{Value, json};

use super::{Build, CREATED, Meta, uid};

/// One backend address of [`Endpoints`] or an endpoint of an [`EndpointSlice`]; ready and
/// serving by default.
#[derive(Debug, Clone)]
pub struct Address {
    ip: String,
    pod: Option<String>,
    node: Option<String>,
    hostname: Option<String>,
    zone: Option<String>,
    ready: bool,
    serving: Option<bool>,
    terminating: bool,
}

impl Address {
    /// An address `ip` without target.
    pub fn new(ip: &str) -> Address {
        Address {
            ip: ip.to_owned(),
            pod: None,
            node: None,
            hostname: None,
            zone: None,
            ready: true,
            serving: None,
            terminating: false,
        }
    }

    /// Points it at the pod `name` in the object's namespace (`targetRef`).
    pub fn pod(mut self, name: &str) -> Address {
        self.pod = Some(name.to_owned());
        self
    }

    /// The node it runs on (`nodeName`).
    pub fn node(mut self, node: &str) -> Address {
        self.node = Some(node.to_owned());
        self
    }

    /// Its `hostname` (pods of a headless service with a subdomain).
    pub fn hostname(mut self, hostname: &str) -> Address {
        self.hostname = Some(hostname.to_owned());
        self
    }

    /// Its zone (EndpointSlice only).
    pub fn zone(mut self, zone: &str) -> Address {
        self.zone = Some(zone.to_owned());
        self
    }

    /// Readiness: Endpoints put an unready address in `notReadyAddresses`; slices set
    /// `conditions.ready` (and `serving`, unless set).
    pub fn ready(mut self, ready: bool) -> Address {
        self.ready = ready;
        self
    }

    /// `conditions.serving` of a slice endpoint.
    pub fn serving(mut self, serving: bool) -> Address {
        self.serving = Some(serving);
        self
    }

    /// `conditions.terminating` of a slice endpoint.
    pub fn terminating(mut self, terminating: bool) -> Address {
        self.terminating = terminating;
        self
    }

    /// The fields both shapes share: `targetRef`, `nodeName`, `hostname`.
    fn common(&self, namespace: &str, out: &mut Value) {
        if let Some(pod) = &self.pod {
            out["targetRef"] =
                json!({"kind": "Pod", "name": pod, "namespace": namespace, "uid": uid("Pod", namespace, pod)});
        }
        if let Some(node) = &self.node {
            out["nodeName"] = node.clone().into();
        }
        if let Some(hostname) = &self.hostname {
            out["hostname"] = hostname.clone().into();
        }
    }
}

/// Ports of a subset or slice: `(name, port, protocol, appProtocol)`.
type Port = (String, u16, String, Option<String>);

fn ports_json(ports: &[Port]) -> Vec<Value> {
    ports
        .iter()
        .map(|(name, port, protocol, app)| {
            let mut p = json!({"port": port, "protocol": protocol});
            if !name.is_empty() {
                p["name"] = name.clone().into();
            }
            if let Some(app) = app {
                p["appProtocol"] = app.clone().into();
            }
            p
        })
        .collect()
}

/// A core/v1 Endpoints builder with one subset.
#[derive(Debug, Clone)]
pub struct Endpoints {
    meta: Meta,
    addresses: Vec<Address>,
    ports: Vec<Port>,
}

impl Endpoints {
    /// The Endpoints of the service `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Endpoints {
        let mut meta = Meta::new(Some(namespace), name);
        meta.annotations.insert(
            "endpoints.kubernetes.io/last-change-trigger-time".into(),
            CREATED.into(),
        );
        Endpoints {
            meta,
            addresses: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// Adds an address (to `notReadyAddresses` when not ready).
    pub fn address(mut self, address: Address) -> Endpoints {
        self.addresses.push(address);
        self
    }

    /// Adds a port with `protocol`; an empty `name` leaves it unnamed.
    pub fn port(mut self, name: &str, port: u16, protocol: &str) -> Endpoints {
        self.ports.push((name.to_owned(), port, protocol.to_owned(), None));
        self
    }
}

impl Build for Endpoints {
    fn meta(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&self) -> Value {
        let namespace = self.meta.namespace.as_deref().unwrap_or_default();
        let render = |ready: bool| -> Vec<Value> {
            self.addresses
                .iter()
                .filter(|a| a.ready == ready)
                .map(|a| {
                    let mut out = json!({"ip": a.ip});
                    a.common(namespace, &mut out);
                    out
                })
                .collect()
        };
        let mut subset = json!({"ports": ports_json(&self.ports)});
        for (key, list) in [("addresses", render(true)), ("notReadyAddresses", render(false))] {
            if !list.is_empty() {
                subset[key] = list.into();
            }
        }
        // A service without any address has no subsets at all.
        let subsets = if self.addresses.is_empty() {
            json!([])
        } else {
            json!([subset])
        };
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": self.meta.to_json("Endpoints", "kube-controller-manager"),
            "subsets": subsets,
        })
    }
}

/// A discovery.k8s.io/v1 EndpointSlice builder, as the endpointslice controller names and
/// labels them for a service.
#[derive(Debug, Clone)]
pub struct EndpointSlice {
    meta: Meta,
    address_type: String,
    endpoints: Vec<Address>,
    ports: Vec<Port>,
}

impl EndpointSlice {
    /// The slice `namespace/name` of the service `service` (label
    /// `kubernetes.io/service-name`, owner reference to the service).
    pub fn new(namespace: &str, name: &str, service: &str) -> EndpointSlice {
        let mut meta = Meta::new(Some(namespace), name);
        meta.labels.insert(
            "endpointslice.kubernetes.io/managed-by".into(),
            "endpointslice-controller.k8s.io".into(),
        );
        meta.labels.insert("kubernetes.io/service-name".into(), service.into());
        meta.annotations.insert(
            "endpoints.kubernetes.io/last-change-trigger-time".into(),
            CREATED.into(),
        );
        let slice = EndpointSlice {
            meta,
            address_type: "IPv4".to_owned(),
            endpoints: Vec::new(),
            ports: Vec::new(),
        };
        slice.owner("Service", service)
    }

    /// The `addressType` (`IPv4` by default, `IPv6`, `FQDN`).
    pub fn address_type(mut self, kind: &str) -> EndpointSlice {
        self.address_type = kind.to_owned();
        self
    }

    /// Adds an endpoint.
    pub fn endpoint(mut self, endpoint: Address) -> EndpointSlice {
        self.endpoints.push(endpoint);
        self
    }

    /// Adds a port; an empty `name` leaves it unnamed, `app_protocol` sets `appProtocol`.
    pub fn port(mut self, name: &str, port: u16, protocol: &str, app_protocol: Option<&str>) -> EndpointSlice {
        self.ports.push((
            name.to_owned(),
            port,
            protocol.to_owned(),
            app_protocol.map(str::to_owned),
        ));
        self
    }
}

impl Build for EndpointSlice {
    fn meta(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&self) -> Value {
        let namespace = self.meta.namespace.as_deref().unwrap_or_default();
        let endpoints: Vec<Value> = self
            .endpoints
            .iter()
            .map(|e| {
                let mut out = json!({
                    "addresses": [e.ip],
                    "conditions": {"ready": e.ready, "serving": e.serving.unwrap_or(e.ready), "terminating": e.terminating},
                });
                e.common(namespace, &mut out);
                if let Some(zone) = &e.zone {
                    out["zone"] = zone.clone().into();
                }
                out
            })
            .collect();
        let mut meta = self.meta.to_json("EndpointSlice", "kube-controller-manager");
        let service = self
            .meta
            .labels
            .get("kubernetes.io/service-name")
            .cloned()
            .unwrap_or_default();
        meta["generateName"] = format!("{service}-").into();
        meta["generation"] = 1.into();
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": meta,
            "addressType": self.address_type,
            "endpoints": endpoints,
            "ports": ports_json(&self.ports),
        })
    }
}
