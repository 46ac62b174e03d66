//! The builders' JSON decodes as the real types (k8s-openapi, v1.33), and carries what the
//! discovery roles read.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;
use serde_json::Value;

use super::*;

fn decode<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value:#}"))
}

#[test]
fn pods_decode_with_containers_ports_and_status() {
    let json = Pod::new("shop", "web-0")
        .node("node-a")
        .ip("10.1.0.7")
        .host_ip("192.168.1.21")
        .container(
            Container::new("app", "ghcr.io/acme/web:1.4")
                .port("http", 8080)
                .port("", 9102),
        )
        .container(Container::new("proxy", "envoy:1.30").port_protocol("dns", 53, "UDP"))
        .init_container(Container::new("migrate", "ghcr.io/acme/migrate:1.4"))
        .init_container(Container::new("log", "fluent-bit:3").port("logs", 2020).sidecar())
        .owner("ReplicaSet", "web-5d4f")
        .label("app", "web")
        .annotation("prometheus.io/scrape", "true")
        .build();
    let pod: core::Pod = decode(&json);
    let spec = pod.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-a"));
    let ports = spec.containers[0].ports.clone().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].container_port),
        (Some("http"), 8080)
    );
    assert_eq!((ports[1].name.as_deref(), ports[1].container_port), (None, 9102));
    assert_eq!(
        spec.containers[1].ports.as_ref().unwrap()[0].protocol.as_deref(),
        Some("UDP")
    );
    assert_eq!(spec.init_containers.as_ref().unwrap().len(), 2);
    let status = pod.status.unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("10.1.0.7"));
    assert_eq!(status.host_ip.as_deref(), Some("192.168.1.21"));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(status.container_statuses.unwrap().len(), 2);
    assert_eq!(status.init_container_statuses.unwrap().len(), 2);
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ReplicaSet", "web-5d4f", Some(true))
    );
    assert_eq!(pod.metadata.uid.as_deref(), Some(uid("Pod", "shop", "web-0").as_str()));
    assert_eq!(pod.metadata.labels.unwrap()["app"], "web");

    let unready: core::Pod = decode(&Pod::new("a", "b").node("n").ready(false).build());
    let conditions = unready.status.unwrap().conditions.unwrap();
    assert!(conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False"));
    let pending: core::Pod = decode(&Pod::new("a", "b").phase("Pending").build());
    let status = pending.status.unwrap();
    assert_eq!(status.conditions.unwrap().len(), 1);
    assert!(status.pod_ip.is_none());
}

#[test]
fn nodes_decode_with_addresses_and_kubelet_port() {
    let json = Node::new("pi-1")
        .arch("arm64")
        .address("InternalIP", "192.168.1.21")
        .address("Hostname", "pi-1")
        .kubelet_port(10255)
        .provider_id("aws:///eu-central-1a/i-0abc")
        .label("node-role.kubernetes.io/worker", "")
        .build();
    let node: core::Node = decode(&json);
    let status = node.status.unwrap();
    let addresses = status.addresses.unwrap();
    assert_eq!(
        (addresses[0].type_.as_str(), addresses[0].address.as_str()),
        ("InternalIP", "192.168.1.21")
    );
    assert_eq!(status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, 10255);
    let labels = node.metadata.labels.unwrap();
    assert_eq!(labels["kubernetes.io/arch"], "arm64");
    assert_eq!(labels["kubernetes.io/hostname"], "pi-1");
    assert!(node.metadata.namespace.is_none());
    assert_eq!(
        node.spec.unwrap().provider_id.as_deref(),
        Some("aws:///eu-central-1a/i-0abc")
    );
    let cordoned: core::Node = decode(&Node::new("x").unschedulable().build());
    assert_eq!(cordoned.spec.unwrap().unschedulable, Some(true));
}

