//! The fake Kubernetes API server behaves as the real one does for what discovery uses, proven
//! with kube-rs's own client and watcher (the library the agent is built on) and with raw HTTP
//! where the wire format itself matters.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{
    Endpoints as K8sEndpoints, Namespace, Node as K8sNode, Pod as K8sPod, Service as K8sService,
};
use k8s_openapi::api::discovery::v1::EndpointSlice as K8sEndpointSlice;
use k8s_openapi::api::networking::v1::Ingress as K8sIngress;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use trawl_e2e::http_client;
use trawl_e2e::kube_api::objects::{
    self, Address, Build, Container, EndpointSlice, Endpoints, Ingress, Node, Pod, Service,
};
use trawl_e2e::kube_api::{KubeApi, Options, Resource, Verb};

/// A kube client for `api`, authenticating with `token`.
fn client(api: &KubeApi, token: Option<&str>) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = kube::Config::new(api.url().parse().expect("url"));
    config.auth_info.token = token.map(|t| t.to_owned().into());
    kube::Client::try_from(config).expect("client")
}

fn pod(ns: &str, name: &str, node: &str) -> Value {
    Pod::new(ns, name)
        .node(node)
        .ip("10.1.0.7")
        .container(Container::new("app", "web:1").port("http", 8080))
        .label("app", "web")
        .build()
}

/// A watcher's events, rendered as `Init`, `InitApply ns/name`, `InitDone`, `Apply ns/name`,
/// `Delete ns/name`, `Error <text>`.
fn render<K: kube::Resource>(event: Result<Event<K>, watcher::Error>) -> String {
    let id = |k: &K| {
        format!(
            "{}/{}",
            k.meta().namespace.as_deref().unwrap_or(""),
            k.meta().name.as_deref().unwrap_or("")
        )
    };
    match event {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(k)) => format!("InitApply {}", id(&k)),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(k)) => format!("Apply {}", id(&k)),
        Ok(Event::Delete(k)) => format!("Delete {}", id(&k)),
        Err(e) => format!("Error {e}"),
    }
}

/// The next `n` rendered events, failing after 10 s.
async fn next<K: kube::Resource>(
    stream: &mut (impl Stream<Item = Result<Event<K>, watcher::Error>> + Unpin),
    n: usize,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    while out.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .with_context(|| format!("no event after {out:?}"))?
            .context("watcher ended")?;
        out.push(render(event));
    }
    Ok(out)
}

/// The rendered events up to and including the first for which `done` holds.
async fn next_until<K: kube::Resource>(
    stream: &mut (impl Stream<Item = Result<Event<K>, watcher::Error>> + Unpin),
    done: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|e: &String| !done(e)) {
        seen.extend(next(stream, 1).await?);
    }
    Ok(seen)
}

/// No event within `wait`.
async fn quiet<K: kube::Resource>(
    stream: &mut (impl Stream<Item = Result<Event<K>, watcher::Error>> + Unpin),
    wait: Duration,
) -> Result<()> {
    if let Ok(Some(event)) = tokio::time::timeout(wait, stream.next()).await {
        bail!("unexpected event {}", render(event));
    }
    Ok(())
}

/// Polls the watcher until its WATCH request is open: kube's watcher only sends it when polled
/// after `InitDone`. Fails on any event meanwhile.
async fn until_watching<K: kube::Resource>(
    api: &KubeApi,
    resource: Resource,
    stream: &mut (impl Stream<Item = Result<Event<K>, watcher::Error>> + Unpin),
) -> Result<()> {
    for _ in 0..100 {
        if api.open_watches(resource) > 0 {
            return Ok(());
        }
        quiet(stream, Duration::from_millis(50)).await?;
    }
    bail!("no watch of {resource} opened")
}

