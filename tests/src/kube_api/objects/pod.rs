//! Pods: containers with ports, init containers, conditions, IPs and node.

use serde_json::{Value, json};

use super::{Build, CREATED, Meta, hex64};

/// A container of a [`Pod`].
#[derive(Debug, Clone)]
pub struct Container {
    name: String,
    image: String,
    ports: Vec<(String, u16, String)>,
    sidecar: bool,
}

impl Container {
    /// A container without ports.
    pub fn new(name: &str, image: &str) -> Container {
        Container {
            name: name.to_owned(),
            image: image.to_owned(),
            ports: Vec::new(),
            sidecar: false,
        }
    }

    /// Adds a TCP port; an empty `name` leaves the port unnamed.
    pub fn port(self, name: &str, port: u16) -> Container {
        self.port_protocol(name, port, "TCP")
    }

    /// Adds a port with `protocol` (`TCP`, `UDP`, `SCTP`).
    pub fn port_protocol(mut self, name: &str, port: u16, protocol: &str) -> Container {
        self.ports.push((name.to_owned(), port, protocol.to_owned()));
        self
    }

    /// Makes an init container a sidecar (`restartPolicy: Always`): it keeps running.
    pub fn sidecar(mut self) -> Container {
        self.sidecar = true;
        self
    }

    fn spec(&self) -> Value {
        let mut spec = json!({
            "name": self.name,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": [{
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "name": "kube-api-access-7xk2p",
                "readOnly": true,
            }],
        });
        if !self.ports.is_empty() {
            let ports: Vec<Value> = self
                .ports
                .iter()
                .map(|(name, port, protocol)| {
                    let mut p = json!({"containerPort": port, "protocol": protocol});
                    if !name.is_empty() {
                        p["name"] = name.clone().into();
                    }
                    p
                })
                .collect();
            spec["ports"] = ports.into();
        }
        if self.sidecar {
            spec["restartPolicy"] = "Always".into();
        }
        spec
    }

    /// The container's status; an init container that is not a sidecar has completed.
    fn status(&self, ready: bool, init: bool) -> Value {
        let id = hex64(&format!("container/{}/{}", self.name, self.image));
        let state = if init && !self.sidecar {
            json!({"terminated": {"containerID": format!("containerd://{id}"), "exitCode": 0, "reason": "Completed", "startedAt": CREATED, "finishedAt": CREATED}})
        } else {
            json!({"running": {"startedAt": CREATED}})
        };
        json!({
            "containerID": format!("containerd://{id}"),
            "image": self.image,
            "imageID": format!("{}@sha256:{}", self.image.split(':').next().unwrap_or_default(), hex64(&self.image)),
            "lastState": {},
            "name": self.name,
            "ready": ready || (init && !self.sidecar),
            "restartCount": 0,
            "started": !init || self.sidecar,
            "state": state,
        })
    }
}

/// A pod builder; by default `Running` and ready, without node or IP (set them).
#[derive(Debug, Clone)]
pub struct Pod {
    meta: Meta,
    node: Option<String>,
    ip: Option<String>,
    host_ip: Option<String>,
    containers: Vec<Container>,
    init_containers: Vec<Container>,
    phase: String,
    ready: bool,
    host_network: bool,
}

impl Pod {
    /// A pod `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Pod {
        Pod {
            meta: Meta::new(Some(namespace), name),
            node: None,
            ip: None,
            host_ip: None,
            containers: Vec::new(),
            init_containers: Vec::new(),
            phase: "Running".to_owned(),
            ready: true,
            host_network: false,
        }
    }

    /// Schedules it on `node` (`spec.nodeName`).
    pub fn node(mut self, node: &str) -> Pod {
        self.node = Some(node.to_owned());
        self
    }

    /// Its pod IP (`status.podIP`, `status.podIPs`).
    pub fn ip(mut self, ip: &str) -> Pod {
        self.ip = Some(ip.to_owned());
        self
    }

    /// Its node's IP (`status.hostIP`, `status.hostIPs`).
    pub fn host_ip(mut self, ip: &str) -> Pod {
        self.host_ip = Some(ip.to_owned());
        self
    }

    /// Adds a container.
    pub fn container(mut self, container: Container) -> Pod {
        self.containers.push(container);
        self
    }

    /// Adds an init container.
    pub fn init_container(mut self, container: Container) -> Pod {
        self.init_containers.push(container);
        self
    }

    /// Sets `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`).
    pub fn phase(mut self, phase: &str) -> Pod {
        self.phase = phase.to_owned();
        self
    }

    /// Sets the `Ready` and `ContainersReady` conditions and the containers' readiness.
    pub fn ready(mut self, ready: bool) -> Pod {
        self.ready = ready;
        self
    }

    /// Runs it in the node's network namespace (`spec.hostNetwork`).
    pub fn host_network(mut self) -> Pod {
        self.host_network = true;
        self
    }

    fn conditions(&self) -> Vec<Value> {
        let flag = |b: bool| if b { "True" } else { "False" };
        let scheduled = self.node.is_some();
        let started = scheduled && self.phase != "Pending";
        let mut conditions = vec![
            ("PodReadyToStartContainers", flag(started)),
            ("Initialized", flag(started)),
            ("Ready", flag(self.ready)),
            ("ContainersReady", flag(self.ready)),
            ("PodScheduled", flag(scheduled)),
        ];
        if !scheduled {
            conditions.retain(|(kind, _)| *kind == "PodScheduled");
        }
        conditions
            .into_iter()
            .map(|(kind, status)| {
                let mut c =
                    json!({"lastProbeTime": null, "lastTransitionTime": CREATED, "status": status, "type": kind});
                if status == "False" && matches!(kind, "Ready" | "ContainersReady") {
                    c["reason"] = "ContainersNotReady".into();
                }
                c
            })
            .collect()
    }
}

impl Build for Pod {
    fn meta(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&self) -> Value {
        let mut spec = json!({
            "containers": self.containers.iter().map(Container::spec).collect::<Vec<_>>(),
            "dnsPolicy": if self.host_network { "ClusterFirstWithHostNet" } else { "ClusterFirst" },
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
            ],
            "volumes": [{
                "name": "kube-api-access-7xk2p",
                "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                    {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}},
                ]},
            }],
        });
        if !self.init_containers.is_empty() {
            spec["initContainers"] = self
                .init_containers
                .iter()
                .map(Container::spec)
                .collect::<Vec<_>>()
                .into();
        }
        if let Some(node) = &self.node {
            spec["nodeName"] = node.clone().into();
        }
        if self.host_network {
            spec["hostNetwork"] = true.into();
        }
        let mut status = json!({
            "conditions": self.conditions(),
            "phase": self.phase,
            "qosClass": "Burstable",
        });
        if self.node.is_some() && self.phase != "Pending" {
            status["startTime"] = CREATED.into();
            status["containerStatuses"] = self
                .containers
                .iter()
                .map(|c| c.status(self.ready, false))
                .collect::<Vec<_>>()
                .into();
            if !self.init_containers.is_empty() {
                status["initContainerStatuses"] = self
                    .init_containers
                    .iter()
                    .map(|c| c.status(self.ready, true))
                    .collect::<Vec<_>>()
                    .into();
            }
        }
        if let Some(ip) = &self.host_ip {
            status["hostIP"] = ip.clone().into();
            status["hostIPs"] = json!([{"ip": ip}]);
        }
        if let Some(ip) = &self.ip {
            status["podIP"] = ip.clone().into();
            status["podIPs"] = json!([{"ip": ip}]);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": self.meta.to_json("Pod", "kubelet"),
            "spec": spec,
            "status": status,
        })
    }
}
