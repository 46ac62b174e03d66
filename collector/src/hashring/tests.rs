//! Golden placements from Thanos's `pkg/receive/hashring_test.go` (the cases and their expected
//! owners, ported as tables), and the hashrings file refused in its broken and hostile forms.

use std::collections::{HashMap, HashSet};

use super::HashringError;
use super::config::{Algorithm, Endpoint, HashringConfig, TenantMatcher, parse};
use super::ring::{Hashrings, Ring, series_hash};

fn endpoints(addresses: &[&str]) -> Vec<Endpoint> {
    addresses
        .iter()
        .map(|a| Endpoint {
            address: (*a).to_owned(),
            az: String::new(),
        })
        .collect()
}

fn zoned(pairs: &[(&str, &str)]) -> Vec<Endpoint> {
    pairs
        .iter()
        .map(|(a, z)| Endpoint {
            address: (*a).to_owned(),
            az: (*z).to_owned(),
        })
        .collect()
}

fn ring_config(addresses: &[&str], tenants: &[&str], matcher: TenantMatcher) -> HashringConfig {
    HashringConfig {
        name: String::new(),
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        tenant_matcher: matcher,
        endpoints: endpoints(addresses),
        algorithm: None,
    }
}

/// `TestHashringGet`: which ring (and so which nodes) a tenant's series goes to, hashmod.
#[test]
fn tenants_pick_their_ring_as_thanos() {
    use TenantMatcher::{Exact, Glob};
    let labels = [("baz", "qux"), ("foo", "bar")];
    /// Case name, rings, tenant, the nodes it may land on (`None`: no ring serves it).
    type Case<'a> = (&'a str, Vec<HashringConfig>, &'a str, Option<Vec<&'a str>>);
    let cases: Vec<Case<'_>> = vec![
        (
            "simple",
            vec![ring_config(&["node1"], &[], Exact)],
            "",
            Some(vec!["node1"]),
        ),
        (
            "specific",
            vec![
                ring_config(&["node2"], &["tenant2"], Exact),
                ring_config(&["node1"], &[], Exact),
            ],
            "tenant2",
            Some(vec!["node2"]),
        ),
        (
            "many tenants",
            vec![
                ring_config(&["node1"], &["tenant1"], Exact),
                ring_config(&["node2"], &["tenant2"], Exact),
                ring_config(&["node3"], &["tenant3"], Exact),
            ],
            "tenant1",
            Some(vec!["node1"]),
        ),
        (
            "many tenants error",
            vec![
                ring_config(&["node1"], &["tenant1"], Exact),
                ring_config(&["node2"], &["tenant2"], Exact),
                ring_config(&["node3"], &["tenant3"], Exact),
            ],
            "tenant4",
            None,
        ),
        (
            "many nodes",
            vec![
                ring_config(&["node1", "node2", "node3"], &["tenant1"], Exact),
                ring_config(&["node4", "node5", "node6"], &[], Exact),
            ],
            "tenant1",
            Some(vec!["node1", "node2", "node3"]),
        ),
        (
            "many nodes default",
            vec![
                ring_config(&["node1", "node2", "node3"], &["tenant1"], Exact),
                ring_config(&["node4", "node5", "node6"], &[], Exact),
            ],
            "",
            Some(vec!["node4", "node5", "node6"]),
        ),
        (
            "glob hashring match",
            vec![
                ring_config(&["node1", "node2", "node3"], &["prefix*"], Glob),
                ring_config(&["node4", "node5", "node6"], &[], Exact),
            ],
            "prefix-1",
            Some(vec!["node1", "node2", "node3"]),
        ),
        (
            "glob hashring not match",
            vec![
                ring_config(&["node1", "node2", "node3"], &["prefix*"], Glob),
                ring_config(&["node4", "node5", "node6"], &[], Exact),
            ],
            "suffix-1",
            Some(vec!["node4", "node5", "node6"]),
        ),
        (
            "glob hashring multiple matches",
            vec![
                ring_config(&["node1", "node2", "node3"], &["t1-*", "t2", "t3-*"], Glob),
                ring_config(&["node4", "node5", "node6"], &[], Exact),
            ],
            "t2",
            Some(vec!["node1", "node2", "node3"]),
        ),
    ];
    for (name, configs, tenant, nodes) in cases {
        let rings = Hashrings::new(&configs, Algorithm::Hashmod, 1).unwrap();
        let hash = series_hash(tenant, &labels);
        match (rings.ring_for(tenant), nodes) {
            (Ok(ring), Some(nodes)) => {
                let owner = &ring.get_n(hash, 0).unwrap().address;
                assert!(nodes.contains(&owner.as_str()), "{name}: {owner} not in {nodes:?}");
            }
            (Err(HashringError::NoRing { .. }), None) => {}
            (other, nodes) => panic!("{name}: {other:?}, expected {nodes:?}"),
        }
    }
    // Thanos's "empty" case: no ring at all serves nothing.
    assert!(
        Hashrings::new(&[], Algorithm::Hashmod, 1)
            .unwrap()
            .ring_for("tenant1")
            .is_err()
    );
}

