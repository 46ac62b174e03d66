use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use super::*;

/// Requests seen by the fake API server: (path, authorization, user agent).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// Serves `GET <prefix>/api/v1/namespaces` on loopback; returns its base URL.
async fn fake_api(prefix: &str, seen: Seen) -> url::Url {
    async fn namespaces(State(seen): State<Seen>, uri: axum::http::Uri, headers: HeaderMap) -> String {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        seen.lock()
            .unwrap()
            .push((uri.path().to_owned(), header("authorization"), header("user-agent")));
        r#"{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"default"}}]}"#.to_owned()
    }
    let router = Router::new()
        .route(&format!("{prefix}/api/v1/namespaces"), get(namespaces))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    url::Url::parse(&format!("http://{addr}{prefix}/")).unwrap()
}

async fn list_namespaces(client: kube::Client) -> Result<Vec<String>, kube::Error> {
    let list = Api::<Namespace>::all(client).list(&ListParams::default()).await?;
    Ok(list.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn in_cluster_address_comes_from_the_service_variables() {
    let dir = Path::new("/sa");
    let ic = InCluster::from_env(
        env(&[
            ("KUBERNETES_SERVICE_HOST", "10.152.183.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ]),
        dir,
    )
    .unwrap();
    assert_eq!(ic.url.as_str(), "https://10.152.183.1/");
    let ic = InCluster::from_env(
        env(&[
            ("KUBERNETES_SERVICE_HOST", "fd00::1"),
            ("KUBERNETES_SERVICE_PORT", "6443"),
        ]),
        dir,
    )
    .unwrap();
    assert_eq!(ic.url.as_str(), "https://[fd00::1]:6443/");
    let http = ic.http();
    assert_eq!(http.tls_config.ca_file.as_deref(), Some(Path::new("/sa/ca.crt")));
    let auth = http.authorization.unwrap();
    assert_eq!(
        (auth.r#type.as_str(), auth.credentials_file.as_deref()),
        ("Bearer", Some(Path::new("/sa/token")))
    );

    for vars in [
        vec![],
        vec![("KUBERNETES_SERVICE_HOST", "h")],
        vec![("KUBERNETES_SERVICE_PORT", "443")],
        vec![("KUBERNETES_SERVICE_HOST", ""), ("KUBERNETES_SERVICE_PORT", "443")],
    ] {
        let e = InCluster::from_env(env(&vars), dir).unwrap_err();
        assert!(matches!(e, ClientError::NotInCluster), "{e}");
        assert!(e.to_string().contains("set api_server or kubeconfig_file"));
    }
    for (host, port) in [("h", "http"), ("h/x", "443"), ("a b", "1"), ("h", "99999")] {
        let e = InCluster::from_env(
            env(&[("KUBERNETES_SERVICE_HOST", host), ("KUBERNETES_SERVICE_PORT", port)]),
            dir,
        )
        .unwrap_err();
        assert!(matches!(e, ClientError::InClusterAddress(_)), "{host}:{port}: {e}");
    }
}

#[test]
fn own_namespace_comes_from_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let ic = InCluster {
        url: url::Url::parse("https://10.0.0.1:443").unwrap(),
        dir: dir.path().to_owned(),
    };
    let e = ic.namespace().unwrap_err();
    assert!(matches!(e, ClientError::Namespace { .. }), "{e}");
    assert!(e.to_string().contains("could not determine the pod's namespace"));
    std::fs::write(dir.path().join("namespace"), " \n").unwrap();
    assert!(matches!(ic.namespace().unwrap_err(), ClientError::EmptyNamespace(_)));
    std::fs::write(dir.path().join("namespace"), "monitoring\n").unwrap();
    assert_eq!(ic.namespace().unwrap(), "monitoring");
}

#[test]
fn base_prefix_keeps_host_port_and_path() {
    let cases = [
        ("https://10.0.0.1:6443", "https://10.0.0.1:6443"),
        ("https://k8s.example/", "https://k8s.example"),
        (
            "http://[::1]:8001/k8s/clusters/c-1/",
            "http://[::1]:8001/k8s/clusters/c-1",
        ),
        ("http://user:pw@h:80/x", "http://h/x"),
    ];
    for (url, want) in cases {
        assert_eq!(base_prefix(&url::Url::parse(url).unwrap()), want, "{url}");
    }
}

#[tokio::test]
async fn bad_tls_files_fail_at_construction() {
    let http = HttpClientConfig {
        tls_config: TlsConfig {
            ca_file: Some("/nonexistent/ca.crt".into()),
            ..TlsConfig::default()
        },
        ..HttpClientConfig::default()
    };
    let url = url::Url::parse("https://k:6443").unwrap();
    let e = from_http_config(&url, &http).err().unwrap();
    assert!(e.to_string().contains("ca_file"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let ic = InCluster {
        url,
        dir: dir.path().to_owned(),
    };
    let e = in_cluster_client(&ic, false).err().unwrap();
    assert!(e.to_string().contains("ca.crt"), "{e}");
}

#[tokio::test]
async fn requests_go_under_the_api_server_path_with_a_fresh_token_each() {
    let seen = Seen::default();
    let base = fake_api("/proxy/k8s", seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let http = HttpClientConfig {
        authorization: Some(Authorization {
            r#type: "Bearer".into(),
            credentials: None,
            credentials_file: Some(token.clone()),
        }),
        ..HttpClientConfig::default()
    };
    let client = from_http_config(&base, &http).unwrap();
    assert_eq!(list_namespaces(client.clone()).await.unwrap(), ["default"]);
    // Token rotation: the next request reads the new file content.
    std::fs::write(&token, "second").unwrap();
    list_namespaces(client.clone()).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "/proxy/k8s/api/v1/namespaces");
    assert_eq!(seen[0].1, "Bearer first");
    assert_eq!(seen[1].1, "Bearer second");
    assert!(seen[0].2.starts_with("trawl-agent/"), "{}", seen[0].2);

    // An unreadable token file fails the request, not the client.
    std::fs::remove_file(&token).unwrap();
    let e = list_namespaces(client).await.unwrap_err();
    assert!(
        e.to_string().contains("token") || format!("{e:?}").contains("ReadSecret"),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_hang() {
    // A bound but never accepting port: refuse by closing the listener first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let client = from_http_config(&url, &HttpClientConfig::default()).unwrap();
    let e = list_namespaces(client).await.unwrap_err();
    assert!(
        matches!(e, kube::Error::Service(_) | kube::Error::HyperError(_)),
        "{e:?}"
    );
}

#[tokio::test]
async fn kubeconfig_files_are_used_through_kube() {
    let seen = Seen::default();
    let base = fake_api("", seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let server = base.as_str().trim_end_matches('/');
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {{server: '{server}'}}\nusers:\n- name: u\n  user: {{token: kube-token}}\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\n"
        ),
    )
    .unwrap();
    let cfg = KubernetesSdConfig {
        role: crate::config::Role::Pod,
        api_server: None,
        kubeconfig_file: Some(path.clone()),
        namespaces: Default::default(),
        selectors: vec![],
        attach_metadata: Default::default(),
        node_name: None,
        http: HttpClientConfig::default(),
    };
    let api = connect(&cfg).await.unwrap();
    assert_eq!(api.server.trim_end_matches('/'), server);
    assert_eq!(list_namespaces(api.client).await.unwrap(), ["default"]);
    assert_eq!(seen.lock().unwrap()[0].1, "Bearer kube-token");

    for bad in ["", "not: [a kubeconfig", "apiVersion: v1\nkind: Config\n"] {
        std::fs::write(&path, bad).unwrap();
        let e = connect(&cfg).await.err().unwrap();
        assert!(
            e.to_string().starts_with(&format!("kubeconfig {}", path.display())),
            "{e}"
        );
    }
    let missing = KubernetesSdConfig {
        kubeconfig_file: Some(dir.path().join("missing")),
        ..cfg
    };
    assert!(matches!(
        connect(&missing).await.err().unwrap(),
        ClientError::Kubeconfig { .. }
    ));
}
