//! Vectors from Prometheus `discovery/kubernetes/node_test.go` and `docs/configuration/configuration.md`
//! (role node), plus broken and hostile nodes.

use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::{group, source};
use crate::discovery::TargetGroup;
use crate::discovery::kubernetes::meta::test_objects::{labels, node, object};

#[test]
fn node_with_labels_and_annotations() {
    let got = group(&node(
        "test",
        "1.2.3.4",
        json!({"testlabel": "testvalue"}),
        json!({"testannotation": "testannotationvalue"}),
    ));
    let expected = TargetGroup {
        source: "node/test".into(),
        targets: vec![labels(&[
            ("__address__", "1.2.3.4:10250"),
            ("instance", "test"),
            ("__meta_kubernetes_node_address_InternalIP", "1.2.3.4"),
        ])],
        labels: labels(&[
            ("__meta_kubernetes_node_name", "test"),
            ("__meta_kubernetes_node_label_testlabel", "testvalue"),
            ("__meta_kubernetes_node_labelpresent_testlabel", "true"),
            (
                "__meta_kubernetes_node_annotation_testannotation",
                "testannotationvalue",
            ),
            ("__meta_kubernetes_node_annotationpresent_testannotation", "true"),
        ]),
    };
    assert_eq!(got, expected);
}

#[test]
fn plain_node_and_label_names_keep_their_case() {
    let got = group(&node("test0", "1.2.3.4", json!({"Unschedulable": "true"}), json!({})));
    assert_eq!(
        got.labels,
        labels(&[
            ("__meta_kubernetes_node_label_Unschedulable", "true"),
            ("__meta_kubernetes_node_labelpresent_Unschedulable", "true"),
            ("__meta_kubernetes_node_name", "test0"),
        ])
    );
}

fn with_addresses(addresses: Value) -> Node {
    object(json!({
        "metadata": {"name": "n"},
        "spec": {"providerID": "aws:///eu-west-1a/i-0abc"},
        "status": {"addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}},
    }))
}

#[test]
fn address_priority_internal_ip_first_then_dns_external_legacy_hostname() {
    let all = [
        ("Hostname", "n.local"),
        ("LegacyHostIP", "10.9.9.9"),
        ("ExternalDNS", "n.example.com"),
        ("ExternalIP", "203.0.113.5"),
        ("InternalDNS", "n.internal"),
        ("InternalIP", "10.0.0.5"),
    ];
    // Removing the best address type each time walks down the priority list.
    let expected = [
        "10.0.0.5:10250",
        "n.internal:10250",
        "203.0.113.5:10250",
        "n.example.com:10250",
        "10.9.9.9:10250",
        "n.local:10250",
    ];
    for (drop, want) in expected.iter().enumerate() {
        let addresses: Vec<Value> = all[..all.len() - drop]
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        let got = group(&with_addresses(Value::Array(addresses)));
        assert_eq!(got.targets[0].get("__address__"), *want);
    }
}

#[test]
fn address_labels_hold_the_first_address_of_each_type() {
    let got = group(&with_addresses(json!([
        {"type": "InternalIP", "address": "10.0.0.5"},
        {"type": "InternalIP", "address": "10.0.0.6"},
        {"type": "Hostname", "address": "pi-1"},
        {"type": "Weird-Type.x", "address": "w"},
    ])));
    assert_eq!(
        got.targets,
        [labels(&[
            ("__address__", "10.0.0.5:10250"),
            ("instance", "n"),
            ("__meta_kubernetes_node_address_InternalIP", "10.0.0.5"),
            ("__meta_kubernetes_node_address_Hostname", "pi-1"),
            ("__meta_kubernetes_node_address_Weird_Type_x", "w"),
        ])]
    );
    assert_eq!(
        got.labels.get("__meta_kubernetes_node_provider_id"),
        "aws:///eu-west-1a/i-0abc"
    );
}

#[test]
fn ipv6_node_address_is_bracketed() {
    let got = group(&with_addresses(json!([{"type": "InternalIP", "address": "fd00::5"}])));
    assert_eq!(got.targets[0].get("__address__"), "[fd00::5]:10250");
    assert_eq!(
        got.targets[0].get("__meta_kubernetes_node_address_InternalIP"),
        "fd00::5"
    );
}

#[test]
fn node_without_address_keeps_labels_but_has_no_target() {
    for addresses in [
        json!([]),
        Value::Null,
        json!([{"type": "Unknown", "address": "1.2.3.4"}]),
    ] {
        let got = group(&with_addresses(addresses));
        assert!(got.targets.is_empty());
        assert_eq!(got.labels.get("__meta_kubernetes_node_name"), "n");
    }
}

#[test]
fn broken_nodes_do_not_panic() {
    assert_eq!(
        group(&object(json!({}))),
        TargetGroup {
            source: "node/".into(),
            ..TargetGroup::default()
        }
    );
    // No kubelet endpoint: port 0, as Prometheus (the zero value).
    let got = group(&object(
        json!({"metadata": {"name": "n"}, "status": {"addresses": [{"type": "InternalIP", "address": "1.2.3.4"}]}}),
    ));
    assert_eq!(got.targets[0].get("__address__"), "1.2.3.4:0");
}

#[test]
fn source_is_the_node_name() {
    assert_eq!(source("pi-1"), "node/pi-1");
}
