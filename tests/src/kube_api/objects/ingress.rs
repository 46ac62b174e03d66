//! Ingresses: rules with hosts and paths, TLS.

use serde_json::{Value, json};

use super::{Build, Meta};

/// An ingress builder; its backends are the service named like the ingress, port 80.
#[derive(Debug, Clone)]
pub struct Ingress {
    meta: Meta,
    class: Option<String>,
    rules: Vec<(String, Vec<String>)>,
    tls: Vec<Vec<String>>,
}

impl Ingress {
    /// An ingress `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Ingress {
        Ingress {
            meta: Meta::new(Some(namespace), name),
            class: None,
            rules: Vec::new(),
            tls: Vec::new(),
        }
    }

    /// `spec.ingressClassName`.
    pub fn class(mut self, class: &str) -> Ingress {
        self.class = Some(class.to_owned());
        self
    }

    /// Adds a rule for `host` (`""`: any host) with `Prefix` paths; no paths gives a rule
    /// without an `http` section.
    pub fn rule(mut self, host: &str, paths: &[&str]) -> Ingress {
        self.rules
            .push((host.to_owned(), paths.iter().map(|p| (*p).to_owned()).collect()));
        self
    }

    /// Adds a TLS section for `hosts`.
    pub fn tls(mut self, hosts: &[&str]) -> Ingress {
        self.tls.push(hosts.iter().map(|h| (*h).to_owned()).collect());
        self
    }
}

impl Build for Ingress {
    fn meta(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&self) -> Value {
        let backend = json!({"service": {"name": self.meta.name, "port": {"number": 80}}});
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|(host, paths)| {
                let mut rule = json!({});
                if !host.is_empty() {
                    rule["host"] = host.clone().into();
                }
                if !paths.is_empty() {
                    let paths: Vec<Value> = paths
                        .iter()
                        .map(|p| json!({"backend": backend, "path": p, "pathType": "Prefix"}))
                        .collect();
                    rule["http"] = json!({"paths": paths});
                }
                rule
            })
            .collect();
        let mut spec = json!({"rules": rules});
        if let Some(class) = &self.class {
            spec["ingressClassName"] = class.clone().into();
        }
        if !self.tls.is_empty() {
            let tls: Vec<Value> = self
                .tls
                .iter()
                .enumerate()
                .map(|(i, hosts)| json!({"hosts": hosts, "secretName": format!("{}-tls-{i}", self.meta.name)}))
                .collect();
            spec["tls"] = tls.into();
        }
        let mut meta = self.meta.to_json("Ingress", "kubectl-client-side-apply");
        meta["generation"] = 1.into();
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta,
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}]}},
        })
    }
}