/// `TestKetamaHashringGet`: exact owners with 10 sections per node, tenant `tenant`.
#[test]
fn ketama_owners_match_thanos() {
    let cases: [(&str, &[&str], &str, usize, &str); 7] = [
        ("base case", &["node-1", "node-2", "node-3"], "nginx", 0, "node-2"),
        ("replication n=1", &["node-1", "node-2", "node-3"], "nginx", 1, "node-1"),
        ("replication n=2", &["node-1", "node-2", "node-3"], "nginx", 2, "node-3"),
        ("reordered nodes", &["node-1", "node-3", "node-2"], "nginx", 2, "node-3"),
        (
            "new node at beginning",
            &["node-0", "node-1", "node-2", "node-3"],
            "nginx",
            0,
            "node-2",
        ),
        (
            "new node at end",
            &["node-1", "node-2", "node-3", "node-4"],
            "nginx",
            0,
            "node-2",
        ),
        (
            "different series",
            &["node-1", "node-2", "node-3"],
            "thanos",
            0,
            "node-3",
        ),
    ];
    for (name, nodes, pod, n, want) in cases {
        let ring = Ring::with_sections(Algorithm::Ketama, endpoints(nodes), n + 1, 10).unwrap();
        let hash = series_hash("tenant", &[("pod", pod)]);
        assert_eq!(ring.get_n(hash, n).unwrap().address, want, "{name}");
        assert!(
            ring.get_n(hash, n + 1).is_none(),
            "{name}: beyond the replication factor"
        );
    }
}

/// `TestKetamaHashringBadConfigIsRejected` and `TestInvalidAZHashringCfg`.
#[test]
fn unusable_rings_are_refused_as_thanos() {
    let error = Ring::new(Algorithm::Ketama, endpoints(&["node-1"]), 2).unwrap_err();
    assert!(error.contains("cannot hold 2 replicas"), "{error}");
    let error = Ring::new(Algorithm::Hashmod, zoned(&[("a", "1"), ("b", "2")]), 2).unwrap_err();
    assert_eq!(
        error,
        "Hashmod algorithm does not support AZ aware hashring configuration. Either use Ketama or remove AZ configuration."
    );
    assert!(Ring::new(Algorithm::Hashmod, endpoints(&["a"]), 0).is_err());
}

/// Thanos's `makeSeries`: 10 000 series `{pod="nginx-<i>"}`.
fn pods() -> Vec<String> {
    (0..10_000).map(|i| format!("nginx-{i}")).collect()
}

/// Owner address → series (pod names) of tenant `tenant`, for `rf` replicas.
fn assign<'a>(pods: &'a [String], ring: &Ring, rf: usize) -> HashMap<String, HashSet<&'a str>> {
    let mut out: HashMap<String, HashSet<&str>> = HashMap::new();
    for pod in pods {
        let hash = series_hash("tenant", &[("pod", pod)]);
        for n in 0..rf {
            let owner = ring.get_n(hash, n).unwrap().address.clone();
            out.entry(owner).or_default().insert(pod);
        }
    }
    out
}

