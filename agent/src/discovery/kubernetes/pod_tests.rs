//! Vectors from Prometheus `discovery/kubernetes/pod_test.go` and `docs/configuration/configuration.md`
//! (role pod), plus broken and hostile pods.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use trawl_model::labels::Labels;

use super::{group, source};
use crate::discovery::TargetGroup;
use crate::discovery::kubernetes::meta::test_objects::{labels, node, object, with};

/// Prometheus `makeMultiPortPods`: two ports on one container, a port-less container, a
/// controller, a label and an annotation with `/` in their names.
fn multi_port_pod() -> Value {
    json!({
        "metadata": {
            "name": "testpod", "namespace": "default", "uid": "abc123",
            "labels": {"test/label": "testvalue"},
            "annotations": {"test/annotation": "testannotationvalue"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "testcontrollerkind",
                                 "name": "testcontrollername", "uid": "u1", "controller": true}],
        },
        "spec": {
            "nodeName": "testnode",
            "containers": [
                {"name": "testcontainer0", "image": "testcontainer0:latest", "ports": [
                    {"name": "testport0", "protocol": "TCP", "containerPort": 9000},
                    {"name": "testport1", "protocol": "UDP", "containerPort": 9001},
                ]},
                {"name": "testcontainer1", "image": "testcontainer1:latest"},
            ],
        },
        "status": {
            "podIP": "1.2.3.4", "hostIP": "2.3.4.5", "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "testcontainer0", "containerID": "docker://a1b2c3d4e5f6",
                 "image": "", "imageID": "", "ready": true, "restartCount": 0},
                {"name": "testcontainer1", "containerID": "containerd://6f5e4d3c2b1a",
                 "image": "", "imageID": "", "ready": true, "restartCount": 0},
            ],
        },
    })
}

/// Prometheus `makePods`: one container with one port.
fn simple_pod(namespace: &str) -> Value {
    json!({
        "metadata": {"name": "testpod", "namespace": namespace, "uid": "abc123"},
        "spec": {
            "nodeName": "testnode",
            "containers": [{"name": "testcontainer", "image": "testcontainer:latest",
                            "ports": [{"name": "testport", "protocol": "TCP", "containerPort": 9000}]}],
        },
        "status": {
            "podIP": "1.2.3.4", "hostIP": "2.3.4.5", "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "testcontainer", "containerID": "docker://a1b2c3d4e5f6"}],
        },
    })
}

