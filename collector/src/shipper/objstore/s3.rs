//! The `object_store` S3 client for an [`S3Config`]: endpoint and addressing style, credentials
//! from the file or the environment, TLS settings.

use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};

use super::{BucketLookup, S3Config};

/// object_store's HTTP client is reqwest built with `rustls-no-provider`: building it without a
/// process-wide rustls provider panics. Installs ring's (the only one linked); an `Err` means a
/// provider is already installed, which is kept.
pub fn install_rustls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Environment keys used when the file has no static credentials: the credential chain and the
/// region fallback, nothing that changes addressing or signing.
fn is_credential_env_key(key: &AmazonS3ConfigKey) -> bool {
    use AmazonS3ConfigKey as K;
    matches!(
        key,
        K::AccessKeyId
            | K::SecretAccessKey
            | K::Token
            | K::ImdsV1Fallback
            | K::MetadataEndpoint
            | K::ContainerCredentialsRelativeUri
            | K::ContainerCredentialsFullUri
            | K::ContainerAuthorizationTokenFile
            | K::WebIdentityTokenFile
            | K::RoleArn
            | K::RoleSessionName
            | K::StsEndpoint
    )
}

/// `true` when `bucket_lookup_type: auto` means virtual-hosted: an AWS endpoint and a bucket name
/// valid as a DNS label under TLS (minio-go `IsVirtualHostSupported`).
fn auto_is_virtual_hosted(endpoint: &str, bucket: &str) -> bool {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _port)| host);
    host.ends_with(".amazonaws.com") && !bucket.contains('.')
}

/// The S3 client settings for `cfg`; `env` is the process environment (injected for tests).
pub(crate) fn s3_builder(
    cfg: &S3Config,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<AmazonS3Builder, Box<dyn std::error::Error + Send + Sync>> {
    let mut builder = AmazonS3Builder::new();
    let mut env_region = None;
    for (name, value) in env {
        if !name.starts_with("AWS_") {
            continue;
        }
        let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() else {
            continue;
        };
        match key {
            AmazonS3ConfigKey::Region => env_region = Some(value),
            AmazonS3ConfigKey::DefaultRegion => _ = env_region.get_or_insert(value),
            key if cfg.credentials.is_none() && is_credential_env_key(&key) => {
                builder = builder.with_config(key, value)
            }
            _ => {}
        }
    }
    if let Some(creds) = &cfg.credentials {
        builder = builder
            .with_access_key_id(&creds.access_key)
            .with_secret_access_key(&creds.secret_key);
        if let Some(token) = &creds.session_token {
            builder = builder.with_token(token);
        }
    }
    if let Some(sts) = &cfg.sts_endpoint {
        builder = builder.with_config(AmazonS3ConfigKey::StsEndpoint, sts);
    }
    let region = cfg
        .region
        .clone()
        .or(env_region)
        .unwrap_or_else(|| "us-east-1".to_owned());
    let scheme = if cfg.insecure { "http" } else { "https" };
    let virtual_hosted = match cfg.bucket_lookup {
        BucketLookup::Path => false,
        BucketLookup::VirtualHosted => true,
        BucketLookup::Auto => auto_is_virtual_hosted(&cfg.endpoint, &cfg.bucket),
    };
    // object_store expects the bucket inside a virtual-hosted endpoint and appends it otherwise.
    let endpoint = match virtual_hosted {
        true => format!("{scheme}://{}.{}", cfg.bucket, cfg.endpoint),
        false => format!("{scheme}://{}", cfg.endpoint),
    };
    let mut client = ClientOptions::new()
        .with_allow_http(cfg.insecure)
        .with_allow_invalid_certificates(cfg.insecure_skip_verify);
    if let Some(ca_file) = &cfg.ca_file {
        let pem = std::fs::read(ca_file).map_err(|e| format!("read ca_file {}: {e}", ca_file.display()))?;
        for cert in Certificate::from_pem_bundle(&pem)? {
            client = client.with_root_certificate(cert);
        }
    }
    // object_store retries each request too; keep that short, the shipper's backoff does the rest.
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
    };
    Ok(builder
        .with_bucket_name(&cfg.bucket)
        .with_region(region)
        .with_endpoint(endpoint)
        .with_virtual_hosted_style_request(virtual_hosted)
        .with_client_options(client)
        .with_retry(retry))
}