/// `TestKetamaHashringConsistency`, `…IncreaseAtEnd`, `…IncreaseInMiddle`,
/// `…ReplicationConsistency` and `…ReplicationConsistencyWithAZs`: after growing the ring, the
/// old nodes own no series they did not own before.
#[test]
fn ketama_growth_moves_series_only_to_new_nodes() {
    let pods = pods();
    let plain = |a: &[&str]| endpoints(a);
    let cases: Vec<(Vec<Endpoint>, Vec<Endpoint>, usize)> = vec![
        (
            plain(&["node-1", "node-2", "node-3"]),
            plain(&["node-1", "node-2", "node-3"]),
            1,
        ),
        (
            plain(&["node-1", "node-2", "node-3"]),
            plain(&["node-1", "node-2", "node-3", "node-4", "node-5"]),
            1,
        ),
        (plain(&["node-1", "node-3"]), plain(&["node-1", "node-2", "node-3"]), 1),
        (
            plain(&["node-1", "node-4", "node-5"]),
            plain(&["node-4", "node-3", "node-1", "node-2", "node-5"]),
            2,
        ),
        (
            zoned(&[("a", "1"), ("b", "2"), ("c", "3")]),
            zoned(&[("b", "2"), ("c", "3"), ("a", "1"), ("d", "2"), ("e", "4")]),
            3,
        ),
        (
            zoned(&[("a", "1"), ("b", "2"), ("c", "3")]),
            zoned(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "1"), ("e", "2"), ("f", "3")]),
            3,
        ),
        (
            zoned(&[("a", "1"), ("b", "2"), ("c", "3")]),
            zoned(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"), ("f", "6")]),
            3,
        ),
        (
            zoned(&[("a", "1"), ("b", "2"), ("c", "3")]),
            zoned(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"), ("f", "6")]),
            2,
        ),
        (
            zoned(&[("a", "1"), ("c", "2"), ("f", "3")]),
            zoned(&[("a", "1"), ("b", "1"), ("c", "2"), ("d", "2"), ("f", "3")]),
            2,
        ),
    ];
    for (i, (initial, resized, rf)) in cases.into_iter().enumerate() {
        let before = assign(&pods, &Ring::new(Algorithm::Ketama, initial.clone(), rf).unwrap(), rf);
        let after = assign(&pods, &Ring::new(Algorithm::Ketama, resized, rf).unwrap(), rf);
        for node in &initial {
            let old = before.get(&node.address).cloned().unwrap_or_default();
            let new = after.get(&node.address).cloned().unwrap_or_default();
            let gained = new.difference(&old).count();
            assert_eq!(gained, 0, "case {i}: {} gained {gained} series", node.address);
        }
    }
}

/// `TestKetamaHashringEvenAZSpread`: a series' replicas cover min(rf, zones) zones, evenly.
#[test]
fn ketama_spreads_replicas_over_zones() {
    let cases: Vec<(Vec<Endpoint>, usize)> = vec![
        (zoned(&[("a", "1"), ("b", "2"), ("c", "1"), ("d", "2")]), 1),
        (endpoints(&["a", "b", "c", "d"]), 1),
        (zoned(&[("a", "1"), ("b", "2"), ("c", "1"), ("d", "2")]), 2),
        (
            zoned(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "1"), ("e", "2"), ("f", "3")]),
            3,
        ),
        (endpoints(&["a", "b", "c", "d", "e", "f", "g"]), 3),
        (
            zoned(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "1"),
                ("e", "2"),
                ("f", "3"),
                ("g", "4"),
                ("h", "4"),
                ("i", "4"),
                ("j", "5"),
                ("k", "5"),
                ("l", "5"),
            ]),
            10,
        ),
    ];
    let hash = series_hash("default-tenant", &[("foo", "bar")]);
    for (i, (nodes, rf)) in cases.into_iter().enumerate() {
        let zones: HashSet<&str> = nodes.iter().map(|e| e.az.as_str()).collect();
        let ring = Ring::new(Algorithm::Ketama, nodes.clone(), rf).unwrap();
        let mut spread: HashMap<&str, i64> = HashMap::new();
        for n in 0..rf {
            let owner = ring.get_n(hash, n).unwrap();
            *spread.entry(owner.az.as_str()).or_default() += 1;
        }
        assert_eq!(spread.len(), rf.min(zones.len()), "case {i}: {spread:?}");
        let least = spread.values().min().copied().unwrap_or(0);
        assert!(spread.values().all(|v| v - least <= 1), "case {i}: {spread:?}");
    }
}