/// Prometheus `expectedPodTargetGroups`.
fn simple_pod_group(namespace: &str) -> TargetGroup {
    TargetGroup {
        source: format!("pod/{namespace}/testpod"),
        targets: vec![labels(&[
            ("__address__", "1.2.3.4:9000"),
            ("__meta_kubernetes_pod_container_name", "testcontainer"),
            ("__meta_kubernetes_pod_container_image", "testcontainer:latest"),
            ("__meta_kubernetes_pod_container_port_name", "testport"),
            ("__meta_kubernetes_pod_container_port_number", "9000"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
            ("__meta_kubernetes_pod_container_id", "docker://a1b2c3d4e5f6"),
        ])],
        labels: labels(&[
            ("__meta_kubernetes_pod_name", "testpod"),
            ("__meta_kubernetes_namespace", namespace),
            ("__meta_kubernetes_pod_node_name", "testnode"),
            ("__meta_kubernetes_pod_ip", "1.2.3.4"),
            ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_uid", "abc123"),
        ]),
    }
}

fn build(value: Value) -> TargetGroup {
    group(&object::<Pod>(value), None)
}

#[test]
fn multi_port_pod_gives_one_target_per_port_and_one_per_portless_container() {
    let expected = TargetGroup {
        source: "pod/default/testpod".into(),
        targets: vec![
            labels(&[
                ("__address__", "1.2.3.4:9000"),
                ("__meta_kubernetes_pod_container_name", "testcontainer0"),
                ("__meta_kubernetes_pod_container_image", "testcontainer0:latest"),
                ("__meta_kubernetes_pod_container_port_name", "testport0"),
                ("__meta_kubernetes_pod_container_port_number", "9000"),
                ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                ("__meta_kubernetes_pod_container_init", "false"),
                ("__meta_kubernetes_pod_container_id", "docker://a1b2c3d4e5f6"),
            ]),
            labels(&[
                ("__address__", "1.2.3.4:9001"),
                ("__meta_kubernetes_pod_container_name", "testcontainer0"),
                ("__meta_kubernetes_pod_container_image", "testcontainer0:latest"),
                ("__meta_kubernetes_pod_container_port_name", "testport1"),
                ("__meta_kubernetes_pod_container_port_number", "9001"),
                ("__meta_kubernetes_pod_container_port_protocol", "UDP"),
                ("__meta_kubernetes_pod_container_init", "false"),
                ("__meta_kubernetes_pod_container_id", "docker://a1b2c3d4e5f6"),
            ]),
            labels(&[
                ("__address__", "1.2.3.4"),
                ("__meta_kubernetes_pod_container_name", "testcontainer1"),
                ("__meta_kubernetes_pod_container_image", "testcontainer1:latest"),
                ("__meta_kubernetes_pod_container_init", "false"),
                ("__meta_kubernetes_pod_container_id", "containerd://6f5e4d3c2b1a"),
            ]),
        ],
        labels: labels(&[
            ("__meta_kubernetes_pod_name", "testpod"),
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_pod_label_test_label", "testvalue"),
            ("__meta_kubernetes_pod_labelpresent_test_label", "true"),
            (
                "__meta_kubernetes_pod_annotation_test_annotation",
                "testannotationvalue",
            ),
            ("__meta_kubernetes_pod_annotationpresent_test_annotation", "true"),
            ("__meta_kubernetes_pod_node_name", "testnode"),
            ("__meta_kubernetes_pod_ip", "1.2.3.4"),
            ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_uid", "abc123"),
            ("__meta_kubernetes_pod_controller_kind", "testcontrollerkind"),
            ("__meta_kubernetes_pod_controller_name", "testcontrollername"),
        ]),
    };
    assert_eq!(build(multi_port_pod()), expected);
}

#[test]
fn simple_pods_in_any_namespace() {
    for namespace in ["default", "ns1", "own-ns"] {
        assert_eq!(build(simple_pod(namespace)), simple_pod_group(namespace));
    }
}

#[test]
fn init_containers_are_targets_marked_init_with_their_own_status() {
    let mut pod = simple_pod("default");
    pod["spec"]["initContainers"] = json!([{"name": "initcontainer", "image": "initcontainer:latest"}]);
    pod["status"]["phase"] = json!("Pending");
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    pod["status"]["initContainerStatuses"] =
        json!([{"name": "initcontainer", "containerID": "containerd://6f5e4d3c2b1a"}]);

    let mut expected = simple_pod_group("default");
    expected.targets.push(labels(&[
        ("__address__", "1.2.3.4"),
        ("__meta_kubernetes_pod_container_name", "initcontainer"),
        ("__meta_kubernetes_pod_container_image", "initcontainer:latest"),
        ("__meta_kubernetes_pod_container_init", "true"),
        ("__meta_kubernetes_pod_container_id", "containerd://6f5e4d3c2b1a"),
    ]));
    expected.labels = with(
        &expected.labels,
        &[
            ("__meta_kubernetes_pod_phase", "Pending"),
            ("__meta_kubernetes_pod_ready", "false"),
        ],
    );
    assert_eq!(build(pod), expected);
}

#[test]
fn pod_without_ip_gives_an_empty_group_so_old_targets_go_stale() {
    for ip in [json!(""), Value::Null] {
        let mut pod = simple_pod("default");
        pod["status"]["podIP"] = ip;
        assert_eq!(
            build(pod),
            TargetGroup {
                source: "pod/default/testpod".into(),
                ..TargetGroup::default()
            }
        );
    }
}

#[test]
fn attached_node_labels_go_on_the_group() {
    let node = node("testnode", "", json!({"l1": "v1"}), Value::Null);
    let pod: Pod = object(simple_pod("default"));
    let mut expected = simple_pod_group("default");
    expected.labels = with(
        &expected.labels,
        &[
            ("__meta_kubernetes_node_name", "testnode"),
            ("__meta_kubernetes_node_label_l1", "v1"),
            ("__meta_kubernetes_node_labelpresent_l1", "true"),
        ],
    );
    assert_eq!(group(&pod, Some(&node)), expected);
}

#[test]
fn ipv6_pod_addresses_are_bracketed_and_families_labelled() {
    let mut pod = multi_port_pod();
    pod["status"]["podIP"] = json!("2001:DB8:0:0:0:0:0:1");
    pod["status"]["podIPs"] = json!([
        {"ip": "2001:DB8:0:0:0:0:0:1"}, {"ip": ""}, {"ip": "not-an-ip"}, {"ip": "10.0.0.7"}, {"ip": "fd00::9"},
    ]);
    let got = build(pod);
    let addresses: Vec<&str> = got.targets.iter().map(|t| t.get("__address__")).collect();
    // With a port: Go's JoinHostPort (brackets, no rewrite). Without: canonical form in brackets.
    assert_eq!(
        addresses,
        [
            "[2001:DB8:0:0:0:0:0:1]:9000",
            "[2001:DB8:0:0:0:0:0:1]:9001",
            "[2001:db8::1]"
        ]
    );
    assert_eq!(got.labels.get("__meta_kubernetes_pod_ipv6"), "2001:DB8:0:0:0:0:0:1");
    assert_eq!(got.labels.get("__meta_kubernetes_pod_ipv4"), "10.0.0.7");
    assert_eq!(got.labels.get("__meta_kubernetes_pod_ip"), "2001:DB8:0:0:0:0:0:1");
}

#[test]
fn ipv4_mapped_pod_ip_is_not_bracketed_and_counts_as_ipv4() {
    let mut pod = multi_port_pod();
    pod["status"]["podIP"] = json!("::ffff:10.1.2.3");
    pod["status"]["podIPs"] = json!([{"ip": "::ffff:10.1.2.3"}]);
    let got = build(pod);
    assert_eq!(got.targets[2].get("__address__"), "::ffff:10.1.2.3");
    assert_eq!(got.labels.get("__meta_kubernetes_pod_ipv4"), "::ffff:10.1.2.3");
    assert!(!got.labels.contains("__meta_kubernetes_pod_ipv6"));
}

#[test]
fn controller_is_the_owner_with_controller_true() {
    let mut pod = simple_pod("default");
    pod["metadata"]["ownerReferences"] = json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-me", "uid": "1"},
        {"apiVersion": "v1", "kind": "Node", "name": "nor-me", "uid": "2", "controller": false},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": "3", "controller": true},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "second", "uid": "4", "controller": true},
    ]);
    let got = build(pod);
    assert_eq!(got.labels.get("__meta_kubernetes_pod_controller_kind"), "ReplicaSet");
    assert_eq!(got.labels.get("__meta_kubernetes_pod_controller_name"), "web-5d9c");

    let mut orphan = simple_pod("default");
    orphan["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "1"}]);
    let got = build(orphan);
    assert!(!got.labels.contains("__meta_kubernetes_pod_controller_kind"));
    assert!(!got.labels.contains("__meta_kubernetes_pod_controller_name"));
}

