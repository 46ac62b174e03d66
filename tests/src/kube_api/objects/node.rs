//! Nodes: addresses, kubelet endpoint, the labels kubelet sets.

use serde_json::{Value, json};

use super::{Build, CREATED, Meta, uid};

/// A node builder: `Ready`, kubelet on port 10250, architecture amd64, the standard
/// `kubernetes.io/*` labels and kubelet's annotations; no addresses until added.
#[derive(Debug, Clone)]
pub struct Node {
    meta: Meta,
    addresses: Vec<(String, String)>,
    kubelet_port: u16,
    arch: String,
    unschedulable: bool,
    provider_id: Option<String>,
}

impl Node {
    /// A node `name`.
    pub fn new(name: &str) -> Node {
        let mut meta = Meta::new(None, name);
        meta.annotations
            .insert("node.alpha.kubernetes.io/ttl".into(), "0".into());
        meta.annotations.insert(
            "volumes.kubernetes.io/controller-managed-attach-detach".into(),
            "true".into(),
        );
        meta.labels.insert("kubernetes.io/hostname".into(), name.into());
        Node {
            meta,
            addresses: Vec::new(),
            kubelet_port: 10250,
            arch: String::new(),
            unschedulable: false,
            provider_id: None,
        }
        .arch("amd64")
    }

    /// Adds an address of `kind` (`InternalIP`, `ExternalIP`, `InternalDNS`, `ExternalDNS`,
    /// `Hostname`), in order.
    pub fn address(mut self, kind: &str, address: &str) -> Node {
        self.addresses.push((kind.to_owned(), address.to_owned()));
        self
    }

    /// The kubelet's port (`status.daemonEndpoints.kubeletEndpoint.Port`).
    pub fn kubelet_port(mut self, port: u16) -> Node {
        self.kubelet_port = port;
        self
    }

    /// The architecture (`amd64`, `arm64`) in labels and nodeInfo.
    pub fn arch(mut self, arch: &str) -> Node {
        self.arch = arch.to_owned();
        for (key, value) in [
            ("beta.kubernetes.io/arch", arch),
            ("beta.kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", arch),
            ("kubernetes.io/os", "linux"),
        ] {
            self.meta.labels.insert(key.into(), value.into());
        }
        self
    }

    /// The cloud provider's id (`spec.providerID`, e.g. `aws:///eu-central-1a/i-0abc`).
    pub fn provider_id(mut self, id: &str) -> Node {
        self.provider_id = Some(id.to_owned());
        self
    }

    /// Cordons it (`spec.unschedulable: true`).
    pub fn unschedulable(mut self) -> Node {
        self.unschedulable = true;
        self
    }
}

impl Build for Node {
    fn meta(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&self) -> Value {
        let condition = |kind: &str, status: &str, reason: &str, message: &str| json!({"lastHeartbeatTime": CREATED, "lastTransitionTime": CREATED, "message": message, "reason": reason, "status": status, "type": kind});
        let resources = json!({"cpu": "4", "ephemeral-storage": "61255492Ki", "hugepages-2Mi": "0", "memory": "8003292Ki", "pods": "110"});
        let mut spec = json!({});
        if let Some(id) = &self.provider_id {
            spec["providerID"] = id.clone().into();
        }
        if self.unschedulable {
            spec["unschedulable"] = true.into();
            spec["taints"] =
                json!([{"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable", "timeAdded": CREATED}]);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": self.meta.to_json("Node", "kubelet"),
            "spec": spec,
            "status": {
                "addresses": self.addresses.iter().map(|(kind, address)| json!({"address": address, "type": kind})).collect::<Vec<_>>(),
                "allocatable": resources,
                "capacity": resources,
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                "nodeInfo": {
                    "architecture": self.arch,
                    "bootID": uid("boot", "", &self.meta.name),
                    "containerRuntimeVersion": "containerd://1.7.27",
                    "kernelVersion": "6.8.0-1018-raspi",
                    "kubeProxyVersion": "v1.33.1",
                    "kubeletVersion": "v1.33.1",
                    "machineID": uid("machine", "", &self.meta.name).replace('-', ""),
                    "operatingSystem": "linux",
                    "osImage": "Ubuntu 24.04.2 LTS",
                    "systemUUID": uid("system", "", &self.meta.name),
                },
            },
        })
    }
}