/// `TestKetamaHashringEvenNodeSpread`: every node holds within 10% of its fair share.
#[test]
fn ketama_spreads_series_evenly_over_nodes() {
    let nine = zoned(&[
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "2"),
        ("e", "1"),
        ("f", "3"),
        ("g", "1"),
        ("h", "2"),
        ("i", "3"),
    ]);
    let cases: Vec<(Vec<Endpoint>, usize, usize)> = vec![
        (zoned(&[("a", "1"), ("b", "2"), ("c", "1"), ("d", "2")]), 2, 1000),
        (endpoints(&["a", "b", "c", "d"]), 2, 1000),
        (
            zoned(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "2"), ("e", "1"), ("f", "3")]),
            3,
            10_000,
        ),
        (nine.clone(), 2, 10_000),
        (nine, 9, 10_000),
    ];
    for (i, (nodes, rf, series)) in cases.into_iter().enumerate() {
        let ring = Ring::new(Algorithm::Ketama, nodes.clone(), rf).unwrap();
        let optimal = (series * rf / nodes.len()) as f64;
        let mut spread: HashMap<&str, usize> = HashMap::new();
        for s in 0..series {
            let value = s.to_string();
            let hash = series_hash("default-tenant", &[("foo", &value)]);
            for n in 0..rf {
                *spread.entry(ring.get_n(hash, n).unwrap().address.as_str()).or_default() += 1;
            }
        }
        for (node, count) in spread {
            let diff = (count as f64 - optimal).abs() / optimal;
            assert!(diff < 0.1, "case {i}: {node} holds {count}, optimal {optimal}");
        }
    }
}

/// The owners of one series are `rf` distinct endpoints, for both algorithms.
#[test]
fn owners_are_distinct() {
    for algorithm in [Algorithm::Hashmod, Algorithm::Ketama] {
        let ring = Ring::new(algorithm, endpoints(&["a:1", "b:1", "c:1", "d:1"]), 3).unwrap();
        for s in 0..500 {
            let value = s.to_string();
            let hash = series_hash("t", &[("__name__", "up"), ("i", &value)]);
            let owners: HashSet<&str> = (0..3).map(|n| ring.get_n(hash, n).unwrap().address.as_str()).collect();
            assert_eq!(owners.len(), 3, "{algorithm:?}");
        }
    }
}

/// Hashmod is `(hash + n) mod len` over the endpoints sorted by address, whatever the file order.
#[test]
fn hashmod_sorts_endpoints_and_steps_by_one() {
    let ring = Ring::new(Algorithm::Hashmod, endpoints(&["c:1", "a:1", "b:1"]), 3).unwrap();
    let addresses: Vec<&str> = ring.endpoints().iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["a:1", "b:1", "c:1"]);
    let hash = series_hash("tenant", &[("pod", "nginx")]);
    for n in 0..3 {
        let want = addresses[((hash % 3 + n as u64) % 3) as usize];
        assert_eq!(ring.get_n(hash, n).unwrap().address, want);
    }
    assert!(ring.get_n(hash, 3).is_none());
    // u64 wrap-around as Go's: (MAX + 1) mod 3 == 0.
    assert_eq!(ring.get_n(u64::MAX, 1).unwrap().address, "a:1");
}

/// A ring of zones where Thanos's replica walk would never end still gets its owners.
#[test]
fn ketama_with_unbalanced_zones_terminates() {
    let ring = Ring::new(
        Algorithm::Ketama,
        zoned(&[("a", "1"), ("b", "2"), ("c", "2"), ("d", "2")]),
        4,
    )
    .unwrap();
    let owners: HashSet<&str> = (0..4).map(|n| ring.get_n(42, n).unwrap().address.as_str()).collect();
    assert_eq!(owners.len(), 4);
}