/// `GET url` → (status, body JSON).
async fn get(url: &str) -> Result<(u16, Value)> {
    let response = http_client().get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// Reads watch lines of `GET url` until `until` holds for one; returns every line.
async fn watch_lines(url: &str, until: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
    let mut response = http_client().get(url).timeout(Duration::from_secs(15)).send().await?;
    if response.status() != 200 {
        bail!("watch answered {}", response.status());
    }
    let (mut lines, mut buffer) = (Vec::new(), String::new());
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(std::str::from_utf8(&chunk)?);
        while let Some(end) = buffer.find('\n') {
            let line: Value = serde_json::from_str(&buffer[..end])?;
            buffer.drain(..=end);
            let done = until(&line);
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
    }
    Ok(lines)
}

#[tokio::test]
async fn kube_watcher_lists_then_watches_adds_updates_and_deletes() -> Result<()> {
    let api = KubeApi::start().await?;
    api.apply(pod("shop", "web-0", "node-a"))?;
    api.apply(pod("shop", "web-1", "node-b"))?;
    api.apply(pod("kube-system", "dns-0", "node-a"))?;
    let pods: Api<K8sPod> = Api::all(client(&api, None));
    let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
    assert_eq!(
        next(&mut events, 5).await?,
        [
            "Init",
            "InitApply kube-system/dns-0",
            "InitApply shop/web-0",
            "InitApply shop/web-1",
            "InitDone"
        ]
    );
    let rv = api.apply(pod("shop", "web-2", "node-a"))?;
    assert_eq!(next(&mut events, 1).await?, ["Apply shop/web-2"]);
    api.apply(Pod::new("shop", "web-0").node("node-a").phase("Failed").build())?;
    assert_eq!(next(&mut events, 1).await?, ["Apply shop/web-0"]);
    api.delete(Resource::Pods, "shop", "web-1")?;
    assert_eq!(next(&mut events, 1).await?, ["Delete shop/web-1"]);
    assert!(
        api.get(Resource::Pods, "shop", "web-2")
            .is_some_and(|p| p["metadata"]["resourceVersion"].as_str() == Some(&rv.to_string()))
    );

    // The default watcher config: one paginated LIST (limit=500, most recent), then one WATCH
    // from the list's resourceVersion with bookmarks.
    let requests = api.requests();
    let list = requests.iter().find(|r| r.verb == Verb::List).context("no LIST")?;
    assert_eq!(
        (list.path.as_str(), list.resource_version.as_deref()),
        ("/api/v1/pods", None)
    );
    let watch = requests.iter().find(|r| r.verb == Verb::Watch).context("no WATCH")?;
    assert_eq!(watch.resource_version.as_deref(), Some("481519"));
    assert_eq!(
        (
            api.count(Verb::List, Resource::Pods),
            api.count(Verb::Watch, Resource::Pods)
        ),
        (1, 1)
    );
    assert_eq!(api.open_watches(Resource::Pods), 1);
    drop(events);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.open_watches(Resource::Pods), 0, "a closed client ends the watch");
    Ok(())
}

