//! Vectors from Prometheus `discovery/kubernetes/endpoints_test.go` and `docs/configuration/configuration.md`
//! (role endpoints), node-local filtering (ours), and broken and hostile objects.

use k8s_openapi::api::core::v1::{Endpoints, Pod};
use serde_json::{Value, json};
use trawl_model::labels::Labels;

use super::{group, source};
use crate::discovery::TargetGroup;
use crate::discovery::kubernetes::meta::JoinOptions;
use crate::discovery::kubernetes::meta::test_objects::{
    Store, labels, node, object, two_container_pod, two_container_pod_labels, with,
};

/// Prometheus `makeEndpoints`: a ready address with hostname and node, an address both ready
/// and not ready, and an address backed by a Node.
fn make_endpoints(namespace: &str) -> Endpoints {
    object(json!({
        "metadata": {"name": "testendpoints", "namespace": namespace, "annotations": {"test.annotation": "test"}},
        "subsets": [
            {"addresses": [{"ip": "1.2.3.4", "hostname": "testendpoint1", "nodeName": "foobar"}],
             "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}]},
            {"addresses": [{"ip": "2.3.4.5"}], "notReadyAddresses": [{"ip": "2.3.4.5"}],
             "ports": [{"name": "testport", "port": 9001, "protocol": "TCP"}]},
            {"addresses": [{"ip": "6.7.8.9", "targetRef": {"kind": "Node", "name": "barbaz"}}],
             "ports": [{"name": "testport", "port": 9002, "protocol": "TCP"}]},
        ],
    }))
}

fn port_labels(address: &str, port_name: &str, ready: &str) -> Labels {
    labels(&[
        ("__address__", address),
        ("__meta_kubernetes_endpoint_port_name", port_name),
        ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ("__meta_kubernetes_endpoint_ready", ready),
    ])
}

/// The four targets Prometheus expects for [`make_endpoints`].
fn make_endpoints_targets() -> Vec<Labels> {
    vec![
        with(
            &port_labels("1.2.3.4:9000", "testport", "true"),
            &[
                ("__meta_kubernetes_endpoint_hostname", "testendpoint1"),
                ("__meta_kubernetes_endpoint_node_name", "foobar"),
            ],
        ),
        port_labels("2.3.4.5:9001", "testport", "true"),
        port_labels("2.3.4.5:9001", "testport", "false"),
        with(
            &port_labels("6.7.8.9:9002", "testport", "true"),
            &[
                ("__meta_kubernetes_endpoint_address_target_kind", "Node"),
                ("__meta_kubernetes_endpoint_address_target_name", "barbaz"),
            ],
        ),
    ]
}

fn make_endpoints_labels(namespace: &str) -> Labels {
    labels(&[
        ("__meta_kubernetes_namespace", namespace),
        ("__meta_kubernetes_endpoints_name", "testendpoints"),
        ("__meta_kubernetes_endpoints_annotation_test_annotation", "test"),
        ("__meta_kubernetes_endpoints_annotationpresent_test_annotation", "true"),
    ])
}

fn pod_backed(namespace: &str, ip: &str, port: u16, port_name: &str) -> Endpoints {
    object(json!({
        "metadata": {"name": "testendpoints", "namespace": namespace},
        "subsets": [{
            "addresses": [{"ip": ip, "targetRef": {"kind": "Pod", "name": "testpod", "namespace": namespace}}],
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        }],
    }))
}

#[test]
fn addresses_ready_and_not_ready_and_node_targets() {
    let got = group(&make_endpoints("default"), &Store::default(), &JoinOptions::default());
    let expected = TargetGroup {
        source: "endpoints/default/testendpoints".into(),
        targets: make_endpoints_targets(),
        labels: make_endpoints_labels("default"),
    };
    assert_eq!(got, expected);
}

#[test]
fn pod_backed_address_gets_pod_labels_and_other_container_ports_become_targets() {
    let store = Store {
        pods: vec![two_container_pod("default")],
        ..Store::default()
    };
    let got = group(
        &pod_backed("default", "4.3.2.1", 9000, "testport"),
        &store,
        &JoinOptions::default(),
    );
    let pod = two_container_pod_labels("1.2.3.4");
    let expected = TargetGroup {
        source: "endpoints/default/testendpoints".into(),
        targets: vec![
            with(
                &pod,
                &[
                    ("__address__", "4.3.2.1:9000"),
                    ("__meta_kubernetes_endpoint_port_name", "testport"),
                    ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
                    ("__meta_kubernetes_endpoint_ready", "true"),
                    ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
                    ("__meta_kubernetes_endpoint_address_target_name", "testpod"),
                    ("__meta_kubernetes_pod_container_name", "c1"),
                    ("__meta_kubernetes_pod_container_image", "c1:latest"),
                    ("__meta_kubernetes_pod_container_port_name", "mainport"),
                    ("__meta_kubernetes_pod_container_port_number", "9000"),
                    ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                    ("__meta_kubernetes_pod_container_init", "false"),
                ],
            ),
            with(
                &pod,
                &[
                    ("__address__", "1.2.3.4:9001"),
                    ("__meta_kubernetes_pod_container_name", "c2"),
                    ("__meta_kubernetes_pod_container_image", "c2:latest"),
                    ("__meta_kubernetes_pod_container_port_name", "sideport"),
                    ("__meta_kubernetes_pod_container_port_number", "9001"),
                    ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                    ("__meta_kubernetes_pod_container_init", "false"),
                ],
            ),
        ],
        labels: labels(&[
            ("__meta_kubernetes_endpoints_name", "testendpoints"),
            ("__meta_kubernetes_namespace", "default"),
        ]),
    };
    assert_eq!(got, expected);
}

#[test]
fn service_of_the_same_name_adds_its_labels_to_the_group() {
    let service = object(json!({"metadata": {"name": "testendpoints", "namespace": "default",
                                             "labels": {"app/name": "svc", "component": "testing"}}}));
    let other_namespace = object(json!({"metadata": {"name": "testendpoints", "namespace": "other",
                                                    "labels": {"wrong": "yes"}}}));
    let store = Store {
        services: vec![other_namespace, service],
        ..Store::default()
    };
    let got = group(&make_endpoints("default"), &store, &JoinOptions::default());
    assert_eq!(
        got.labels,
        with(
            &make_endpoints_labels("default"),
            &[
                ("__meta_kubernetes_service_label_app_name", "svc"),
                ("__meta_kubernetes_service_labelpresent_app_name", "true"),
                ("__meta_kubernetes_service_name", "testendpoints"),
                ("__meta_kubernetes_service_label_component", "testing"),
                ("__meta_kubernetes_service_labelpresent_component", "true"),
            ]
        )
    );
    assert_eq!(got.targets, make_endpoints_targets());
}

#[test]
fn attached_node_metadata_goes_on_targets_by_node_name_or_node_target() {
    let store = Store {
        nodes: vec![
            node("foobar", "", json!({"az": "us-east1"}), Value::Null),
            node("barbaz", "", json!({"az": "us-west2"}), Value::Null),
        ],
        ..Store::default()
    };
    let opts = JoinOptions {
        attach_node: true,
        node_name: None,
    };
    let got = group(&make_endpoints("default"), &store, &opts);
    let mut expected = make_endpoints_targets();
    for (i, node, az) in [(0, "foobar", "us-east1"), (3, "barbaz", "us-west2")] {
        expected[i] = with(
            &expected[i],
            &[
                ("__meta_kubernetes_node_label_az", az),
                ("__meta_kubernetes_node_labelpresent_az", "true"),
                ("__meta_kubernetes_node_name", node),
            ],
        );
    }
    assert_eq!(got.targets, expected);

    // Unknown nodes add nothing.
    let got = group(&make_endpoints("default"), &Store::default(), &opts);
    assert_eq!(got.targets, make_endpoints_targets());
}

#[test]
fn node_local_mode_keeps_only_this_nodes_addresses() {
    let local = |node: &str| JoinOptions {
        attach_node: false,
        node_name: Some(node.to_owned()),
    };
    let got = group(&make_endpoints("default"), &Store::default(), &local("foobar"));
    assert_eq!(got.targets, make_endpoints_targets()[..1]);
    // An address without nodeName counts on the node it targets.
    let got = group(&make_endpoints("default"), &Store::default(), &local("barbaz"));
    assert_eq!(got.targets, make_endpoints_targets()[3..]);
    // Other nodes: labels stay, targets go (an empty group makes old targets stale).
    let got = group(&make_endpoints("default"), &Store::default(), &local("elsewhere"));
    assert!(got.targets.is_empty());
    assert_eq!(got.labels, make_endpoints_labels("default"));
}

#[test]
fn node_local_mode_drops_pods_of_other_nodes_with_their_extra_ports() {
    let mut endpoints = pod_backed("default", "1.2.3.4", 9000, "testport");
    endpoints.subsets.as_mut().unwrap()[0].addresses.as_mut().unwrap()[0].node_name = Some("testnode".into());
    let store = Store {
        pods: vec![two_container_pod("default")],
        ..Store::default()
    };
    let here = JoinOptions {
        attach_node: false,
        node_name: Some("testnode".into()),
    };
    assert_eq!(group(&endpoints, &store, &here).targets.len(), 2);
    let there = JoinOptions {
        attach_node: false,
        node_name: Some("other".into()),
    };
    assert!(group(&endpoints, &store, &there).targets.is_empty());
}

#[test]
fn pod_readiness_follows_the_pod() {
    let mut pod: Value = serde_json::to_value(two_container_pod("default")).unwrap();
    pod["spec"]["containers"] = json!([{"name": "c1", "image": "c1:latest",
        "ports": [{"name": "mainport", "containerPort": 9000, "protocol": "TCP"}]}]);
    pod["status"]["phase"] = json!("Running");
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    pod["status"]["podIP"] = json!("4.3.2.1");
    let store = Store {
        pods: vec![object(pod)],
        ..Store::default()
    };
    let got = group(
        &pod_backed("default", "4.3.2.1", 9000, "mainport"),
        &store,
        &JoinOptions::default(),
    );
    assert_eq!(got.targets.len(), 1);
    assert_eq!(got.targets[0].get("__meta_kubernetes_pod_ready"), "true");
    assert_eq!(got.targets[0].get("__meta_kubernetes_pod_phase"), "Running");
    assert_eq!(got.targets[0].get("__meta_kubernetes_pod_ip"), "4.3.2.1");
}

#[test]
fn init_container_ports_match_and_are_marked() {
    // Prometheus `TestEndpointsDiscoverySidecarContainer`.
    let endpoints: Endpoints = object(json!({
        "metadata": {"name": "testsidecar", "namespace": "default"},
        "subsets": [{
            "addresses": [{"ip": "4.3.2.1", "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}],
            "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"},
                      {"name": "initport", "port": 9111, "protocol": "TCP"}],
        }],
    }));
    let pod: Pod = object(json!({
        "metadata": {"name": "testpod", "namespace": "default", "uid": "deadbeef"},
        "spec": {
            "nodeName": "testnode",
            "initContainers": [
                {"name": "ic1", "image": "ic1:latest", "ports": [{"name": "initport", "containerPort": 1111, "protocol": "TCP"}]},
                {"name": "ic2", "image": "ic2:latest", "ports": [{"name": "initport", "containerPort": 9111, "protocol": "TCP"}]},
            ],
            "containers": [
                {"name": "c1", "image": "c1:latest", "ports": [{"name": "mainport", "containerPort": 9000, "protocol": "TCP"}]},
            ],
        },
        "status": {"hostIP": "2.3.4.5", "podIP": "4.3.2.1"},
    }));
    let store = Store {
        pods: vec![pod],
        ..Store::default()
    };
    let got = group(&endpoints, &store, &JoinOptions::default());
    let pod = two_container_pod_labels("4.3.2.1");
    let endpoint = |address: &str, port_name: &str| {
        with(
            &pod,
            &[
                ("__address__", address),
                ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
                ("__meta_kubernetes_endpoint_address_target_name", "testpod"),
                ("__meta_kubernetes_endpoint_port_name", port_name),
                ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
                ("__meta_kubernetes_endpoint_ready", "true"),
            ],
        )
    };
    let container = |base: &Labels, name: &str, port_name: &str, number: &str, init: &str| {
        with(
            base,
            &[
                ("__meta_kubernetes_pod_container_name", name),
                ("__meta_kubernetes_pod_container_image", &format!("{name}:latest")),
                ("__meta_kubernetes_pod_container_port_name", port_name),
                ("__meta_kubernetes_pod_container_port_number", number),
                ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                ("__meta_kubernetes_pod_container_init", init),
            ],
        )
    };
    let expected = vec![
        container(&endpoint("4.3.2.1:9000", "testport"), "c1", "mainport", "9000", "false"),
        container(&endpoint("4.3.2.1:9111", "initport"), "ic2", "initport", "9111", "true"),
        container(
            &with(&pod, &[("__address__", "4.3.2.1:1111")]),
            "ic1",
            "initport",
            "1111",
            "true",
        ),
    ];
    assert_eq!(got.targets, expected);
}

#[test]
fn when_containers_share_a_port_the_last_one_names_the_target() {
    let pod: Pod = object(json!({
        "metadata": {"name": "testpod", "namespace": "default"},
        "spec": {"containers": [
            {"name": "first", "ports": [{"name": "a", "containerPort": 8080, "protocol": "TCP"}]},
            {"name": "second", "ports": [{"name": "b", "containerPort": 8080, "protocol": "UDP"}]},
        ]},
        "status": {"podIP": "10.0.0.1"},
    }));
    let store = Store {
        pods: vec![pod],
        ..Store::default()
    };
    let got = group(
        &pod_backed("default", "10.0.0.1", 8080, "web"),
        &store,
        &JoinOptions::default(),
    );
    // Both container ports use 8080, so no extra target.
    assert_eq!(got.targets.len(), 1);
    let target = &got.targets[0];
    assert_eq!(target.get("__meta_kubernetes_pod_container_name"), "second");
    assert_eq!(target.get("__meta_kubernetes_pod_container_port_name"), "b");
    // endpoints.go takes the protocol from the endpoint port.
    assert_eq!(target.get("__meta_kubernetes_pod_container_port_protocol"), "TCP");
}

#[test]
fn missing_pods_and_pods_without_ip() {
    // The referenced pod is not in the store: a plain endpoint target.
    let got = group(
        &pod_backed("default", "4.3.2.1", 9000, "testport"),
        &Store::default(),
        &JoinOptions::default(),
    );
    assert_eq!(got.targets.len(), 1);
    assert!(!got.targets[0].contains("__meta_kubernetes_pod_name"));
    // A pod without IP still labels its endpoint target but gives no extra port targets.
    let mut pod = two_container_pod("default");
    pod.status.as_mut().unwrap().pod_ip = None;
    let store = Store {
        pods: vec![pod],
        ..Store::default()
    };
    let got = group(
        &pod_backed("default", "4.3.2.1", 9000, "testport"),
        &store,
        &JoinOptions::default(),
    );
    assert_eq!(got.targets.len(), 1);
    assert_eq!(got.targets[0].get("__meta_kubernetes_pod_name"), "testpod");
    assert_eq!(got.targets[0].get("__meta_kubernetes_pod_container_name"), "c1");
}

#[test]
fn a_pod_behind_several_addresses_counts_once() {
    let store = Store {
        pods: vec![two_container_pod("default")],
        ..Store::default()
    };
    let endpoints: Endpoints = object(json!({
        "metadata": {"name": "e", "namespace": "default"},
        "subsets": [{
            "addresses": [{"ip": "1.2.3.4", "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}],
            "notReadyAddresses": [{"ip": "1.2.3.4", "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}],
            "ports": [{"port": 9000}],
        }],
    }));
    let got = group(&endpoints, &store, &JoinOptions::default());
    let addresses: Vec<&str> = got.targets.iter().map(|t| t.get("__address__")).collect();
    assert_eq!(addresses, ["1.2.3.4:9000", "1.2.3.4:9000", "1.2.3.4:9001"]);
}

#[test]
fn ipv6_addresses_are_bracketed() {
    let endpoints: Endpoints = object(json!({
        "metadata": {"name": "e", "namespace": "n"},
        "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}],
    }));
    let got = group(&endpoints, &Store::default(), &JoinOptions::default());
    assert_eq!(got.targets[0].get("__address__"), "[fd00::1]:80");
}

#[test]
fn broken_endpoints_do_not_panic() {
    let none = JoinOptions::default();
    let store = Store::default();
    assert_eq!(
        group(&object(json!({})), &store, &none),
        TargetGroup {
            source: "endpoints//".into(),
            ..TargetGroup::default()
        }
    );
    for subsets in [
        Value::Null,
        json!([]),
        json!([{}]),
        json!([{"addresses": [{"ip": "1.2.3.4"}]}]),
        json!([{"ports": [{"port": 1}]}]),
    ] {
        let got = group(
            &object(json!({"metadata": {"name": "e", "namespace": "n"}, "subsets": subsets})),
            &store,
            &none,
        );
        assert!(got.targets.is_empty());
        assert_eq!(got.labels.get("__meta_kubernetes_endpoints_name"), "e");
    }
    // Reference without name or namespace, address without IP: kept literally, no join.
    let odd = group(
        &object(json!({"metadata": {"name": "e"}, "subsets": [{
            "addresses": [{"ip": "", "targetRef": {"kind": "Pod"}}], "ports": [{"port": 1}]}]})),
        &store,
        &none,
    );
    assert_eq!(
        odd.targets,
        [labels(&[
            ("__address__", ":1"),
            ("__meta_kubernetes_endpoint_ready", "true"),
            ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
        ])]
    );
}

#[test]
fn source_names_namespace_and_endpoints() {
    assert_eq!(source("ns", "web"), "endpoints/ns/web");
}
