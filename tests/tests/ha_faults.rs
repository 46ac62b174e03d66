//! Redundancy under faults (issue 6): three collectors, each in its own network namespace, share
//! one hashring and one filesystem bucket; one agent scrapes a real node_exporter (through a
//! counting proxy) and synthetic targets whose counters are unique per scrape, and writes to the
//! three collectors (`url:` lists all of them, c0 first). Each scenario injects one fault, then
//! stops everything cleanly and proves with `trawl-collector tools bucket verify
//! --deduplication.replica-label=replica` that every sample the targets served is in the bucket,
//! printing the counts and the failover time. The fleet, the accounting and the pictures' parts
//! are in `tests/src/ha/`. Root is needed (network namespaces).
//!
//! Runs in parallel (about five minutes with two test threads); `cargo test -p trawl-e2e --test
//! ha_faults -- --nocapture` shows the figures.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, ensure};
use trawl_e2e::ha::cluster::{FAILOVERS_METRIC, tail};
use trawl_e2e::ha::{Cluster, ScenarioSpec};

/// Synthetic load: 4 targets × 50 series, every second. `TRAWL_HA_WITHOUT_HASHRING=1` runs
/// every scenario without a hashring (the agent's failover alone).
fn spec(name: &'static str, replication_factor: usize, block_duration: &'static str) -> ScenarioSpec {
    let hashring = std::env::var_os("TRAWL_HA_WITHOUT_HASHRING").is_none();
    ScenarioSpec {
        name,
        replication_factor: hashring.then_some(replication_factor),
        block_duration,
        algorithm: None,
        synthetic_targets: 4,
        series_per_target: 50,
    }
}

/// Ingest time before a fault and after the fleet is whole again.
const STEADY: Duration = Duration::from_secs(20);

/// Stops the fleet, verifies the bucket (nothing lost, no problem) and that blocks came from all
/// three replicas.
async fn finish_with_all_replicas(cluster: Cluster) -> Result<()> {
    let outcome = cluster.finish().await?;
    outcome.check()?;
    ensure!(
        outcome.replicas == 3,
        "blocks from {} replicas, want 3",
        outcome.replicas
    );
    Ok(())
}

/// How long before and after a fault the agent's acknowledgements are watched for stalls.
const STALL_WINDOW: Duration = Duration::from_secs(15);

/// Waits for the first acknowledged batch after `fault`, then for [`STALL_WINDOW`], and prints
/// the failover time: the longest stall of acknowledgements after the fault, next to the
/// longest one before it (batching alone). Returns the first.
async fn report_failover(cluster: &Cluster, fault: Instant) -> Result<Duration> {
    let first_ack = cluster.probe.first_ack_after(fault, Duration::from_secs(60)).await;
    let Some(first_ack) = first_ack else {
        anyhow::bail!(
            "no batch acknowledged within 60 s of the fault; agent log:\n{}",
            tail(&cluster.agent.logs(), 40)
        );
    };
    tokio::time::sleep_until((fault + STALL_WINDOW).into()).await;
    let after = cluster.probe.longest_stall(fault, fault + STALL_WINDOW);
    let before = cluster.probe.longest_stall(fault - STALL_WINDOW, fault);
    // `+ 0.0` turns the empty sum's -0 into 0.
    let failovers = cluster.agent_metric(FAILOVERS_METRIC).await + 0.0;
    println!(
        "[{}] failover: first acknowledged batch {:.2} s after the fault; longest stall of \
         acknowledgements {:.2} s in the {} s after it ({:.2} s in the {} s before); agent \
         failovers_total {failovers}",
        cluster.spec.name,
        first_ack.as_secs_f64(),
        after.as_secs_f64(),
        STALL_WINDOW.as_secs(),
        before.as_secs_f64(),
        STALL_WINDOW.as_secs(),
    );
    Ok(after)
}

/// ```text
///  synthetic ×4 ─┐                         ┌─► c0 ──kill -9── (20 s) ──restart (WAL replay)
///  node_exporter ┼─◄ scrape ─ agent ───────┼─► c1           RF = 3: every series on c0, c1, c2
///   (via proxy) ─┘  url: [c0, c1, c2]      └─► c2           quorum 2 ──► shared bucket
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_one_collector_mid_ingest_rf3() -> Result<()> {
    kill_9_one_collector(spec("a-kill9-rf3", 3, "2m")).await
}

async fn kill_9_one_collector(spec: ScenarioSpec) -> Result<()> {
    let mut cluster = Cluster::start(spec).await?;
    tokio::time::sleep(STEADY).await;

    let fault = Instant::now();
    cluster.collectors[0].kill9()?;
    let failover = report_failover(&cluster, fault).await?;
    tokio::time::sleep(STEADY.saturating_sub(fault.elapsed())).await;
    cluster.collectors[0].restart().await?;
    tokio::time::sleep(STEADY).await;

    finish_with_all_replicas(cluster).await?;
    ensure!(failover < Duration::from_secs(10), "failover took {failover:?}");
    Ok(())
}

