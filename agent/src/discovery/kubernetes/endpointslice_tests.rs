//! Vectors from Prometheus `discovery/kubernetes/endpointslice_test.go` and
//! `docs/configuration/configuration.md` (role endpointslice), node-local filtering (ours), and
//! broken and hostile slices.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use trawl_model::labels::Labels;

use super::{group, source};
use crate::discovery::TargetGroup;
use crate::discovery::kubernetes::meta::JoinOptions;
use crate::discovery::kubernetes::meta::test_objects::{
    Store, labels, node, object, two_container_pod, two_container_pod_labels, with,
};

/// Prometheus `makeEndpointSliceV1`: four endpoints (one with every field, one terminating, one
/// backed by a Node) on one port with an app protocol.
fn slice_json(namespace: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "testendpoints", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": "testendpoints"},
                     "annotations": {"test.annotation": "test"}},
        "addressType": "IPv4",
        "ports": [{"name": "testport", "port": 9000, "protocol": "TCP", "appProtocol": "http"}],
        "endpoints": [
            {"addresses": ["1.2.3.4"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "hostname": "testendpoint1", "targetRef": {}, "nodeName": "foobar",
             "deprecatedTopology": {"topology": "value"}, "zone": "us-east-1a"},
            {"addresses": ["2.3.4.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "zone": "us-east-1b"},
            {"addresses": ["3.4.5.6"], "conditions": {"ready": false, "serving": true, "terminating": true},
             "zone": "us-east-1c"},
            {"addresses": ["4.5.6.7"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "targetRef": {"kind": "Node", "name": "barbaz"}, "zone": "us-east-1a"},
        ],
    })
}

fn endpoint(address: &str, ready: &str, terminating: &str, zone: &str) -> Labels {
    labels(&[
        ("__address__", address),
        ("__meta_kubernetes_endpointslice_endpoint_conditions_ready", ready),
        ("__meta_kubernetes_endpointslice_endpoint_conditions_serving", "true"),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
            terminating,
        ),
        ("__meta_kubernetes_endpointslice_endpoint_zone", zone),
        ("__meta_kubernetes_endpointslice_port", "9000"),
        ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
        ("__meta_kubernetes_endpointslice_port_name", "testport"),
        ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
    ])
}

/// The targets Prometheus expects for [`slice_json`] (empty target kind/name are absent here,
/// as an empty label value is no label).
fn slice_targets() -> Vec<Labels> {
    vec![
        with(
            &endpoint("1.2.3.4:9000", "true", "false", "us-east-1a"),
            &[
                ("__meta_kubernetes_endpointslice_endpoint_hostname", "testendpoint1"),
                ("__meta_kubernetes_endpointslice_endpoint_node_name", "foobar"),
                (
                    "__meta_kubernetes_endpointslice_endpoint_topology_present_topology",
                    "true",
                ),
                ("__meta_kubernetes_endpointslice_endpoint_topology_topology", "value"),
            ],
        ),
        endpoint("2.3.4.5:9000", "true", "false", "us-east-1b"),
        endpoint("3.4.5.6:9000", "false", "true", "us-east-1c"),
        with(
            &endpoint("4.5.6.7:9000", "true", "false", "us-east-1a"),
            &[
                ("__meta_kubernetes_endpointslice_address_target_kind", "Node"),
                ("__meta_kubernetes_endpointslice_address_target_name", "barbaz"),
            ],
        ),
    ]
}

fn slice_labels(namespace: &str) -> Labels {
    labels(&[
        ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
        ("__meta_kubernetes_namespace", namespace),
        ("__meta_kubernetes_endpointslice_name", "testendpoints"),
        (
            "__meta_kubernetes_endpointslice_label_kubernetes_io_service_name",
            "testendpoints",
        ),
        (
            "__meta_kubernetes_endpointslice_labelpresent_kubernetes_io_service_name",
            "true",
        ),
        ("__meta_kubernetes_endpointslice_annotation_test_annotation", "test"),
        (
            "__meta_kubernetes_endpointslice_annotationpresent_test_annotation",
            "true",
        ),
    ])
}

fn build(value: Value, store: &Store, opts: &JoinOptions) -> TargetGroup {
    group(&object::<EndpointSlice>(value), store, opts)
}

#[test]
fn endpoints_with_conditions_zone_topology_and_node_target() {
    let got = build(slice_json("default"), &Store::default(), &JoinOptions::default());
    let expected = TargetGroup {
        source: "endpointslice/default/testendpoints".into(),
        targets: slice_targets(),
        labels: slice_labels("default"),
    };
    assert_eq!(got, expected);
}