#[tokio::test]
async fn every_resource_lists_cluster_wide_and_per_namespace_with_kube_types() -> Result<()> {
    let api = KubeApi::start().await?;
    api.apply(objects::namespace("shop"))?;
    api.apply(Node::new("node-a").address("InternalIP", "10.0.0.1").build())?;
    api.apply(Service::new("shop", "web").port("http", 80, 8080).build())?;
    api.apply(
        Endpoints::new("shop", "web")
            .address(Address::new("10.1.0.7").pod("web-0"))
            .port("http", 8080, "TCP")
            .build(),
    )?;
    api.apply(
        EndpointSlice::new("shop", "web-abcde", "web")
            .endpoint(Address::new("10.1.0.7"))
            .port("http", 8080, "TCP", None)
            .build(),
    )?;
    api.apply(Ingress::new("shop", "web").rule("shop.example.com", &["/"]).build())?;
    api.apply(pod("shop", "web-0", "node-a"))?;
    api.apply(pod("other", "web-0", "node-a"))?;
    let c = client(&api, None);
    let lp = ListParams::default();
    assert_eq!(
        Api::<Namespace>::all(c.clone()).list(&lp).await?.items[0].name_any(),
        "shop"
    );
    assert_eq!(
        Api::<K8sNode>::all(c.clone()).list(&lp).await?.items[0].name_any(),
        "node-a"
    );
    assert_eq!(
        Api::<K8sService>::namespaced(c.clone(), "shop")
            .list(&lp)
            .await?
            .items
            .len(),
        1
    );
    assert_eq!(Api::<K8sEndpoints>::all(c.clone()).list(&lp).await?.items.len(), 1);
    assert_eq!(
        Api::<K8sEndpointSlice>::namespaced(c.clone(), "shop")
            .list(&lp)
            .await?
            .items
            .len(),
        1
    );
    assert_eq!(Api::<K8sIngress>::all(c.clone()).list(&lp).await?.items.len(), 1);
    assert_eq!(Api::<K8sPod>::all(c.clone()).list(&lp).await?.items.len(), 2);
    let shop = Api::<K8sPod>::namespaced(c.clone(), "shop").list(&lp).await?;
    assert_eq!(shop.items.len(), 1);
    assert_eq!(
        shop.metadata.resource_version.as_deref(),
        Some(api.resource_version().to_string().as_str())
    );
    assert!(
        Api::<K8sPod>::namespaced(c.clone(), "empty")
            .list(&lp)
            .await?
            .items
            .is_empty()
    );
    assert_eq!(
        Api::<K8sService>::namespaced(c.clone(), "shop")
            .get("web")
            .await?
            .name_any(),
        "web"
    );
    let missing = Api::<K8sService>::namespaced(c.clone(), "shop")
        .get("nope")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{missing}"
    );

    // A namespaced watcher of EndpointSlices sees only its namespace.
    let mut slices = watcher::watcher(
        Api::<K8sEndpointSlice>::namespaced(c.clone(), "shop"),
        watcher::Config::default(),
    )
    .boxed();
    assert_eq!(
        next(&mut slices, 3).await?,
        ["Init", "InitApply shop/web-abcde", "InitDone"]
    );
    api.apply(EndpointSlice::new("other", "db-1", "db").build())?;
    api.apply(EndpointSlice::new("shop", "db-2", "db").build())?;
    assert_eq!(next(&mut slices, 1).await?, ["Apply shop/db-2"]);

    // List items carry no apiVersion/kind; the list does, and watch objects do.
    let (status, list) = get(&format!("{}/apis/discovery.k8s.io/v1/endpointslices", api.url())).await?;
    assert_eq!(
        (status, list["kind"].as_str(), list["apiVersion"].as_str()),
        (200, Some("EndpointSliceList"), Some("discovery.k8s.io/v1"))
    );
    assert!(list["items"][0].get("kind").is_none() && list["items"][0].get("apiVersion").is_none());
    Ok(())
}

#[tokio::test]
async fn discovery_documents_parse_with_kube() -> Result<()> {
    let api = KubeApi::start().await?;
    let c = client(&api, None);
    assert_eq!(c.apiserver_version().await?.git_version, "v1.33.1");
    assert_eq!(c.list_core_api_versions().await?.versions, ["v1"]);
    let groups = c.list_api_groups().await?;
    let names: Vec<_> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["discovery.k8s.io", "networking.k8s.io"]);
    let core = c.list_core_api_resources("v1").await?;
    assert!(
        core.resources
            .iter()
            .any(|r| r.name == "pods" && r.namespaced && r.kind == "Pod")
    );
    assert!(core.resources.iter().any(|r| r.name == "nodes" && !r.namespaced));
    let slices = c.list_api_group_resources("discovery.k8s.io/v1").await?;
    assert_eq!(slices.resources[0].name, "endpointslices");
    Ok(())
}

