use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::discovery::kubernetes::metrics::Metrics;
use crate::discovery::kubernetes::plan::WatchSpec;

fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn pod(ns: &str, name: &str, ip: &str, node: &str) -> Object {
    Object::Pod(Box::new(object::<Pod>(json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": ip, "hostIP": "10.0.0.1"},
    }))))
}

fn node(name: &str, zone: &str) -> Object {
    Object::Node(Box::new(object::<Node>(json!({
        "metadata": {"name": name, "labels": {"zone": zone}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}},
    }))))
}

fn service(ns: &str, name: &str, team: &str) -> Object {
    Object::Service(Box::new(object::<Service>(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"team": team}},
        "spec": {"ports": [{"name": "http", "port": 80}], "clusterIP": "10.1.0.1"},
    }))))
}

fn endpoints(ns: &str, name: &str, pods: &[(&str, &str, &str)]) -> Object {
    let addresses: Vec<Value> = pods
        .iter()
        .map(|(pod, ip, node)| {
            json!({"ip": ip, "nodeName": node, "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}})
        })
        .collect();
    Object::Endpoints(Box::new(object::<Endpoints>(json!({
        "metadata": {"name": name, "namespace": ns},
        "subsets": [{"addresses": addresses, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
    }))))
}

fn slice(ns: &str, name: &str, svc: &str, pods: &[(&str, &str, &str)]) -> Object {
    let eps: Vec<Value> = pods
        .iter()
        .map(|(pod, ip, node)| {
            json!({"addresses": [ip], "nodeName": node, "conditions": {"ready": true},
                   "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}})
        })
        .collect();
    Object::EndpointSlice(Box::new(object::<EndpointSlice>(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }))))
}

fn key(ns: &str, name: &str) -> ObjKey {
    ObjKey {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn spec(resource: Role, namespace: Option<&str>) -> WatchSpec {
    WatchSpec {
        resource,
        namespace: namespace.map(str::to_owned),
        label: None,
        field: None,
    }
}

fn discoverer(role: Role, join: JoinOptions, watches: &[WatchSpec]) -> (Discoverer, Metrics) {
    let metrics = Metrics::unregistered();
    (Discoverer::new(role, join, watches, metrics.clone()), metrics)
}

/// Pending groups as (source, addresses), sorted by source.
fn changes(d: &mut Discoverer) -> Vec<(String, Vec<String>)> {
    d.out
        .take_pending()
        .into_iter()
        .map(|g| {
            let addresses = g.targets.iter().map(|t| t.get("__address__").to_owned()).collect();
            (g.source, addresses)
        })
        .collect()
}

fn change(source: &str, addresses: &[&str]) -> (String, Vec<String>) {
    (source.to_owned(), addresses.iter().map(|a| (*a).to_owned()).collect())
}

fn group(d: &Discoverer, source: &str) -> Option<TargetGroup> {
    d.out.snapshot().into_iter().find(|g| g.source == source)
}

#[test]
fn list_then_watch_then_relist_sends_only_differences() {
    let (mut d, metrics) = discoverer(Role::Pod, JoinOptions::default(), &[spec(Role::Pod, None)]);
    assert!(!d.synced());
    d.apply(0, Change::Init);
    d.apply(0, Change::Apply(pod("a", "p1", "10.0.0.5", "w1")));
    d.apply(0, Change::Apply(pod("b", "p2", "10.0.0.6", "w1")));
    d.apply(0, Change::InitDone);
    assert!(d.synced());
    assert_eq!(
        changes(&mut d),
        vec![
            change("pod/a/p1", &["10.0.0.5:8080"]),
            change("pod/b/p2", &["10.0.0.6:8080"])
        ]
    );

    // The same object again sends nothing; a changed one sends its new group.
    d.apply(0, Change::Apply(pod("a", "p1", "10.0.0.5", "w1")));
    assert!(changes(&mut d).is_empty());
    d.apply(0, Change::Apply(pod("a", "p1", "10.0.0.7", "w1")));
    assert_eq!(changes(&mut d), vec![change("pod/a/p1", &["10.0.0.7:8080"])]);

    // A relist (after 410 Gone or a restart) that misses p2 deletes it, and only it.
    d.apply(0, Change::Init);
    d.apply(0, Change::Apply(pod("a", "p1", "10.0.0.7", "w1")));
    d.apply(0, Change::Apply(pod("c", "p3", "10.0.0.8", "w1")));
    d.apply(0, Change::InitDone);
    assert_eq!(
        changes(&mut d),
        vec![change("pod/b/p2", &[]), change("pod/c/p3", &["10.0.0.8:8080"])]
    );
    assert_eq!(
        d.out.snapshot().iter().map(|g| g.source.as_str()).collect::<Vec<_>>(),
        ["pod/a/p1", "pod/c/p3"]
    );

    // A watch deletion sends an empty group with the same source; twice sends it once.
    d.apply(0, Change::Delete(key("a", "p1")));
    d.apply(0, Change::Delete(key("a", "p1")));
    assert_eq!(changes(&mut d), vec![change("pod/a/p1", &[])]);

    assert_eq!(metrics.events_of(Role::Pod, EventKind::Add), 3);
    assert_eq!(metrics.events_of(Role::Pod, EventKind::Update), 3);
    assert_eq!(metrics.events_of(Role::Pod, EventKind::Delete), 2);
}

#[test]
fn a_relist_only_deletes_within_its_own_namespace() {
    let watches = [spec(Role::Pod, Some("a")), spec(Role::Pod, Some("b"))];
    let (mut d, _) = discoverer(Role::Pod, JoinOptions::default(), &watches);
    for (w, ns) in [(0, "a"), (1, "b")] {
        d.apply(w, Change::Init);
        d.apply(w, Change::Apply(pod(ns, "p", "10.0.0.1", "w1")));
        assert!(!d.synced() || w == 1);
        d.apply(w, Change::InitDone);
    }
    assert!(d.synced());
    d.out.take_pending();
    d.apply(0, Change::Init);
    d.apply(0, Change::InitDone);
    assert_eq!(changes(&mut d), vec![change("pod/a/p", &[])]);
    assert!(group(&d, "pod/b/p").is_some());
}

#[test]
fn a_malformed_object_keeps_its_last_group_through_a_relist() {
    let (mut d, _) = discoverer(Role::Pod, JoinOptions::default(), &[spec(Role::Pod, None)]);
    d.apply(0, Change::Init);
    d.apply(0, Change::Apply(pod("a", "p1", "10.0.0.5", "w1")));
    d.apply(0, Change::InitDone);
    d.out.take_pending();
    d.apply(0, Change::Init);
    d.apply(0, Change::Keep(key("a", "p1")));
    d.apply(0, Change::InitDone);
    assert!(changes(&mut d).is_empty());
    assert!(group(&d, "pod/a/p1").is_some());
}

#[test]
fn a_pod_losing_its_ip_goes_stale_and_unknown_watches_are_ignored() {
    let (mut d, _) = discoverer(Role::Pod, JoinOptions::default(), &[spec(Role::Pod, None)]);
    d.apply(0, Change::Apply(pod("a", "p1", "10.0.0.5", "w1")));
    d.out.take_pending();
    d.apply(0, Change::Apply(pod("a", "p1", "", "w1")));
    assert_eq!(changes(&mut d), vec![change("pod/a/p1", &[])]);
    d.apply(7, Change::Apply(pod("a", "p9", "10.0.0.9", "w1")));
    d.apply(7, Change::InitDone);
    assert!(changes(&mut d).is_empty());
}

#[test]
fn endpoints_follow_their_service_and_pods() {
    let watches = [
        spec(Role::Endpoints, None),
        spec(Role::Service, None),
        spec(Role::Pod, None),
    ];
    let (mut d, _) = discoverer(Role::Endpoints, JoinOptions::default(), &watches);
    // Endpoints listed before their pods and service: joined as they arrive.
    d.apply(0, Change::Apply(endpoints("a", "web", &[("p1", "10.0.0.5", "w1")])));
    let g = group(&d, "endpoints/a/web").unwrap();
    assert_eq!(g.targets[0].get("__address__"), "10.0.0.5:8080");
    assert_eq!(g.targets[0].get("__meta_kubernetes_pod_name"), "");
    assert_eq!(g.labels.get("__meta_kubernetes_service_label_team"), "");

    d.apply(2, Change::Apply(pod("a", "p1", "10.0.0.5", "w1")));
    let g = group(&d, "endpoints/a/web").unwrap();
    assert_eq!(g.targets[0].get("__meta_kubernetes_pod_name"), "p1");
    assert_eq!(g.targets[0].get("__meta_kubernetes_pod_label_app"), "p1");

    d.apply(1, Change::Apply(service("a", "web", "blue")));
    assert_eq!(
        group(&d, "endpoints/a/web")
            .unwrap()
            .labels
            .get("__meta_kubernetes_service_label_team"),
        "blue"
    );
    // A service of another name or namespace changes nothing.
    d.out.take_pending();
    d.apply(1, Change::Apply(service("b", "web", "red")));
    d.apply(1, Change::Apply(service("a", "api", "red")));
    assert!(changes(&mut d).is_empty());

    d.apply(1, Change::Apply(service("a", "web", "green")));
    assert_eq!(changes(&mut d).len(), 1);
    d.apply(1, Change::Delete(key("a", "web")));
    assert_eq!(
        group(&d, "endpoints/a/web")
            .unwrap()
            .labels
            .get("__meta_kubernetes_service_name"),
        ""
    );
    d.apply(2, Change::Delete(key("a", "p1")));
    let g = group(&d, "endpoints/a/web").unwrap();
    assert_eq!(g.targets[0].get("__meta_kubernetes_pod_name"), "");
    assert_eq!(g.targets[0].get("__address__"), "10.0.0.5:8080");

    d.apply(0, Change::Delete(key("a", "web")));
    assert!(group(&d, "endpoints/a/web").is_none());
    assert_eq!(changes(&mut d).last(), Some(&change("endpoints/a/web", &[])));
}

#[test]
fn endpointslices_join_the_service_named_by_their_label() {
    let watches = [
        spec(Role::EndpointSlice, None),
        spec(Role::Service, None),
        spec(Role::Pod, None),
    ];
    let (mut d, _) = discoverer(Role::EndpointSlice, JoinOptions::default(), &watches);
    d.apply(
        0,
        Change::Apply(slice("a", "web-x1", "web", &[("p1", "10.0.0.5", "w1")])),
    );
    d.apply(
        0,
        Change::Apply(slice("a", "web-x2", "web", &[("p2", "10.0.0.6", "w2")])),
    );
    d.apply(0, Change::Apply(slice("a", "api-x1", "api", &[])));
    d.out.take_pending();
    d.apply(1, Change::Apply(service("a", "web", "blue")));
    let changed: Vec<String> = changes(&mut d).into_iter().map(|(s, _)| s).collect();
    assert_eq!(changed, ["endpointslice/a/web-x1", "endpointslice/a/web-x2"]);
    assert_eq!(
        group(&d, "endpointslice/a/web-x2")
            .unwrap()
            .labels
            .get("__meta_kubernetes_service_label_team"),
        "blue"
    );
    d.apply(2, Change::Apply(pod("a", "p2", "10.0.0.6", "w2")));
    let changed: Vec<String> = changes(&mut d).into_iter().map(|(s, _)| s).collect();
    assert_eq!(changed, ["endpointslice/a/web-x2"]);
}

#[test]
fn node_local_slices_keep_only_this_nodes_endpoints() {
    let watches = [spec(Role::EndpointSlice, None)];
    let join = JoinOptions {
        attach_node: false,
        node_name: Some("w1".into()),
    };
    let (mut d, _) = discoverer(Role::EndpointSlice, join, &watches);
    d.apply(
        0,
        Change::Apply(slice(
            "a",
            "web-x1",
            "web",
            &[("p1", "10.0.0.5", "w1"), ("p2", "10.0.0.6", "w2")],
        )),
    );
    assert_eq!(
        changes(&mut d),
        vec![change("endpointslice/a/web-x1", &["10.0.0.5:8080"])]
    );
}

#[test]
fn attached_node_labels_follow_node_changes() {
    let watches = [spec(Role::Pod, None), spec(Role::Node, None)];
    let join = JoinOptions {
        attach_node: true,
        node_name: None,
    };
    let (mut d, _) = discoverer(Role::Pod, join, &watches);
    d.apply(0, Change::Apply(pod("a", "p1", "10.0.0.5", "w1")));
    d.apply(0, Change::Apply(pod("a", "p2", "10.0.0.6", "w2")));
    assert_eq!(
        group(&d, "pod/a/p1")
            .unwrap()
            .labels
            .get("__meta_kubernetes_node_label_zone"),
        ""
    );
    d.out.take_pending();
    d.apply(1, Change::Apply(node("w1", "east")));
    assert_eq!(changes(&mut d).len(), 1, "only the pod on w1 changes");
    assert_eq!(
        group(&d, "pod/a/p1")
            .unwrap()
            .labels
            .get("__meta_kubernetes_node_label_zone"),
        "east"
    );
    d.apply(1, Change::Apply(node("w1", "west")));
    assert_eq!(
        group(&d, "pod/a/p1")
            .unwrap()
            .labels
            .get("__meta_kubernetes_node_label_zone"),
        "west"
    );
    d.apply(1, Change::Delete(key("", "w1")));
    assert_eq!(
        group(&d, "pod/a/p1").unwrap().labels.get("__meta_kubernetes_node_name"),
        ""
    );
}

#[test]
fn attached_node_labels_reach_endpoints_targets() {
    let watches = [
        spec(Role::Endpoints, None),
        spec(Role::Service, None),
        spec(Role::Pod, None),
        spec(Role::Node, None),
    ];
    let join = JoinOptions {
        attach_node: true,
        node_name: None,
    };
    let (mut d, _) = discoverer(Role::Endpoints, join, &watches);
    d.apply(0, Change::Apply(endpoints("a", "web", &[("p1", "10.0.0.5", "w1")])));
    d.apply(3, Change::Apply(node("w1", "east")));
    let g = group(&d, "endpoints/a/web").unwrap();
    assert_eq!(g.targets[0].get("__meta_kubernetes_node_label_zone"), "east");
}

#[test]
fn other_roles_emit_their_own_groups() {
    let (mut d, _) = discoverer(Role::Node, JoinOptions::default(), &[spec(Role::Node, None)]);
    d.apply(0, Change::Apply(node("w1", "east")));
    assert_eq!(changes(&mut d), vec![change("node/w1", &["10.0.0.1:10250"])]);
    d.apply(0, Change::Delete(key("", "w1")));
    assert_eq!(changes(&mut d), vec![change("node/w1", &[])]);

    let (mut d, _) = discoverer(Role::Service, JoinOptions::default(), &[spec(Role::Service, None)]);
    d.apply(0, Change::Apply(service("a", "web", "blue")));
    assert_eq!(changes(&mut d), vec![change("svc/a/web", &["web.a.svc:80"])]);

    let (mut d, _) = discoverer(Role::Ingress, JoinOptions::default(), &[spec(Role::Ingress, None)]);
    let ing: Ingress = object(json!({
        "metadata": {"name": "site", "namespace": "a"},
        "spec": {"rules": [{"host": "example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }));
    d.apply(0, Change::Apply(Object::Ingress(Box::new(ing))));
    assert_eq!(changes(&mut d), vec![change("ingress/a/site", &["example.com"])]);
    d.apply(0, Change::Init);
    d.apply(0, Change::InitDone);
    assert_eq!(changes(&mut d), vec![change("ingress/a/site", &[])]);
}