#[test]
fn pod_backed_endpoint_gets_pod_labels_and_other_container_ports_become_targets() {
    let slice = json!({
        "metadata": {"name": "testendpoints", "namespace": "default"},
        "addressType": "IPv4",
        "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["4.3.2.1"], "conditions": {"ready": false},
                       "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}],
    });
    let store = Store {
        pods: vec![two_container_pod("default")],
        ..Store::default()
    };
    let got = build(slice, &store, &JoinOptions::default());
    let pod = two_container_pod_labels("1.2.3.4");
    let expected = TargetGroup {
        source: "endpointslice/default/testendpoints".into(),
        targets: vec![
            with(
                &pod,
                &[
                    ("__address__", "4.3.2.1:9000"),
                    ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
                    ("__meta_kubernetes_endpointslice_address_target_name", "testpod"),
                    ("__meta_kubernetes_endpointslice_endpoint_conditions_ready", "false"),
                    ("__meta_kubernetes_endpointslice_port", "9000"),
                    ("__meta_kubernetes_endpointslice_port_name", "testport"),
                    ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
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
            ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
            ("__meta_kubernetes_endpointslice_name", "testendpoints"),
            ("__meta_kubernetes_namespace", "default"),
        ]),
    };
    assert_eq!(got, expected);
}

#[test]
fn service_named_by_label_adds_its_labels_to_the_group() {
    let service = object(json!({"metadata": {"name": "testendpoints", "namespace": "default",
                                             "labels": {"app/name": "test"}}}));
    let store = Store {
        services: vec![service],
        ..Store::default()
    };
    let got = build(slice_json("default"), &store, &JoinOptions::default());
    assert_eq!(
        got.labels,
        with(
            &slice_labels("default"),
            &[
                ("__meta_kubernetes_service_label_app_name", "test"),
                ("__meta_kubernetes_service_labelpresent_app_name", "true"),
                ("__meta_kubernetes_service_name", "testendpoints"),
            ]
        )
    );
    // Without the service-name label there is no join.
    let mut unlabelled = slice_json("default");
    unlabelled["metadata"]["labels"] = Value::Null;
    assert!(
        !build(unlabelled, &store, &JoinOptions::default())
            .labels
            .contains("__meta_kubernetes_service_name")
    );
}

#[test]
fn attached_node_metadata_goes_on_targets_by_node_target_or_node_name() {
    let store = Store {
        nodes: vec![
            node("foobar", "", json!({"az": "us-east1"}), Value::Null),
            node("barbaz", "", json!({"az": "us-west2"}), json!({"note": "n"})),
        ],
        ..Store::default()
    };
    let got = build(
        slice_json("default"),
        &store,
        &JoinOptions {
            attach_node: true,
            node_name: None,
        },
    );
    let mut expected = slice_targets();
    expected[0] = with(
        &expected[0],
        &[
            ("__meta_kubernetes_node_label_az", "us-east1"),
            ("__meta_kubernetes_node_labelpresent_az", "true"),
            ("__meta_kubernetes_node_name", "foobar"),
        ],
    );
    expected[3] = with(
        &expected[3],
        &[
            ("__meta_kubernetes_node_label_az", "us-west2"),
            ("__meta_kubernetes_node_labelpresent_az", "true"),
            ("__meta_kubernetes_node_annotation_note", "n"),
            ("__meta_kubernetes_node_annotationpresent_note", "true"),
            ("__meta_kubernetes_node_name", "barbaz"),
        ],
    );
    assert_eq!(got.targets, expected);
}

#[test]
fn node_local_mode_keeps_only_this_nodes_endpoints() {
    let local = |node: &str| JoinOptions {
        attach_node: true,
        node_name: Some(node.to_owned()),
    };
    let store = Store {
        nodes: vec![node("foobar", "", json!({"az": "a"}), Value::Null)],
        ..Store::default()
    };
    let got = build(slice_json("default"), &store, &local("foobar"));
    assert_eq!(
        got.targets,
        [with(
            &slice_targets()[0],
            &[
                ("__meta_kubernetes_node_label_az", "a"),
                ("__meta_kubernetes_node_labelpresent_az", "true"),
                ("__meta_kubernetes_node_name", "foobar"),
            ]
        )]
    );
    let got = build(slice_json("default"), &Store::default(), &local("barbaz"));
    assert_eq!(got.targets, slice_targets()[3..]);
    let got = build(slice_json("default"), &Store::default(), &local("nowhere"));
    assert!(got.targets.is_empty());
    assert_eq!(got.labels, slice_labels("default"));
}

#[test]
fn port_without_number_gives_a_bare_address() {
    let got = build(
        json!({"metadata": {"name": "s", "namespace": "n"}, "addressType": "IPv6",
               "ports": [{"name": "p"}],
               "endpoints": [{"addresses": ["fd00::1", "fd00::2"]}]}),
        &Store::default(),
        &JoinOptions::default(),
    );
    assert_eq!(
        got.targets,
        [
            labels(&[
                ("__address__", "fd00::1"),
                ("__meta_kubernetes_endpointslice_port_name", "p")
            ]),
            labels(&[
                ("__address__", "fd00::2"),
                ("__meta_kubernetes_endpointslice_port_name", "p")
            ]),
        ]
    );
    assert_eq!(got.labels.get("__meta_kubernetes_endpointslice_address_type"), "IPv6");
}

#[test]
fn targets_follow_endpoint_then_port_then_address_order_and_ipv6_is_bracketed() {
    let got = build(
        json!({"metadata": {"name": "s", "namespace": "n"}, "addressType": "IPv6",
               "ports": [{"port": 1}, {"port": 2}],
               "endpoints": [{"addresses": ["fd00::1", "fd00::2"]}, {"addresses": ["fd00::3"]}]}),
        &Store::default(),
        &JoinOptions::default(),
    );
    let addresses: Vec<&str> = got.targets.iter().map(|t| t.get("__address__")).collect();
    assert_eq!(
        addresses,
        [
            "[fd00::1]:1",
            "[fd00::2]:1",
            "[fd00::1]:2",
            "[fd00::2]:2",
            "[fd00::3]:1",
            "[fd00::3]:2"
        ]
    );
}

#[test]
fn container_protocol_is_used_for_matched_ports() {
    let mut pod = two_container_pod("default");
    let spec = pod.spec.as_mut().unwrap();
    spec.containers[0].ports.as_mut().unwrap()[0].protocol = Some("SCTP".into());
    let store = Store {
        pods: vec![pod],
        ..Store::default()
    };
    let got = build(
        json!({"metadata": {"name": "s", "namespace": "default"}, "addressType": "IPv4",
               "ports": [{"port": 9000, "protocol": "TCP"}],
               "endpoints": [{"addresses": ["1.2.3.4"], "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}]}),
        &store,
        &JoinOptions::default(),
    );
    assert_eq!(
        got.targets[0].get("__meta_kubernetes_pod_container_port_protocol"),
        "SCTP"
    );
    assert_eq!(
        got.targets[0].get("__meta_kubernetes_endpointslice_port_protocol"),
        "TCP"
    );
}

#[test]
fn broken_slices_do_not_panic() {
    let store = Store::default();
    let none = JoinOptions::default();
    assert_eq!(
        build(json!({}), &store, &none),
        TargetGroup {
            source: "endpointslice//".into(),
            ..TargetGroup::default()
        }
    );
    for (ports, endpoints) in [
        (Value::Null, json!([{"addresses": ["1.2.3.4"]}])),
        (json!([]), json!([{"addresses": ["1.2.3.4"]}])),
        (json!([{"port": 80}]), json!([])),
        (json!([{"port": 80}]), json!([{"addresses": []}])),
        (json!([{"port": 80}]), json!([{}])),
    ] {
        let got = build(
            json!({"metadata": {"name": "s", "namespace": "n"}, "ports": ports, "endpoints": endpoints}),
            &store,
            &none,
        );
        assert!(got.targets.is_empty());
        assert_eq!(got.labels.get("__meta_kubernetes_endpointslice_name"), "s");
    }
    // Weird topology keys are sanitized; a pod reference without name joins nothing.
    let got = build(
        json!({"metadata": {"name": "s"}, "ports": [{"port": 80}],
               "endpoints": [{"addresses": ["1.2.3.4"], "targetRef": {"kind": "Pod"},
                              "deprecatedTopology": {"topology.kubernetes.io/zone": "z", "ü": "u"}}]}),
        &store,
        &none,
    );
    assert_eq!(
        got.targets[0].get("__meta_kubernetes_endpointslice_endpoint_topology_topology_kubernetes_io_zone"),
        "z"
    );
    assert_eq!(
        got.targets[0].get("__meta_kubernetes_endpointslice_endpoint_topology_present__"),
        "true"
    );
    assert!(
        got.targets
            .iter()
            .flatten()
            .all(|l| trawl_model::labels::is_valid_label_name(&l.name))
    );
}

#[test]
fn source_names_namespace_and_slice() {
    assert_eq!(source("ns", "web-abc12"), "endpointslice/ns/web-abc12");
}
