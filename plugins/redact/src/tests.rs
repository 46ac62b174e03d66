use super::*;
use serde_json::json;
use trawl_plugin_sdk::Stage;
use trawl_plugin_sdk::testing::{Harness, HarnessError, Verdict};

fn config_error(config: serde_json::Value) -> String {
    match Harness::<Redact>::new(config.clone()) {
        Err(HarnessError::InvalidConfig(message)) => message,
        Err(other) => panic!("{config}: {other}"),
        Ok(_) => panic!("{config}: accepted"),
    }
}

const INPUT: &str = "\
logins_total{email=\"alice@example.com\",user_id=\"42\"} 3
logins_total{email=\"bob@example.com\"} 1
up 1
";

// sha256("pepper" ‖ value), from Python's hashlib.
const ALICE: &str = "8b8d9adc4875c0dca816e3e17b7ac87b45e40945b731fa02e3b42bf101589e21";
const BOB: &str = "40f27281a6f2d75f9690f415970debe57e538178a2ef93d532ee09f0fb0c90da";

#[test]
fn hashes_with_the_salt_and_drops() {
    let mut h = Harness::<Redact>::new(json!({
        "hash": ["email"], "drop": ["user_id"], "salt": "pepper"
    }))
    .unwrap();
    let out = h.run(Stage::Relabel, INPUT).unwrap();
    assert_eq!(
        out.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            format!("logins_total{{email=\"{}\"}} 3", &ALICE[..16]),
            format!("logins_total{{email=\"{}\"}} 1", &BOB[..16]),
            "up 1".to_owned(),
        ]
    );
    assert_eq!(out[2].verdict, Verdict::Keep);
    // Same value, same digest, on a later batch (from the cache) and in another stage.
    assert_eq!(
        h.kept(Stage::Filter, "other{email=\"alice@example.com\"} 1").unwrap(),
        [format!("other{{email=\"{}\"}} 1", &ALICE[..16])]
    );
}

#[test]
fn hash_length_sets_the_digits_kept() {
    for length in [8, 64] {
        let mut h = Harness::<Redact>::new(json!({
            "hash": ["email"], "salt": "pepper", "hash_length": length
        }))
        .unwrap();
        let out = h.run(Stage::Write, INPUT).unwrap();
        assert_eq!(out[0].get("email"), Some(&ALICE[..length]));
        assert_eq!(out[0].get("user_id"), Some("42"));
    }
}

#[test]
fn the_salt_changes_every_digest() {
    let run = |salt: &str| {
        Harness::<Redact>::new(json!({"hash": ["email"], "salt": salt}))
            .unwrap()
            .run(Stage::Relabel, INPUT)
            .unwrap()[0]
            .get("email")
            .map(str::to_owned)
    };
    assert_ne!(run("pepper"), run("paprika"));
}

#[test]
fn the_digest_cache_stays_bounded_and_correct() {
    let mut cache = HashMap::new();
    for i in 0..DIGEST_CACHE_LIMIT + 5 {
        digest(&mut cache, "pepper", 16, &i.to_string());
    }
    assert!(cache.len() <= DIGEST_CACHE_LIMIT);
    assert_eq!(
        digest(&mut cache, "pepper", 64, "42"),
        "93ca73bec2907ec825519db1f7ee28cb033d71c83d14b76ef78b0c4e64566e6e"
    );
}

#[test]
fn broken_configs_are_rejected_with_the_key() {
    for (config, expect) in [
        (json!({}), "nothing to redact"),
        (json!(["email"]), "JSON object"),
        (json!({"labels": ["email"]}), "unknown field `labels`"),
        (json!({"hash": ["email"]}), "salt: required"),
        (json!({"hash": ["email"], "salt": ""}), "salt: required"),
        (
            json!({"hash": ["e-mail"], "salt": "s"}),
            "hash: invalid label name \"e-mail\"",
        ),
        (json!({"drop": ["__name__"]}), "drop: __name__ cannot be redacted"),
        (json!({"hash": ["a"], "drop": ["a"], "salt": "s"}), "\"a\" is in both"),
        (json!({"hash": ["a"], "salt": "s", "hash_length": 7}), "hash_length: 7"),
        (
            json!({"hash": ["a"], "salt": "s", "hash_length": 65}),
            "hash_length: 65",
        ),
        (json!({"hash": ["a"], "salt": "s", "hash_length": -1}), "invalid value"),
        (json!({"hash": "email", "salt": "s"}), "invalid type"),
    ] {
        let message = config_error(config.clone());
        assert!(message.contains(expect), "{config}: {message}");
    }
}

#[test]
fn drop_only_needs_no_salt() {
    let mut h = Harness::<Redact>::new(json!({"drop": ["email", "user_id"]})).unwrap();
    assert_eq!(
        h.kept(Stage::Relabel, INPUT).unwrap(),
        ["logins_total 3", "logins_total 1", "up 1"]
    );
}
