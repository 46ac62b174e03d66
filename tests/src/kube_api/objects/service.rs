//! Services: ClusterIP (default), headless, NodePort, LoadBalancer, ExternalName.

use serde_json::{Value, json};

use super::{Build, Meta};

/// A service builder; a `ClusterIP` service with an address derived from its name until set.
#[derive(Debug, Clone)]
pub struct Service {
    meta: Meta,
    kind: String,
    cluster_ip: Option<String>,
    ports: Vec<Value>,
    selector: Vec<(String, String)>,
    external_name: Option<String>,
    load_balancer_ip: Option<String>,
}

impl Service {
    /// A service `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Service {
        let octet = name.bytes().fold(7u8, |h, b| h.wrapping_mul(31).wrapping_add(b)) % 250 + 2;
        Service {
            meta: Meta::new(Some(namespace), name),
            kind: "ClusterIP".to_owned(),
            cluster_ip: Some(format!("10.152.183.{octet}")),
            ports: Vec::new(),
            selector: Vec::new(),
            external_name: None,
            load_balancer_ip: None,
        }
    }

    /// Sets the cluster IP.
    pub fn cluster_ip(mut self, ip: &str) -> Service {
        self.cluster_ip = Some(ip.to_owned());
        self
    }

    /// Makes it headless (`clusterIP: None`).
    pub fn headless(mut self) -> Service {
        self.cluster_ip = Some("None".to_owned());
        self
    }

    /// Adds a TCP port `port` forwarding to the numeric `target_port`; an empty `name` leaves it
    /// unnamed.
    pub fn port(self, name: &str, port: u16, target_port: u16) -> Service {
        self.port_with(name, port, target_port.into(), "TCP")
    }

    /// Adds a port with a numeric or named `target_port` and a `protocol`.
    pub fn port_with(mut self, name: &str, port: u16, target_port: Value, protocol: &str) -> Service {
        let mut p = json!({"port": port, "protocol": protocol, "targetPort": target_port});
        if !name.is_empty() {
            p["name"] = name.into();
        }
        if self.kind == "NodePort" || self.kind == "LoadBalancer" {
            p["nodePort"] = (30000 + self.ports.len() as u64 * 7 + u64::from(port % 1000)).into();
        }
        self.ports.push(p);
        self
    }

    /// Adds `name: value` to the pod selector.
    pub fn selector(mut self, name: &str, value: &str) -> Service {
        self.selector.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Makes it a `NodePort` service (ports added afterwards get node ports).
    pub fn node_port(mut self) -> Service {
        self.kind = "NodePort".to_owned();
        self
    }

    /// Makes it a `LoadBalancer` service that asked for `ip` (`spec.loadBalancerIP`) and got it
    /// (`status.loadBalancer.ingress`); ports added afterwards get node ports.
    pub fn load_balancer(mut self, ip: &str) -> Service {
        self.kind = "LoadBalancer".to_owned();
        self.load_balancer_ip = Some(ip.to_owned());
        self
    }

    /// Makes it an `ExternalName` service for `host` (no cluster IP).
    pub fn external_name(mut self, host: &str) -> Service {
        self.kind = "ExternalName".to_owned();
        self.external_name = Some(host.to_owned());
        self.cluster_ip = None;
        self
    }
}

impl Build for Service {
    fn meta(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&self) -> Value {
        let mut spec = json!({"sessionAffinity": "None", "type": self.kind});
        if !self.ports.is_empty() {
            spec["ports"] = self.ports.clone().into();
        }
        if !self.selector.is_empty() {
            spec["selector"] = self
                .selector
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
        }
        if let Some(ip) = &self.cluster_ip {
            spec["clusterIP"] = ip.clone().into();
            spec["clusterIPs"] = json!([ip]);
            spec["internalTrafficPolicy"] = "Cluster".into();
            spec["ipFamilies"] = json!(["IPv4"]);
            spec["ipFamilyPolicy"] = "SingleStack".into();
        }
        if let Some(ip) = &self.load_balancer_ip {
            spec["loadBalancerIP"] = ip.clone().into();
        }
        if let Some(host) = &self.external_name {
            spec["externalName"] = host.clone().into();
        }
        if self.kind != "ClusterIP" && self.kind != "ExternalName" {
            spec["externalTrafficPolicy"] = "Cluster".into();
        }
        let load_balancer = match &self.load_balancer_ip {
            Some(ip) => json!({"ingress": [{"ip": ip, "ipMode": "VIP"}]}),
            None => json!({}),
        };
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta.to_json("Service", "kubectl-client-side-apply"),
            "spec": spec,
            "status": {"loadBalancer": load_balancer},
        })
    }
}