#[test]
fn services_decode_in_every_type() {
    let svc: core::Service = decode(
        &Service::new("shop", "web")
            .port("http", 80, 8080)
            .selector("app", "web")
            .build(),
    );
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.cluster_ip.unwrap().starts_with("10.152.183."));
    assert_eq!(spec.ports.unwrap()[0].port, 80);

    let lb: core::Service = decode(
        &Service::new("shop", "lb")
            .load_balancer("192.168.1.240")
            .port("https", 443, 8443)
            .build(),
    );
    assert_eq!(
        lb.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("192.168.1.240")
    );
    let spec = lb.spec.unwrap();
    assert!(spec.ports.unwrap()[0].node_port.is_some());
    assert_eq!(spec.load_balancer_ip.as_deref(), Some("192.168.1.240"));

    let ext: core::Service = decode(&Service::new("shop", "db").external_name("db.example.com").build());
    let spec = ext.spec.unwrap();
    assert_eq!(spec.external_name.as_deref(), Some("db.example.com"));
    assert!(spec.cluster_ip.is_none());

    let named = Service::new("shop", "h")
        .headless()
        .port_with("grpc", 9000, "grpc".into(), "TCP")
        .build();
    let named: core::Service = decode(&named);
    assert_eq!(named.spec.unwrap().cluster_ip.as_deref(), Some("None"));
}

#[test]
fn endpoints_and_slices_decode_with_targets_and_conditions() {
    let ep: core::Endpoints = decode(
        &Endpoints::new("shop", "web")
            .address(Address::new("10.1.0.7").pod("web-0").node("node-a").hostname("web-0"))
            .address(Address::new("10.1.0.8").pod("web-1").node("node-b").ready(false))
            .port("http", 8080, "TCP")
            .build(),
    );
    let subset = &ep.subsets.unwrap()[0];
    let ready = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(ready.node_name.as_deref(), Some("node-a"));
    let target = ready.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_deref(),
            target.name.as_deref(),
            target.namespace.as_deref()
        ),
        (Some("Pod"), Some("web-0"), Some("shop"))
    );
    assert_eq!(target.uid.as_deref(), Some(uid("Pod", "shop", "web-0").as_str()));
    assert_eq!(subset.not_ready_addresses.as_ref().unwrap()[0].ip, "10.1.0.8");
    let empty: core::Endpoints = decode(&Endpoints::new("shop", "none").build());
    assert!(empty.subsets.unwrap().is_empty());

    let slice: discovery::EndpointSlice = decode(
        &EndpointSlice::new("shop", "web-x7k2p", "web")
            .endpoint(Address::new("10.1.0.7").pod("web-0").node("node-a").zone("z1"))
            .endpoint(Address::new("10.1.0.8").ready(false).terminating(true))
            .port("http", 8080, "TCP", Some("http"))
            .build(),
    );
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        slice.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"],
        "web"
    );
    assert_eq!(slice.metadata.owner_references.as_ref().unwrap()[0].kind, "Service");
    let first = &slice.endpoints[0];
    assert_eq!(
        (first.node_name.as_deref(), first.zone.as_deref()),
        (Some("node-a"), Some("z1"))
    );
    let second = slice.endpoints[1].conditions.as_ref().unwrap();
    assert_eq!(
        (second.ready, second.serving, second.terminating),
        (Some(false), Some(false), Some(true))
    );
    assert_eq!(slice.ports.unwrap()[0].app_protocol.as_deref(), Some("http"));
}

#[test]
fn ingresses_and_namespaces_decode() {
    let ing: networking::Ingress = decode(
        &Ingress::new("shop", "web")
            .class("nginx")
            .rule("shop.example.com", &["/", "/api"])
            .rule("", &[])
            .tls(&["shop.example.com"])
            .build(),
    );
    let spec = ing.spec.unwrap();
    let rules = spec.rules.unwrap();
    assert_eq!(rules[0].http.as_ref().unwrap().paths.len(), 2);
    assert!(rules[1].host.is_none() && rules[1].http.is_none());
    assert_eq!(spec.tls.unwrap()[0].hosts.as_ref().unwrap()[0], "shop.example.com");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));

    let ns: core::Namespace = decode(&namespace("shop"));
    assert_eq!(ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"], "shop");
}

#[test]
fn the_malformed_pod_does_not_decode_but_has_metadata() {
    let json = malformed_pod("shop", "broken", "node-a");
    assert!(serde_json::from_value::<core::Pod>(json.clone()).is_err());
    assert_eq!(json["metadata"]["name"], "broken");
    assert_eq!(json["spec"]["nodeName"], "node-a");
}

#[test]
fn uids_are_stable_and_distinct() {
    assert_eq!(uid("Pod", "a", "b"), uid("Pod", "a", "b"));
    assert_ne!(uid("Pod", "a", "b"), uid("Pod", "a", "c"));
    let u = uid("Pod", "a", "b");
    assert_eq!(u.len(), 36);
    assert_eq!(u.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
}
