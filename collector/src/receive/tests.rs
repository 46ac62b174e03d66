//! The endpoint over loopback HTTP against real heads in a temporary directory:
//!
//! ```text
//! reqwest ──POST /api/v1/receive──► axum router ──► Receiver ──► Tenants ──► Head + WAL (tempdir)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use prost::Message;
use trawl_model::remote::{Label, Sample, TimeSeries, WriteRequest};

use super::*;
use crate::head::HeadOptions;
use crate::tenants::Tenants;

/// One collector's receive side on a loopback port.
struct Fixture {
    _dir: tempfile::TempDir,
    tenants: Arc<Tenants>,
    receiver: Arc<Receiver>,
    registry: Registry,
    url: String,
    client: reqwest::Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_config(ReceiveConfig::default()).await
    }

    async fn with_config(config: ReceiveConfig) -> Fixture {
        // reqwest is built with rustls but without a default crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::default();
        let tenants = Arc::new(Tenants::open(dir.path(), HeadOptions::default(), &mut registry).unwrap());
        let receiver = Arc::new(Receiver::new(Arc::clone(&tenants), config, &mut registry));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = router(Arc::clone(&receiver));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fixture {
            _dir: dir,
            tenants,
            receiver,
            registry,
            url: format!("http://{addr}/api/v1/receive"),
            client: reqwest::Client::new(),
        }
    }

    /// Posts `body` as-is (already compressed) with an optional tenant header.
    async fn post_raw(&self, body: Vec<u8>, tenant: Option<&str>) -> (u16, String) {
        let mut request = self
            .client
            .post(&self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        if let Some(tenant) = tenant {
            request = request.header("THANOS-TENANT", tenant);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn post(&self, series: &[Series<'_>], tenant: Option<&str>) -> (u16, String) {
        self.post_raw(snappy(&proto(series)), tenant).await
    }

    /// Series in the tenant's head; 0 if the tenant has none.
    fn series_of(&self, tenant: &str) -> usize {
        self.tenants
            .all()
            .into_iter()
            .find(|(name, _)| name == tenant)
            .map_or(0, |(_, head)| head.num_series())
    }

    /// The newest sample time of the tenant's head.
    fn max_time_of(&self, tenant: &str) -> Option<i64> {
        self.tenants
            .all()
            .into_iter()
            .find(|(name, _)| name == tenant)
            .and_then(|(_, head)| head.max_time())
    }

    /// The value of one metric line in the exposition, e.g. `name{code="200"}`; 0 if absent.
    fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Samples stored by all tenants' heads (the metric has one series per tenant).
    fn appended(&self) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .filter(|line| line.starts_with("trawl_collector_head_samples_appended_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Labels in wire order (not sorted for you) and samples as (timestamp ms, value).
pub(super) type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

/// Encodes with prost, so labels keep the given order and empty values.
pub(super) fn proto(series: &[Series<'_>]) -> Vec<u8> {
    WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels
                    .iter()
                    .map(|&(name, value)| Label {
                        name: name.into(),
                        value: value.into(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(timestamp, value)| Sample { value, timestamp })
                    .collect(),
                exemplars: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    }
    .encode_to_vec()
}

fn snappy(proto: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(proto).unwrap()
}

/// A recent timestamp (ms), so the head accepts it whatever its bounds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const UP_A: &[(&str, &str)] = &[("__name__", "up"), ("job", "a")];
const UP_B: &[(&str, &str)] = &[("__name__", "up"), ("job", "b")];

#[tokio::test]
async fn valid_request_is_stored_and_answered_200() {
    let f = Fixture::new().await;
    let t = now_ms();
    let (status, body) = f
        .post(&[(UP_A, &[(t, 1.0), (t + 1000, 2.0)]), (UP_B, &[(t, 3.0)])], None)
        .await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(f.series_of("default-tenant"), 2);
    assert_eq!(f.max_time_of("default-tenant"), Some(t + 1000));
    assert_eq!(f.appended(), 3.0);
    assert_eq!(f.metric("trawl_collector_received_samples_total"), 3.0);
    assert_eq!(f.metric(r#"trawl_collector_received_requests_total{code="200"}"#), 1.0);
}

#[tokio::test]
async fn stored_values_come_back_from_a_block_exactly() {
    let f = Fixture::new().await;
    let t = now_ms();
    let with_empty: &[(&str, &str)] = &[("__name__", "temp"), ("empty", ""), ("room", "b")];
    let unsorted: &[(&str, &str)] = &[("job", "x"), ("__name__", "up")];
    let request: [Series<'_>; 4] = [
        (UP_A, &[(t, 1.0), (t + 1, f64::MIN_POSITIVE), (t + 2, f64::NAN)]),
        (unsorted, &[(t, 5.0)]),
        (with_empty, &[(t, -273.15)]),
        (UP_B, &[(t + 3, f64::INFINITY)]),
    ];
    assert_eq!(f.post(&request, None).await.0, 400);

    let (_, head) = f.tenants.all().into_iter().next().unwrap();
    let metas = head.flush(trawl_tsdb::meta::ThanosMeta::default()).unwrap();
    let mut stored = Vec::new();
    for meta in metas {
        let block = trawl_tsdb::block::BlockReader::open(&head.dir().join(meta.ulid.to_string())).unwrap();
        for series in block.series() {
            let series = series.unwrap();
            for chunk in &series.chunks {
                for sample in chunk.iter() {
                    let (t, v) = sample.unwrap();
                    stored.push((series.labels.to_string(), t, v.to_bits()));
                }
            }
        }
    }
    stored.sort();
    let mut expected = vec![
        (r#"{__name__="up", job="a"}"#.to_owned(), t, 1f64.to_bits()),
        (
            r#"{__name__="up", job="a"}"#.to_owned(),
            t + 1,
            f64::MIN_POSITIVE.to_bits(),
        ),
        (r#"{__name__="up", job="a"}"#.to_owned(), t + 2, f64::NAN.to_bits()),
        (r#"{__name__="temp", room="b"}"#.to_owned(), t, (-273.15f64).to_bits()),
        (r#"{__name__="up", job="b"}"#.to_owned(), t + 3, f64::INFINITY.to_bits()),
    ];
    expected.sort();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn write_alias_and_empty_requests_answer_200() {
    let f = Fixture::new().await;
    let write_url = f.url.replace("/receive", "/write");
    let body = snappy(&proto(&[(UP_A, &[(now_ms(), 1.0)])]));
    let response = f.client.post(&write_url).body(body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(f.series_of("default-tenant"), 1);
    // A request without series (e.g. metadata only) stores nothing and succeeds, as Thanos,
    // without creating the tenant.
    assert_eq!(f.post(&[], Some("ghost")).await.0, 200);
    assert!(f.tenants.all().iter().all(|(tenant, _)| tenant != "ghost"));
    assert_eq!(f.appended(), 1.0);
}

#[tokio::test]
async fn garbage_bodies_answer_400_and_store_nothing() {
    let f = Fixture::new().await;
    let (status, body) = f.post_raw(b"this is not snappy".to_vec(), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("snappy"), "{body}");
    // Valid snappy around invalid protobuf: a length past the end.
    let (status, body) = f.post_raw(snappy(&[0x0a, 0x7f, 0x00]), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("protobuf"), "{body}");
    // Valid framing, invalid UTF-8 in a label value.
    let mut bad_utf8 = proto(&[(UP_A, &[(now_ms(), 1.0)])]);
    let at = bad_utf8.iter().position(|&b| b == b'a').unwrap();
    bad_utf8[at] = 0xff;
    assert_eq!(f.post_raw(snappy(&bad_utf8), None).await.0, 400);
    assert_eq!(f.post_raw(Vec::new(), None).await.0, 400);
    assert_eq!(f.appended(), 0.0);
    assert_eq!(f.series_of("default-tenant"), 0);
    assert_eq!(f.metric(r#"trawl_collector_received_requests_total{code="400"}"#), 4.0);
}

#[tokio::test]
async fn snappy_bomb_and_oversized_bodies_answer_413() {
    let config = ReceiveConfig {
        max_body_bytes: 64 << 10,
        max_decoded_bytes: 512 << 10,
        ..ReceiveConfig::default()
    };
    let f = Fixture::with_config(config).await;
    // A valid snappy block of 1 MiB of zeros is about 48 KiB: under the body limit, twice the
    // decoded limit.
    let bomb = snappy(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 64 << 10);
    let (status, body) = f.post_raw(bomb, None).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("above the limit"), "{body}");
    // A header announcing 4 GiB - 1 with no data behind it.
    assert_eq!(f.post_raw(vec![0xff, 0xff, 0xff, 0xff, 0x0f], None).await.0, 413);
    // A body over max_body_bytes, whatever it holds.
    let (status, body) = f.post_raw(vec![0x0a; (64 << 10) + 1], None).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than 65536 bytes"), "{body}");
    assert_eq!(f.appended(), 0.0);
    assert_eq!(f.metric(r#"trawl_collector_received_requests_total{code="413"}"#), 3.0);
}

#[tokio::test]
async fn invalid_label_sets_answer_400_naming_the_series_and_valid_series_are_stored() {
    let f = Fixture::new().await;
    let t = now_ms();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("job", "x"), ("__name__", "up")], "not sorted"),
        (
            &[("__name__", "up"), ("job", "x"), ("job", "y")],
            "duplicate label name \"job\"",
        ),
        (&[("instance", "i"), ("job", "x")], "no __name__"),
        (&[("__name__", "up"), ("bad-name", "x")], "invalid label name"),
    ];
    for (i, (labels, reason)) in cases.into_iter().enumerate() {
        let valid: &[(&str, &str)] = &[("__name__", "up"), ("case", ["0", "1", "2", "3"][i])];
        let (status, body) = f.post(&[(labels, &[(t, 1.0)]), (valid, &[(t, 2.0)])], None).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(reason), "{reason}: {body}");
        assert!(body.contains("=\"x\""), "message names the series: {body}");
        assert_eq!(f.series_of("default-tenant"), i + 1, "the valid series is stored");
    }
    assert_eq!(f.appended(), 4.0);
    assert_eq!(
        f.metric(r#"trawl_collector_rejected_samples_total{reason="invalid"}"#),
        4.0
    );
}

#[tokio::test]
async fn empty_label_values_are_dropped_not_refused() {
    let f = Fixture::new().await;
    let t = now_ms();
    let with_empty: &[(&str, &str)] = &[("__name__", "up"), ("empty", ""), ("job", "a")];
    assert_eq!(f.post(&[(with_empty, &[(t, 1.0)])], None).await.0, 200);
    // The same series without the empty label: same series, exact duplicate.
    assert_eq!(f.post(&[(UP_A, &[(t, 1.0)])], None).await.0, 200);
    assert_eq!(f.series_of("default-tenant"), 1);
    assert_eq!(f.appended(), 1.0);
}

#[tokio::test]
async fn out_of_order_samples_answer_409_and_the_rest_is_stored() {
    let f = Fixture::new().await;
    let t = now_ms();
    assert_eq!(f.post(&[(UP_A, &[(t, 1.0)])], None).await.0, 200);
    // One sample older than the stored one, one duplicate with another value, one new series.
    let (status, body) = f
        .post(
            &[(UP_A, &[(t - 1000, 0.5)]), (UP_A, &[(t, 9.0)]), (UP_B, &[(t, 3.0)])],
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("out of order"), "{body}");
    assert!(body.contains("duplicate sample"), "{body}");
    assert_eq!(f.series_of("default-tenant"), 2);
    assert_eq!(f.appended(), 2.0);
    assert_eq!(
        f.metric(r#"trawl_collector_rejected_samples_total{reason="out_of_order"}"#),
        1.0
    );
    assert_eq!(
        f.metric(r#"trawl_collector_rejected_samples_total{reason="duplicate"}"#),
        1.0
    );
    assert_eq!(f.metric(r#"trawl_collector_received_requests_total{code="409"}"#), 1.0);
}

#[tokio::test]
async fn exact_retries_answer_200_and_add_nothing() {
    let f = Fixture::new().await;
    let t = now_ms();
    // One sample per series, as Prometheus and vmagent send; NaN compares bit for bit.
    let request: [Series<'_>; 2] = [(UP_A, &[(t, 1.0)]), (UP_B, &[(t, f64::NAN)])];
    assert_eq!(f.post(&request, None).await.0, 200);
    assert_eq!(f.appended(), 2.0);
    for _ in 0..3 {
        assert_eq!(f.post(&request, None).await, (200, String::new()));
    }
    assert_eq!(f.appended(), 2.0);
    assert_eq!(f.series_of("default-tenant"), 2);
    // A retried series with several samples: only its newest sample is an exact duplicate; the
    // older ones are out of order, as in Prometheus's head. Still nothing is stored twice.
    let several: [Series<'_>; 1] = [(UP_A, &[(t + 1000, 2.0), (t + 2000, 3.0)])];
    assert_eq!(f.post(&several, None).await.0, 200);
    assert_eq!(f.post(&several, None).await.0, 409);
    assert_eq!(f.appended(), 4.0);
}

#[tokio::test]
async fn tenants_are_stored_separately_and_bad_tenants_answer_400() {
    let f = Fixture::new().await;
    let t = now_ms();
    assert_eq!(f.post(&[(UP_A, &[(t, 1.0)])], Some("team-a")).await.0, 200);
    assert_eq!(
        f.post(&[(UP_A, &[(t, 1.0)]), (UP_B, &[(t, 1.0)])], Some("team-b"))
            .await
            .0,
        200
    );
    // An empty header means the default tenant.
    assert_eq!(f.post(&[(UP_B, &[(t, 1.0)])], Some("")).await.0, 200);
    assert_eq!(f.series_of("team-a"), 1);
    assert_eq!(f.series_of("team-b"), 2);
    assert_eq!(f.series_of("default-tenant"), 1);
    for bad in ["..", "a/b", "../../etc"] {
        let (status, body) = f.post(&[(UP_A, &[(t + 1, 1.0)])], Some(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("invalid tenant"), "{body}");
    }
    assert_eq!(f.tenants.all().len(), 3);
    assert_eq!(
        f.metric(r#"trawl_collector_rejected_samples_total{reason="tenant"}"#),
        3.0
    );
}

#[tokio::test]
async fn configured_tenant_header_is_used() {
    let config = ReceiveConfig {
        tenant_header: "X-Scope-OrgID".into(),
        default_tenant: "anonymous".into(),
        ..ReceiveConfig::default()
    };
    let f = Fixture::with_config(config).await;
    let body = snappy(&proto(&[(UP_A, &[(now_ms(), 1.0)])]));
    let response = f
        .client
        .post(&f.url)
        .header("x-scope-orgid", "org-1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(f.post_raw(body, None).await.0, 200);
    assert_eq!(f.series_of("org-1"), 1);
    assert_eq!(f.series_of("anonymous"), 1);
}

#[tokio::test]
async fn not_ready_answers_503_and_stores_nothing() {
    let f = Fixture::new().await;
    f.receiver.set_ready(false);
    let (status, _) = f.post(&[(UP_A, &[(now_ms(), 1.0)])], None).await;
    assert_eq!(status, 503);
    assert_eq!(f.appended(), 0.0);
    f.receiver.set_ready(true);
    assert_eq!(f.post(&[(UP_A, &[(now_ms(), 1.0)])], None).await.0, 200);
    assert_eq!(f.metric(r#"trawl_collector_received_requests_total{code="503"}"#), 1.0);
}

#[tokio::test]
async fn request_limits_answer_413_and_head_series_limit_429() {
    let config = ReceiveConfig {
        limits: RequestLimits {
            series_limit: 2,
            samples_limit: 3,
            head_series_limit: 2,
        },
        ..ReceiveConfig::default()
    };
    let f = Fixture::with_config(config).await;
    let t = now_ms();
    let up_c: &[(&str, &str)] = &[("__name__", "up"), ("job", "c")];
    let (status, body) = f
        .post(&[(UP_A, &[(t, 1.0)]), (UP_B, &[(t, 1.0)]), (up_c, &[(t, 1.0)])], None)
        .await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = f
        .post(&[(UP_A, &[(t, 1.0), (t + 1, 1.0), (t + 2, 1.0), (t + 3, 1.0)])], None)
        .await;
    assert_eq!(status, 413);
    assert_eq!(f.appended(), 0.0);
    assert_eq!(
        f.metric(r#"trawl_collector_rejected_samples_total{reason="too_large"}"#),
        7.0
    );
    // Two series fill the head to its limit; the next request is refused whole.
    assert_eq!(f.post(&[(UP_A, &[(t, 1.0)]), (UP_B, &[(t, 1.0)])], None).await.0, 200);
    let (status, body) = f.post(&[(UP_A, &[(t + 1, 1.0)])], None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(f.appended(), 2.0);
}

#[tokio::test]
async fn metrics_start_at_zero_for_every_code_and_reason() {
    let f = Fixture::new().await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &f.registry).unwrap();
    for code in ["200", "400", "409", "413", "429", "500", "503"] {
        let line = format!("trawl_collector_received_requests_total{{code=\"{code}\"}} 0");
        assert!(text.contains(&line), "{line}");
    }
    for reason in [
        "out_of_order",
        "out_of_bounds",
        "duplicate",
        "invalid",
        "too_large",
        "tenant",
    ] {
        let line = format!("trawl_collector_rejected_samples_total{{reason=\"{reason}\"}} 0");
        assert!(text.contains(&line), "{line}");
    }
    assert!(text.contains("trawl_collector_received_samples_total 0"));
}
