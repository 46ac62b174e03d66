//! Vectors from Prometheus `discovery/kubernetes/service_test.go` and `docs/configuration/configuration.md`
//! (role service), plus broken and hostile services.

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use super::{group, service_labels, source};
use crate::discovery::TargetGroup;
use crate::discovery::kubernetes::meta::test_objects::{labels, object};

fn build(value: Value) -> TargetGroup {
    group(&object::<Service>(value))
}

#[test]
fn multi_port_service_gives_one_target_per_port() {
    let got = build(json!({
        "metadata": {"name": "testservice", "namespace": "default",
                     "labels": {"test-label": "testvalue"},
                     "annotations": {"test-annotation": "testannotationvalue"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "ports": [
            {"name": "testport0", "protocol": "TCP", "port": 30900},
            {"name": "testport1", "protocol": "UDP", "port": 30901},
        ]},
    }));
    let expected = TargetGroup {
        source: "svc/default/testservice".into(),
        targets: vec![
            labels(&[
                ("__address__", "testservice.default.svc:30900"),
                ("__meta_kubernetes_service_type", "ClusterIP"),
                ("__meta_kubernetes_service_cluster_ip", "10.0.0.1"),
                ("__meta_kubernetes_service_port_name", "testport0"),
                ("__meta_kubernetes_service_port_number", "30900"),
                ("__meta_kubernetes_service_port_protocol", "TCP"),
            ]),
            labels(&[
                ("__address__", "testservice.default.svc:30901"),
                ("__meta_kubernetes_service_type", "ClusterIP"),
                ("__meta_kubernetes_service_cluster_ip", "10.0.0.1"),
                ("__meta_kubernetes_service_port_name", "testport1"),
                ("__meta_kubernetes_service_port_number", "30901"),
                ("__meta_kubernetes_service_port_protocol", "UDP"),
            ]),
        ],
        labels: labels(&[
            ("__meta_kubernetes_service_name", "testservice"),
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_service_label_test_label", "testvalue"),
            ("__meta_kubernetes_service_labelpresent_test_label", "true"),
            (
                "__meta_kubernetes_service_annotation_test_annotation",
                "testannotationvalue",
            ),
            ("__meta_kubernetes_service_annotationpresent_test_annotation", "true"),
        ]),
    };
    assert_eq!(got, expected);
}

#[test]
fn external_name_service_has_external_name_and_no_cluster_ip() {
    let got = build(json!({
        "metadata": {"name": "testservice-external", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "FooExternalName", "clusterIP": "ignored",
                 "ports": [{"name": "testport", "protocol": "TCP", "port": 31900}]},
    }));
    assert_eq!(
        got.targets,
        [labels(&[
            ("__address__", "testservice-external.default.svc:31900"),
            ("__meta_kubernetes_service_type", "ExternalName"),
            ("__meta_kubernetes_service_external_name", "FooExternalName"),
            ("__meta_kubernetes_service_port_name", "testport"),
            ("__meta_kubernetes_service_port_number", "31900"),
            ("__meta_kubernetes_service_port_protocol", "TCP"),
        ])]
    );
}

#[test]
fn load_balancer_service_has_its_ip() {
    let got = build(json!({
        "metadata": {"name": "lb", "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.2", "loadBalancerIP": "127.0.0.1",
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80}]},
    }));
    let target = &got.targets[0];
    assert_eq!(target.get("__meta_kubernetes_service_loadbalancer_ip"), "127.0.0.1");
    assert_eq!(target.get("__meta_kubernetes_service_cluster_ip"), "10.0.0.2");
    assert_eq!(target.get("__meta_kubernetes_service_type"), "LoadBalancer");
    // Only type LoadBalancer carries the label.
    let node_port = build(json!({
        "metadata": {"name": "np", "namespace": "ns"},
        "spec": {"type": "NodePort", "loadBalancerIP": "127.0.0.1", "ports": [{"port": 80}]},
    }));
    assert!(!node_port.targets[0].contains("__meta_kubernetes_service_loadbalancer_ip"));
}

#[test]
fn headless_and_unnamed_ports() {
    let got = build(json!({
        "metadata": {"name": "db", "namespace": "ns"},
        "spec": {"clusterIP": "None", "ports": [{"port": 5432}]},
    }));
    assert_eq!(
        got.targets,
        [labels(&[
            ("__address__", "db.ns.svc:5432"),
            ("__meta_kubernetes_service_cluster_ip", "None"),
            ("__meta_kubernetes_service_port_number", "5432"),
        ])]
    );
}

#[test]
fn service_labels_are_the_group_labels() {
    let svc: Service = object(json!({"metadata": {"name": "s", "namespace": "n", "labels": {"app/name": "x"}}}));
    assert_eq!(
        service_labels(&svc),
        labels(&[
            ("__meta_kubernetes_namespace", "n"),
            ("__meta_kubernetes_service_name", "s"),
            ("__meta_kubernetes_service_label_app_name", "x"),
            ("__meta_kubernetes_service_labelpresent_app_name", "true"),
        ])
    );
    assert_eq!(group(&svc).labels, service_labels(&svc));
}

#[test]
fn broken_services_do_not_panic() {
    assert_eq!(
        build(json!({})),
        TargetGroup {
            source: "svc//".into(),
            ..TargetGroup::default()
        }
    );
    let specless = build(json!({"metadata": {"name": "s", "namespace": "n"}}));
    assert!(specless.targets.is_empty());
    assert_eq!(specless.labels.get("__meta_kubernetes_service_name"), "s");
    let portless = build(json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": []}}));
    assert!(portless.targets.is_empty());
}

#[test]
fn source_names_namespace_and_service() {
    assert_eq!(source("ns", "web"), "svc/ns/web");
}