/// ```text
///  synthetic ×4 ─┐                         ┌─► c0 ──kill -9── (20 s) ──restart (WAL replay)
///  node_exporter ┼─◄ scrape ─ agent ───────┼─► c1           no hashring: each collector stores
///   (via proxy) ─┘  url: [c0, c1, c2]      └─► c2           what it got ──► shared bucket
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_one_collector_mid_ingest_without_hashring() -> Result<()> {
    let mut spec = spec("a-kill9-nohashring", 1, "2m");
    spec.replication_factor = None;
    kill_9_one_collector(spec).await
}

/// ```text
///  synthetic ×4 ─┐                         ┌─► c0 ══╳══ link down for 60 s, then back
///  node_exporter ┼─◄ scrape ─ agent ───────┼─► c1           RF = 3, quorum 2
///   (via proxy) ─┘  url: [c0, c1, c2]      └─► c2           ──► shared bucket
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_cut_one_collector_off_the_network_rf3() -> Result<()> {
    cut_one_collector(spec("b-netcut-rf3", 3, "2m")).await
}

/// ```text
///  synthetic ×4 ─┐                         ┌─► c0 ══╳══ link down for 60 s, then back
///  node_exporter ┼─◄ scrape ─ agent ───────┼─► c1           RF = 2 (ketama), quorum 2: a series
///   (via proxy) ─┘  url: [c0, c1, c2]      └─► c2           owned by c0 waits in the agent's
///                                                           disk queue until c0 is back
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_cut_one_collector_off_the_network_rf2() -> Result<()> {
    let mut spec = spec("b-netcut-rf2", 2, "4m");
    spec.algorithm = Some("ketama");
    cut_one_collector(spec).await
}

async fn cut_one_collector(spec: ScenarioSpec) -> Result<()> {
    let rf = spec.replication_factor;
    let cluster = Cluster::start(spec).await?;
    tokio::time::sleep(STEADY).await;

    let fault = Instant::now();
    cluster.net.cut(0)?;
    // At RF = 2 the quorum is both owners: writes wait for c0, there is no failover to time.
    let failover = if rf.is_none_or(|rf| rf >= 3) {
        Some(report_failover(&cluster, fault).await?)
    } else {
        None
    };
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(fault.elapsed())).await;
    cluster.net.restore(0)?;
    let restored = Instant::now();
    let drained = cluster
        .wait_caught_up(SystemTime::now(), Duration::from_secs(180))
        .await?;
    println!(
        "[{}] c0 cut for {:.0} s; agent backlog drained {:.1} s after the link came back",
        cluster.spec.name,
        restored.duration_since(fault).as_secs_f64(),
        drained.as_secs_f64()
    );
    tokio::time::sleep(STEADY).await;

    finish_with_all_replicas(cluster).await?;
    if let Some(failover) = failover {
        ensure!(failover < Duration::from_secs(10), "failover took {failover:?}");
    }
    Ok(())
}

/// ```text
///  synthetic ×4 ─┐                         ┌─► c0 ─┐
///  node_exporter ┼─◄ scrape ─ agent ───────┼─► c1 ─┼─ all SIGTERM'd, down 120 s, restarted
///   (via proxy) ─┘  │                      └─► c2 ─┘  RF = 3
///                   └─ kill -9 at +40 s, restarted at +50 s: scrapes pile up in its disk queue
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_all_collectors_down_two_minutes_agent_kill_9_rf3() -> Result<()> {
    // Heads refuse samples older than half a block behind their newest one: the backlog of a
    // two-minute outage needs blocks longer than four minutes.
    let mut cluster = Cluster::start(spec("c-outage-rf3", 3, "10m")).await?;
    tokio::time::sleep(STEADY).await;

    let down = Instant::now();
    for collector in &mut cluster.collectors {
        collector.terminate(Duration::from_secs(120))?;
    }
    tokio::time::sleep(Duration::from_secs(40).saturating_sub(down.elapsed())).await;
    cluster.kill9_agent()?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    cluster.agent.restart().await?;
    tokio::time::sleep(Duration::from_secs(120).saturating_sub(down.elapsed())).await;

    let pending = cluster.agent_metric(trawl_e2e::ha::cluster::PENDING_METRIC).await;
    let up = Instant::now();
    let up_wall = SystemTime::now();
    for collector in &mut cluster.collectors {
        collector.restart().await?;
    }
    let first = cluster.probe.first_ack_after(up, Duration::from_secs(60)).await;
    cluster.wait_caught_up(up_wall, Duration::from_secs(300)).await?;
    let drained = up.elapsed();
    println!(
        "[{}] collectors down {:.0} s; agent pending {pending} samples before restart; first ack {} and \
         backlog drained {:.1} s after the restart",
        cluster.spec.name,
        up.duration_since(down).as_secs_f64(),
        first.map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        drained.as_secs_f64(),
    );
    tokio::time::sleep(STEADY).await;

    finish_with_all_replicas(cluster).await?;
    Ok(())
}