#[test]
fn the_file_is_read_in_thanos_shape() {
    let configs = parse(
        br#"[
          {"hashring": "tenant-a", "tenants": ["a"], "endpoints": ["c-0:19291", {"address": "c-1:19291", "az": "z1", "capnproto_address": "c-1:19391"}], "algorithm": "ketama"},
          {"hashring": "globs", "tenants": ["team-*"], "tenant_matcher_type": "glob", "endpoints": ["c-2:19291"]},
          {"endpoints": ["c-0:19291"]}
        ]"#,
    )
    .unwrap();
    assert_eq!(configs.len(), 3);
    assert_eq!(configs[0].algorithm, Some(Algorithm::Ketama));
    assert_eq!(configs[0].endpoints[1].az, "z1");
    assert_eq!(configs[1].tenant_matcher, TenantMatcher::Glob);
    assert!(configs[2].tenants.is_empty() && configs[2].algorithm.is_none());
    let rings = Hashrings::new(&configs, Algorithm::Hashmod, 1).unwrap();
    assert_eq!(rings.addresses(), ["c-0:19291", "c-1:19291", "c-2:19291"]);
    assert_eq!(rings.ring_for("team-x").unwrap().endpoints()[0].address, "c-2:19291");
    assert_eq!(rings.ring_for("other").unwrap().endpoints()[0].address, "c-0:19291");
}

#[test]
fn broken_and_hostile_files_are_refused_with_a_reason() {
    let huge = format!("[{{\"endpoints\": [{}]}}]", vec!["\"a:1\""; 300_000].join(","));
    let many = format!(
        "[{{\"endpoints\": [{}]}}]",
        (0..1001).map(|i| format!("\"n{i}:1\"")).collect::<Vec<_>>().join(",")
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, &str)> = vec![
        ("", "not a valid hashrings JSON"),
        ("{}", "not a valid hashrings JSON"),
        ("[", "not a valid hashrings JSON"),
        ("[]", "empty"),
        (r#"[{"tenants": ["a"]}]"#, "not a valid hashrings JSON"),
        (r#"[{"endpoints": []}]"#, "no endpoints"),
        (r#"[{"endpoints": [""]}]"#, "address must be set"),
        (r#"[{"endpoints": [{"az": "a"}]}]"#, "not a valid hashrings JSON"),
        (r#"[{"endpoints": ["http://a:1"]}]"#, "without scheme"),
        (r#"[{"endpoints": ["a:1/x"]}]"#, "without scheme"),
        (r#"[{"endpoints": ["a b:1"]}]"#, "without scheme"),
        (r#"[{"endpoints": ["a:99999"]}]"#, "not host:port"),
        (r#"[{"endpoints": ["a:1", "a:1"]}]"#, "listed twice"),
        (
            r#"[{"endpoints": ["a:1"], "algorithm": "round-robin"}]"#,
            "unknown algorithm",
        ),
        (
            r#"[{"endpoints": ["a:1"], "tenant_matcher_type": "regex"}]"#,
            "not a valid hashrings JSON",
        ),
        (
            r#"[{"endpoints": ["a:1"], "tenants": ["[x"], "tenant_matcher_type": "glob"}]"#,
            "unclosed",
        ),
        (
            r#"[{"endpoints": ["a:1"], "shuffle_sharding_config": {"shard_size": 1}}]"#,
            "not a valid hashrings JSON",
        ),
        (r#"[{"endpoints": [7]}]"#, "not a valid hashrings JSON"),
        (&huge, "above the limit"),
        (&many, "1001 endpoints"),
        (&deep, "not a valid hashrings JSON"),
    ];
    for (content, says) in cases {
        let error = parse(content.as_bytes()).map(|_| ()).unwrap_err();
        let text = trawl_process::error_chain(&error);
        assert!(text.contains(says), "{:.80}: {text}", content);
    }
    // A ring that cannot hold the replication factor is refused when the rings are built.
    let configs = parse(br#"[{"hashring": "small", "endpoints": ["a:1", "b:1"]}]"#).unwrap();
    let error = Hashrings::new(&configs, Algorithm::Ketama, 3).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("\"small\": 2 endpoints cannot hold 3 replicas"),
        "{error}"
    );
}