#[test]
fn readiness_is_the_lowercased_ready_condition_or_unknown() {
    for (conditions, want) in [
        (
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]),
            "true",
        ),
        (json!([{"type": "Ready", "status": "False"}]), "false"),
        (json!([{"type": "Ready", "status": "Unknown"}]), "unknown"),
        (json!([{"type": "ContainersReady", "status": "True"}]), "unknown"),
        (json!([]), "unknown"),
        (Value::Null, "unknown"),
    ] {
        let mut pod = simple_pod("default");
        pod["status"]["conditions"] = conditions;
        assert_eq!(build(pod).labels.get("__meta_kubernetes_pod_ready"), want);
    }
}

#[test]
fn weird_label_and_annotation_names_are_sanitized() {
    let mut pod = simple_pod("default");
    pod["metadata"]["labels"] = json!({
        "app.kubernetes.io/name": "shop", "zoné": "x", "日本": "y", "-": "z", "ok_1": "w",
    });
    pod["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true", "prometheus.io/port": "8080"});
    let got = build(pod).labels;
    for (name, value) in [
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "shop"),
        ("__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name", "true"),
        ("__meta_kubernetes_pod_label_zon_", "x"),
        ("__meta_kubernetes_pod_label___", "y"),
        ("__meta_kubernetes_pod_label__", "z"),
        ("__meta_kubernetes_pod_label_ok_1", "w"),
        ("__meta_kubernetes_pod_annotation_prometheus_io_scrape", "true"),
        ("__meta_kubernetes_pod_annotationpresent_prometheus_io_port", "true"),
        ("__meta_kubernetes_pod_annotation_prometheus_io_port", "8080"),
    ] {
        assert_eq!(got.get(name), value, "{name}");
    }
    assert!(got.iter().all(|l| trawl_model::labels::is_valid_label_name(&l.name)));
}

#[test]
fn broken_pods_do_not_panic() {
    // No metadata name: empty group.
    let nameless = build(json!({"metadata": {"namespace": "ns"}, "status": {"podIP": "1.2.3.4"}}));
    assert_eq!(
        nameless,
        TargetGroup {
            source: "pod/ns/".into(),
            ..TargetGroup::default()
        }
    );
    // Nothing at all.
    assert_eq!(
        build(json!({})),
        TargetGroup {
            source: "pod//".into(),
            ..TargetGroup::default()
        }
    );
    // No spec: labels, no targets.
    let specless = build(json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"podIP": "1.2.3.4"}}));
    assert!(specless.targets.is_empty());
    assert_eq!(specless.labels.get("__meta_kubernetes_pod_ip"), "1.2.3.4");
    // No namespace, empty containers, a port without name or protocol, statuses for other names.
    let odd = build(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "", "ports": [{"containerPort": 0}, {"containerPort": -1}]}],
                 "initContainers": []},
        "status": {"podIP": "1.2.3.4", "containerStatuses": [{"name": "other", "containerID": "x://y"}]},
    }));
    assert_eq!(odd.source, "pod//p");
    assert!(!odd.labels.contains("__meta_kubernetes_namespace"));
    assert_eq!(
        odd.targets,
        [
            labels(&[
                ("__address__", "1.2.3.4:0"),
                ("__meta_kubernetes_pod_container_init", "false"),
                ("__meta_kubernetes_pod_container_port_number", "0"),
            ]),
            labels(&[
                ("__address__", "1.2.3.4:-1"),
                ("__meta_kubernetes_pod_container_init", "false"),
                ("__meta_kubernetes_pod_container_port_number", "-1"),
            ]),
        ]
    );
}

