//! Fixtures shared by the remote write benches (`encode`, `decode`).

use trawl_model::labels::Labels;

/// Labels of series `i`, shaped like a node_exporter / kube series: a name, job, instance and
/// seven more (10 labels), with 50 names and 2000+ distinct label sets.
pub fn series(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("http_requests_total_{}", i % 50)),
        ("job", "kubernetes-pods".to_owned()),
        ("instance", format!("10.1.{}.{}:8080", i / 250, i % 250)),
        ("namespace", "monitoring".to_owned()),
        ("pod", format!("api-7d9f8b6c5-{i:05}")),
        ("container", "api".to_owned()),
        ("node", "node-a1.example.internal".to_owned()),
        ("method", ["GET", "POST", "PUT"][i % 3].to_owned()),
        ("code", ["200", "404", "500", "503"][i % 4].to_owned()),
        ("handler", format!("/api/v1/items/{}", i % 17)),
    ])
}
