//! Vectors from Prometheus `discovery/kubernetes/ingress_test.go` and `docs/configuration/configuration.md`
//! (role ingress), plus broken and hostile ingresses.

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

use super::{group, matches_host, source};
use crate::discovery::TargetGroup;
use crate::discovery::kubernetes::meta::test_objects::{labels, object};

/// Prometheus `makeIngress`: three rules, the second with `http` but no paths (no target), the
/// third with one empty path.
fn ingress(namespace: &str, tls_hosts: Option<Value>) -> Ingress {
    let tls = tls_hosts.map(|hosts| json!([{"hosts": hosts, "secretName": "cert"}]));
    object(json!({
        "metadata": {"name": "testingress", "namespace": namespace,
                     "labels": {"test/label": "testvalue"},
                     "annotations": {"test/annotation": "testannotationvalue"}},
        "spec": {
            "ingressClassName": "testclass",
            "tls": tls,
            "rules": [
                {"host": "example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                    {"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                ]}},
                {"host": "nobackend.example.com", "http": {"paths": []}},
                {"host": "test.example.com", "http": {"paths": [
                    {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "s", "port": {"name": "http"}}}},
                ]}},
            ],
        },
    }))
}

/// Prometheus `expectedTargetGroups`.
fn expected(namespace: &str, scheme1: &str, scheme2: &str) -> TargetGroup {
    TargetGroup {
        source: format!("ingress/{namespace}/testingress"),
        targets: vec![
            labels(&[
                ("__meta_kubernetes_ingress_scheme", scheme1),
                ("__meta_kubernetes_ingress_host", "example.com"),
                ("__meta_kubernetes_ingress_path", "/"),
                ("__address__", "example.com"),
            ]),
            labels(&[
                ("__meta_kubernetes_ingress_scheme", scheme1),
                ("__meta_kubernetes_ingress_host", "example.com"),
                ("__meta_kubernetes_ingress_path", "/foo"),
                ("__address__", "example.com"),
            ]),
            labels(&[
                ("__meta_kubernetes_ingress_scheme", scheme2),
                ("__meta_kubernetes_ingress_host", "test.example.com"),
                ("__address__", "test.example.com"),
                ("__meta_kubernetes_ingress_path", "/"),
            ]),
        ],
        labels: labels(&[
            ("__meta_kubernetes_ingress_name", "testingress"),
            ("__meta_kubernetes_namespace", namespace),
            ("__meta_kubernetes_ingress_label_test_label", "testvalue"),
            ("__meta_kubernetes_ingress_labelpresent_test_label", "true"),
            (
                "__meta_kubernetes_ingress_annotation_test_annotation",
                "testannotationvalue",
            ),
            ("__meta_kubernetes_ingress_annotationpresent_test_annotation", "true"),
            ("__meta_kubernetes_ingress_class_name", "testclass"),
        ]),
    }
}

#[test]
fn tls_modes_set_the_scheme_per_rule() {
    for (tls, scheme1, scheme2) in [
        (None, "http", "http"),
        (Some(json!(["example.com", "test.example.com"])), "https", "https"),
        (Some(json!(["example.com"])), "https", "http"),
        (Some(json!(["*.example.com"])), "http", "https"),
    ] {
        assert_eq!(
            group(&ingress("default", tls.clone())),
            expected("default", scheme1, scheme2),
            "tls {tls:?}"
        );
    }
}

#[test]
fn namespaces_are_kept_apart() {
    for namespace in ["ns1", "ns2"] {
        assert_eq!(group(&ingress(namespace, None)), expected(namespace, "http", "http"));
    }
}

#[test]
fn rule_without_http_or_host_gives_one_root_target() {
    let got = group(&object(json!({
        "metadata": {"name": "i", "namespace": "n"},
        "spec": {"rules": [{"host": "a.example"}, {}], "tls": [{"hosts": ["a.example"]}, {}]},
    })));
    assert_eq!(
        got.targets,
        [
            labels(&[
                ("__address__", "a.example"),
                ("__meta_kubernetes_ingress_host", "a.example"),
                ("__meta_kubernetes_ingress_path", "/"),
                ("__meta_kubernetes_ingress_scheme", "https"),
            ]),
            labels(&[
                ("__meta_kubernetes_ingress_path", "/"),
                ("__meta_kubernetes_ingress_scheme", "http")
            ]),
        ]
    );
    assert!(!got.labels.contains("__meta_kubernetes_ingress_class_name"));
}

#[test]
fn wildcard_matches_exactly_one_label() {
    assert!(matches_host("*.example.com", "a.example.com"));
    assert!(matches_host("a.example.com", "a.example.com"));
    assert!(!matches_host("*.example.com", "example.com"));
    assert!(!matches_host("*.example.com", "a.b.example.com"));
    assert!(!matches_host("*.example.com", "a.example.org"));
    assert!(!matches_host("a.*.com", "a.example.com"));
    assert!(matches_host("*", "localhost"));
    assert!(!matches_host("", "x"));
}

#[test]
fn broken_ingresses_do_not_panic() {
    assert_eq!(
        group(&object(json!({}))),
        TargetGroup {
            source: "ingress//".into(),
            ..TargetGroup::default()
        }
    );
    let specless = group(&object(json!({"metadata": {"name": "i", "namespace": "n"}})));
    assert!(specless.targets.is_empty());
    assert_eq!(specless.labels.get("__meta_kubernetes_ingress_name"), "i");
}

#[test]
fn source_names_namespace_and_ingress() {
    assert_eq!(source("ns", "web"), "ingress/ns/web");
}