#[test]
fn a_pod_as_a_real_api_server_sends_it() {
    // Trimmed from `kubectl get pod -o json` on MicroK8s (node-exporter DaemonSet pod).
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "node-exporter-x7k2p", "namespace": "monitoring", "uid": "5c1e-44",
            "resourceVersion": "123456", "creationTimestamp": "2025-01-10T08:00:00Z",
            "labels": {"app.kubernetes.io/name": "node-exporter", "controller-revision-hash": "6d8f", "pod-template-generation": "1"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9100"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-exporter",
                                 "uid": "aa", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "nodeName": "pi-1", "hostNetwork": true, "serviceAccountName": "node-exporter",
            "containers": [{
                "name": "node-exporter", "image": "quay.io/prometheus/node-exporter:v1.8.2",
                "args": ["--path.rootfs=/host"],
                "ports": [{"name": "metrics", "containerPort": 9100, "hostPort": 9100, "protocol": "TCP"}],
                "resources": {"limits": {"memory": "50Mi"}, "requests": {"cpu": "10m", "memory": "20Mi"}},
            }],
            "tolerations": [{"operator": "Exists"}],
        },
        "status": {
            "phase": "Running", "hostIP": "192.168.1.21", "podIP": "192.168.1.21",
            "podIPs": [{"ip": "192.168.1.21"}], "startTime": "2025-01-10T08:00:01Z",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2025-01-10T08:00:01Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-10T08:00:05Z"},
            ],
            "containerStatuses": [{
                "name": "node-exporter", "ready": true, "restartCount": 0, "started": true,
                "image": "quay.io/prometheus/node-exporter:v1.8.2", "imageID": "quay.io/prometheus/node-exporter@sha256:4032",
                "containerID": "containerd://0f3b", "state": {"running": {"startedAt": "2025-01-10T08:00:04Z"}},
            }],
        },
    });
    let got = build(pod);
    assert_eq!(got.source, "pod/monitoring/node-exporter-x7k2p");
    assert_eq!(got.targets.len(), 1);
    let target = &got.targets[0];
    assert_eq!(target.get("__address__"), "192.168.1.21:9100");
    assert_eq!(target.get("__meta_kubernetes_pod_container_id"), "containerd://0f3b");
    assert_eq!(target.get("__meta_kubernetes_pod_container_port_name"), "metrics");
    let expected_group_labels: Labels = labels(&[
        ("__meta_kubernetes_namespace", "monitoring"),
        ("__meta_kubernetes_pod_name", "node-exporter-x7k2p"),
        ("__meta_kubernetes_pod_ip", "192.168.1.21"),
        ("__meta_kubernetes_pod_ipv4", "192.168.1.21"),
        ("__meta_kubernetes_pod_host_ip", "192.168.1.21"),
        ("__meta_kubernetes_pod_node_name", "pi-1"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_uid", "5c1e-44"),
        ("__meta_kubernetes_pod_controller_kind", "DaemonSet"),
        ("__meta_kubernetes_pod_controller_name", "node-exporter"),
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "node-exporter"),
        ("__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name", "true"),
        ("__meta_kubernetes_pod_label_controller_revision_hash", "6d8f"),
        ("__meta_kubernetes_pod_labelpresent_controller_revision_hash", "true"),
        ("__meta_kubernetes_pod_label_pod_template_generation", "1"),
        ("__meta_kubernetes_pod_labelpresent_pod_template_generation", "true"),
        ("__meta_kubernetes_pod_annotation_prometheus_io_scrape", "true"),
        ("__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape", "true"),
        ("__meta_kubernetes_pod_annotation_prometheus_io_port", "9100"),
        ("__meta_kubernetes_pod_annotationpresent_prometheus_io_port", "true"),
    ]);
    assert_eq!(got.labels, expected_group_labels);
}

#[test]
fn source_names_namespace_and_pod() {
    assert_eq!(source("kube-system", "coredns-1"), "pod/kube-system/coredns-1");
}