#[tokio::test]
async fn bookmarks_carry_the_newest_resource_version() -> Result<()> {
    let options = Options {
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let api = KubeApi::start_with(options).await?;
    let start = api.apply(pod("shop", "web-0", "node-a"))?;
    // A change of another resource advances the bookmark too (the real server's progress).
    let node_rv = api.apply(Node::new("node-a").build())?;
    let url = format!(
        "{}/api/v1/pods?watch=true&resourceVersion={start}&allowWatchBookmarks=true&timeoutSeconds=10",
        api.url()
    );
    let lines = watch_lines(&url, |l| l["type"] == "BOOKMARK").await?;
    let bookmark = lines.last().context("no line")?;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(bookmark["object"]["kind"], "Pod");
    assert_eq!(bookmark["object"]["apiVersion"], "v1");
    assert_eq!(bookmark["object"]["metadata"]["resourceVersion"], node_rv.to_string());

    // Without allowWatchBookmarks there are none; a timeout ends the stream cleanly.
    let url = format!(
        "{}/api/v1/pods?watch=true&resourceVersion={start}&timeoutSeconds=1",
        api.url()
    );
    let started = std::time::Instant::now();
    let lines = watch_lines(&url, |_| false).await?;
    assert!(lines.is_empty(), "{lines:?}");
    assert!(started.elapsed() >= Duration::from_millis(900) && started.elapsed() < Duration::from_secs(5));

    // With bookmarks, a timed-out watch ends with one.
    let url = format!(
        "{}/api/v1/pods?watch=true&resourceVersion={start}&timeoutSeconds=0&allowWatchBookmarks=true",
        api.url()
    );
    let lines = watch_lines(&url, |_| false).await?;
    assert_eq!(
        lines
            .iter()
            .map(|l| l["type"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["BOOKMARK"]
    );
    Ok(())
}

#[tokio::test]
async fn watches_resume_from_history_and_get_410_once_compacted() -> Result<()> {
    let api = KubeApi::start().await?;
    let first = api.apply(pod("shop", "web-0", "node-a"))?;
    api.apply(pod("shop", "web-1", "node-a"))?;
    api.delete(Resource::Pods, "shop", "web-0")?;
    let url = |rv: u64| {
        format!(
            "{}/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1",
            api.url()
        )
    };
    let lines = watch_lines(&url(first), |_| false).await?;
    let seen: Vec<_> = lines
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["type"].as_str().unwrap_or_default(),
                l["object"]["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(seen, ["ADDED web-1", "DELETED web-0"]);
    assert_eq!(
        lines[1]["object"]["metadata"]["resourceVersion"],
        api.resource_version().to_string()
    );

    // No resourceVersion: the current state as ADDED events.
    let now = format!("{}/api/v1/pods?watch=true&timeoutSeconds=1", api.url());
    let lines = watch_lines(&now, |_| false).await?;
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (
            lines[0]["type"].as_str(),
            lines[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("web-1"))
    );

    api.compact();
    let lines = watch_lines(&url(first), |_| false).await?;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "ERROR");
    let status = &lines[0]["object"];
    assert_eq!(
        (
            status["kind"].as_str(),
            status["code"].as_u64(),
            status["reason"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"))
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("too old resource version"),
        "{status}"
    );
    // From the compaction point on, history is fine.
    assert!(watch_lines(&url(api.resource_version()), |_| false).await?.is_empty());

    // Exact and paginated lists at a compacted version are HTTP 410; "not older than" is served.
    let list = |q: &str| get_status(format!("{}/api/v1/pods?{q}", api.url()));
    assert_eq!(
        list(&format!("resourceVersion={first}&resourceVersionMatch=Exact")).await?,
        (410, "Expired".into())
    );
    assert_eq!(
        list(&format!("resourceVersion={first}&limit=10")).await?,
        (410, "Expired".into())
    );
    assert_eq!(
        list(&format!("resourceVersion={first}&resourceVersionMatch=NotOlderThan"))
            .await?
            .0,
        200
    );
    assert_eq!(list(&format!("resourceVersion={first}")).await?.0, 200);
    assert_eq!(
        list("resourceVersion=99999999&resourceVersionMatch=NotOlderThan")
            .await?
            .0,
        504
    );
    Ok(())
}

/// `GET url` → (status, `reason` of a Status body or "").
async fn get_status(url: String) -> Result<(u16, String)> {
    let (status, body) = get(&url).await?;
    Ok((status, body["reason"].as_str().unwrap_or_default().to_owned()))
}

#[tokio::test]
async fn kube_watcher_relists_after_compaction_without_duplicates() -> Result<()> {
    let api = KubeApi::start().await?;
    api.apply(pod("shop", "web-0", "node-a"))?;
    let mut events = watcher::watcher(Api::<K8sPod>::all(client(&api, None)), watcher::Config::default()).boxed();
    assert_eq!(
        next(&mut events, 3).await?,
        ["Init", "InitApply shop/web-0", "InitDone"]
    );
    until_watching(&api, Resource::Pods, &mut events).await?;

    // An open watch is ended with 410; the watcher relists the current state once.
    api.compact();
    let after = next(&mut events, 4).await?;
    assert!(
        after[0].starts_with("Error") && after[0].contains("Expired"),
        "{after:?}"
    );
    assert_eq!(after[1..], ["Init", "InitApply shop/web-0", "InitDone"]);
    until_watching(&api, Resource::Pods, &mut events).await?;

    // Changes while the server is down, then a compaction: the watch resumes with a stale
    // version, gets 410 and relists the state as it is now.
    api.set_unreachable(true).await?;
    api.delete(Resource::Pods, "shop", "web-0")?;
    api.apply(pod("shop", "web-1", "node-a"))?;
    api.compact();
    api.set_unreachable(false).await?;
    let seen = next_until(&mut events, |e| e == "InitDone").await?;
    let ok: Vec<_> = seen.iter().filter(|e| !e.starts_with("Error")).collect();
    assert_eq!(ok, ["Init", "InitApply shop/web-1", "InitDone"], "{seen:?}");
    assert!(seen.iter().any(|e| e.contains("too old resource version")), "{seen:?}");
    quiet(&mut events, Duration::from_millis(500)).await?;
    assert_eq!(api.count(Verb::List, Resource::Pods), 3);
    Ok(())
}

#[tokio::test]
async fn lists_paginate_over_a_consistent_snapshot() -> Result<()> {
    let api = KubeApi::start().await?;
    for i in 0..7 {
        api.apply(pod("shop", &format!("web-{i}"), "node-a"))?;
    }
    let rv = api.resource_version();
    let base = format!("{}/api/v1/namespaces/shop/pods?limit=3", api.url());
    let (_, page1) = get(&base).await?;
    assert_eq!(page1["metadata"]["remainingItemCount"], 4);
    let token = page1["metadata"]["continue"].as_str().context("continue")?.to_owned();
    // Writes between pages do not show: the pages read the first page's snapshot.
    api.delete(Resource::Pods, "shop", "web-4")?;
    api.apply(pod("shop", "web-9", "node-a"))?;
    let (_, page2) = get(&format!("{base}&continue={token}")).await?;
    let token2 = page2["metadata"]["continue"].as_str().context("continue")?.to_owned();
    let (_, page3) = get(&format!("{base}&continue={token2}")).await?;
    assert!(page3["metadata"].get("continue").is_none());
    let names: Vec<_> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .map(|i| i["metadata"]["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, (0..7).map(|i| format!("web-{i}")).collect::<Vec<_>>());
    for page in [&page1, &page2, &page3] {
        assert_eq!(page["metadata"]["resourceVersion"], rv.to_string());
    }

    // kube's watcher pages through with its page size.
    let config = watcher::Config::default().page_size(2);
    let mut events = watcher::watcher(Api::<K8sPod>::namespaced(client(&api, None), "shop"), config).boxed();
    let init = next(&mut events, 9).await?;
    assert_eq!(init.iter().filter(|e| e.starts_with("InitApply")).count(), 7);
    assert_eq!(api.count(Verb::List, Resource::Pods), 4 + 3);

    // A continue token from before a compaction is 410; a garbled one is 400.
    api.compact();
    assert_eq!(
        get_status(format!("{base}&continue={token}")).await?,
        (410, "Expired".into())
    );
    assert_eq!(
        get_status(format!("{base}&continue=garbage")).await?,
        (400, "BadRequest".into())
    );
    Ok(())
}

#[tokio::test]
async fn selectors_filter_lists_and_watches_as_the_server_does() -> Result<()> {
    let api = KubeApi::start().await?;
    api.apply(pod("shop", "a-0", "node-a"))?;
    api.apply(pod("shop", "b-0", "node-b"))?;
    api.apply(Pod::new("shop", "pending").label("app", "web").phase("Pending").build())?;
    let pods: Api<K8sPod> = Api::all(client(&api, None));
    let names = |list: kube::core::ObjectList<K8sPod>| list.items.iter().map(ResourceExt::name_any).collect::<Vec<_>>();
    assert_eq!(
        names(pods.list(&ListParams::default().fields("spec.nodeName=node-a")).await?),
        ["a-0"]
    );
    assert_eq!(
        names(pods.list(&ListParams::default().fields("spec.nodeName=")).await?),
        ["pending"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName!=node-a,status.phase=Running"))
                .await?
        ),
        ["b-0"]
    );
    assert_eq!(
        names(pods.list(&ListParams::default().fields("metadata.name=b-0")).await?),
        ["b-0"]
    );
    assert_eq!(
        names(pods.list(&ListParams::default().labels("app in (web),app!=db")).await?).len(),
        3
    );
    assert!(
        pods.list(&ListParams::default().labels("app=db"))
            .await?
            .items
            .is_empty()
    );

    // A node-local watcher: a pod moving off the node is DELETED for it, one arriving ADDED.
    let config = watcher::Config::default().fields("spec.nodeName=node-a");
    let mut events = watcher::watcher(pods.clone(), config).boxed();
    assert_eq!(next(&mut events, 3).await?, ["Init", "InitApply shop/a-0", "InitDone"]);
    api.apply(pod("shop", "b-1", "node-b"))?;
    api.apply(pod("shop", "a-0", "node-b"))?;
    assert_eq!(next(&mut events, 1).await?, ["Delete shop/a-0"]);
    api.apply(pod("shop", "b-0", "node-a"))?;
    assert_eq!(next(&mut events, 1).await?, ["Apply shop/b-0"]);
    quiet(&mut events, Duration::from_millis(300)).await?;
    let watch = api
        .requests()
        .into_iter()
        .find(|r| r.verb == Verb::Watch)
        .context("no watch")?;
    assert_eq!(watch.field_selector.as_deref(), Some("spec.nodeName=node-a"));

    // Unsupported fields and bad selectors are 400s with a Status.
    let err = Api::<K8sService>::all(client(&api, None))
        .list(&ListParams::default().fields("spec.nodeName=node-a"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400 && s.message == "field label not supported: spec.nodeName"),
        "{err}"
    );
    assert!(pods.list(&ListParams::default().labels("app in web")).await.is_err());
    Ok(())
}

#[tokio::test]
async fn bearer_tokens_authenticate_and_rotate() -> Result<()> {
    let options = Options {
        tokens: vec!["token-1".into()],
        ..Options::default()
    };
    let api = KubeApi::start_with(options).await?;
    api.apply(pod("shop", "web-0", "node-a"))?;
    let lp = ListParams::default();
    for token in [None, Some("wrong")] {
        let err = Api::<K8sPod>::all(client(&api, token)).list(&lp).await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 401 && s.reason == "Unauthorized"),
            "{err}"
        );
    }
    assert_eq!(
        Api::<K8sPod>::all(client(&api, Some("token-1")))
            .list(&lp)
            .await?
            .items
            .len(),
        1
    );

    // An open watch survives a rotation (it was authenticated when it started); new requests
    // need the new token.
    let mut events = watcher::watcher(
        Api::<K8sPod>::all(client(&api, Some("token-1"))),
        watcher::Config::default(),
    )
    .boxed();
    assert_eq!(next(&mut events, 3).await?.len(), 3);
    until_watching(&api, Resource::Pods, &mut events).await?;
    api.set_tokens(["token-2"]);
    api.apply(pod("shop", "web-1", "node-a"))?;
    assert_eq!(next(&mut events, 1).await?, ["Apply shop/web-1"]);
    assert!(
        Api::<K8sPod>::all(client(&api, Some("token-1")))
            .list(&lp)
            .await
            .is_err()
    );
    assert_eq!(
        Api::<K8sPod>::all(client(&api, Some("token-2")))
            .list(&lp)
            .await?
            .items
            .len(),
        2
    );
    let by_token = |t: &str| api.requests().iter().filter(|r| r.token.as_deref() == Some(t)).count();
    assert_eq!((by_token("token-1"), by_token("token-2"), by_token("wrong")), (4, 1, 1));
    assert_eq!(api.requests().iter().filter(|r| r.status == 401).count(), 3);
    Ok(())
}

#[tokio::test]
async fn forbidden_resources_answer_403_like_rbac_and_recover() -> Result<()> {
    let api = KubeApi::start().await?;
    api.apply(pod("shop", "web-0", "node-a"))?;
    api.forbid(Resource::Pods);
    let err = Api::<K8sPod>::namespaced(client(&api, Some("t")), "shop")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else { bail!("{err}") };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        r#"pods is forbidden: User "system:serviceaccount:monitoring:trawl-agent" cannot list resource "pods" in API group "" in the namespace "shop""#
    );
    let slices = format!(
        "{}/apis/discovery.k8s.io/v1/endpointslices?watch=true&timeoutSeconds=0",
        api.url()
    );
    assert_eq!(http_client().get(&slices).send().await?.status(), 200);
    api.forbid(Resource::EndpointSlices);
    let (code, body) = get(&slices).await?;
    assert_eq!(code, 403);
    assert_eq!(
        body["details"],
        serde_json::json!({"group": "discovery.k8s.io", "kind": "endpointslices"})
    );
    assert!(body["message"].as_str().unwrap_or_default().contains(r#"User "system:anonymous" cannot watch resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope"#), "{body}");

    // kube's watcher reports the 403 and keeps trying (with backoff); once allowed it lists.
    let mut events = watcher::watcher(Api::<K8sPod>::all(client(&api, None)), watcher::Config::default()).boxed();
    let first = next(&mut events, 2).await?;
    assert_eq!(first[0], "Init");
    assert!(first[1].contains("403") || first[1].contains("forbidden"), "{first:?}");
    api.allow(Resource::Pods);
    let seen = next_until(&mut events, |e| e == "InitDone").await?;
    assert!(seen.contains(&"InitApply shop/web-0".to_owned()), "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn restarts_cut_watches_which_resume_without_relisting() -> Result<()> {
    let api = KubeApi::start().await?;
    let port = api.port();
    api.apply(pod("shop", "web-0", "node-a"))?;
    let mut events = watcher::watcher(Api::<K8sPod>::all(client(&api, None)), watcher::Config::default()).boxed();
    assert_eq!(next(&mut events, 3).await?.len(), 3);
    until_watching(&api, Resource::Pods, &mut events).await?;

    api.restart().await?;
    assert_eq!(api.port(), port);
    api.apply(pod("shop", "web-1", "node-a"))?;
    let seen = next_until(&mut events, |e| e.starts_with("Apply")).await?;
    assert_eq!(seen.last().map(String::as_str), Some("Apply shop/web-1"), "{seen:?}");
    assert_eq!(
        api.count(Verb::List, Resource::Pods),
        1,
        "resumed from the history, no relist"
    );
    assert_eq!(api.count(Verb::Watch, Resource::Pods), 2);
    let resumed = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == Verb::Watch)
        .nth(1)
        .context("second watch")?;
    assert_eq!(resumed.resource_version.as_deref(), Some("481517"));

    // An outage refuses connections until the server is back.
    api.set_unreachable(true).await?;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err());
    api.set_unreachable(true).await?;
    api.apply(pod("shop", "web-2", "node-a"))?;
    api.set_unreachable(false).await?;
    let seen = next_until(&mut events, |e| e.starts_with("Apply")).await?;
    assert_eq!(seen.last().map(String::as_str), Some("Apply shop/web-2"), "{seen:?}");
    assert_eq!(api.count(Verb::List, Resource::Pods), 1);
    Ok(())
}

#[tokio::test]
async fn hostile_requests_and_watch_lines() -> Result<()> {
    let api = KubeApi::start().await?;
    let url = api.url();
    assert_eq!(
        get_status(format!("{url}/api/v1/deployments")).await?,
        (404, "NotFound".into())
    );
    assert_eq!(
        get_status(format!("{url}/api/v1/pods?resourceVersion=abc")).await?,
        (400, "BadRequest".into())
    );
    assert_eq!(
        get_status(format!("{url}/api/v1/pods?watch=true&resourceVersion=-1")).await?,
        (400, "BadRequest".into())
    );
    assert_eq!(
        get_status(format!("{url}/api/v1/pods?watch=true&timeoutSeconds=x")).await?,
        (400, "BadRequest".into())
    );
    assert_eq!(
        get_status(format!("{url}/api/v1/pods?watch=true&sendInitialEvents=true")).await?,
        (400, "BadRequest".into())
    );
    assert_eq!(
        get_status(format!("{url}/api/v1/pods?limit=-3")).await?,
        (400, "BadRequest".into())
    );
    assert_eq!(
        get_status(format!("{url}/api/v1/pods?labelSelector=a%3D%3D%3D")).await?,
        (400, "BadRequest".into())
    );
    let post = http_client()
        .post(format!("{url}/api/v1/pods"))
        .body("{}")
        .send()
        .await?;
    assert_eq!(post.status(), 405);
    assert_eq!(api.requests().iter().filter(|r| r.verb == Verb::Other).count(), 2);

    // Objects without identity are refused by the control API; malformed ones are served.
    assert!(
        api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}))
            .is_err()
    );
    assert!(api.delete(Resource::Pods, "shop", "nope").is_err());
    api.apply(pod("shop", "web-0", "node-a"))?;
    api.apply(objects::malformed_pod("shop", "broken", "node-a"))?;
    let dynamic: Api<DynamicObject> = Api::all_with(client(&api, None), &ApiResource::erase::<K8sPod>(&()));
    let config = watcher::Config::default().fields("spec.nodeName=node-a");
    let mut events = watcher::watcher(dynamic, config).boxed();
    assert_eq!(
        next(&mut events, 4).await?,
        ["Init", "InitApply shop/broken", "InitApply shop/web-0", "InitDone"]
    );
    until_watching(&api, Resource::Pods, &mut events).await?;

    // A garbled line is one error for the watcher (kube skips a truncated one); the stream
    // goes on.
    api.inject_watch_line(Resource::Pods, r#"{"type":"ADDED","object":{"metadata":"#);
    api.inject_watch_line(Resource::Pods, r#"{"type":"ADDED","object":42}"#);
    api.inject_watch_line(Resource::Nodes, "not for pods");
    api.apply(pod("shop", "web-1", "node-a"))?;
    let after = next(&mut events, 2).await?;
    assert!(after[0].starts_with("Error"), "{after:?}");
    assert_eq!(after[1], "Apply shop/web-1");
    Ok(())
}

#[tokio::test]
async fn dropping_the_server_stops_it() -> Result<()> {
    let api = KubeApi::start().await?;
    let port = api.port();
    let url = format!("{}/api/v1/pods?watch=true&timeoutSeconds=60", api.url());
    let watch = tokio::spawn(async move { watch_lines(&url, |_| false).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(api);
    let ended = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .context("the watch outlived the server")?;
    assert!(ended?.is_err(), "a cut watch ends with an error, not cleanly");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err());
    Ok(())
}
