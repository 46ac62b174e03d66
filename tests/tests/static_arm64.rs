//! The static musl release binaries as a plain host runs them: the `aarch64-unknown-linux-musl`
//! agent under qemu-user (Debian `qemu-user-static`), the `x86_64-unknown-linux-musl` one
//! natively. Each scrapes node_exporter and itself, runs a Wasm plugin (Cranelift compiling for
//! the emulated CPU), and remote-writes into a real Prometheus 2.42 receiver, which the test
//! queries. The binaries come from `examples/lib/static-build.sh` (tests/run builds them first).
//!
//! ```text
//!  node_exporter ──┐    trawl-agent (static musl;            remote write
//!                  ├──► aarch64 under qemu-aarch64-static ─────────────────► Prometheus 2.42
//!  agent /metrics ─┘    or x86_64 natively)                                   (receiver)
//!                        relabel: add-labels {arch: …}
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use trawl_e2e::wasm::example_plugin;
use trawl_e2e::{Proc, Prometheus, eventually, free_port, label_map, node_exporter, system_bin, wait_http_ok};

/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;
/// ELF `e_machine` of x86-64.
const EM_X86_64: u16 = 62;
/// Program header type of the dynamic loader's path: a static binary has none.
const PT_INTERP: u32 = 3;

/// `<dir>/static/<target>/<name>` where `dir` is `$TRAWL_STATIC_TARGET_DIR` or, as in
/// `examples/lib/static-build.sh`, `~/.cache/trawl-static-target`.
fn static_bin(target: &str, name: &str) -> PathBuf {
    let dir = std::env::var_os("TRAWL_STATIC_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/trawl-static-target")
        });
    let path = dir.join("static").join(target).join(name);
    assert!(
        path.is_file(),
        "{} missing: run `examples/lib/static-build.sh {target}` first (tests/run does)",
        path.display()
    );
    path
}

/// The ELF header facts the test relies on: `e_machine`, and whether a program header names a
/// dynamic loader (`PT_INTERP`). Only 64-bit little-endian files are accepted.
fn elf_machine_and_interp(path: &Path) -> Result<(u16, bool)> {
    let elf = std::fs::read(path)?;
    ensure!(
        elf.len() >= 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "{}: not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let mut phoff = [0; 8];
    phoff.copy_from_slice(&elf[32..40]);
    let (phoff, phentsize, phnum) = (u64::from_le_bytes(phoff), u16_at(54), u16_at(56));
    let mut interp = false;
    for i in 0..u64::from(phnum) {
        let past_end = || anyhow::anyhow!("{}: program header past the end of the file", path.display());
        let at = usize::try_from(phoff.checked_add(i * u64::from(phentsize)).ok_or_else(past_end)?)?;
        let p_type = elf.get(at..at.saturating_add(4)).ok_or_else(past_end)?;
        interp |= u32::from_le_bytes(p_type.try_into()?) == PT_INTERP;
    }
    Ok((u16_at(18), interp))
}

/// Runs the scenario with the agent built for `target`, started as `launcher agent …` when a
/// launcher (qemu) is given.
async fn agent_scrapes_and_remote_writes(target: &str, machine: u16, launcher: Option<PathBuf>) -> Result<()> {
    let agent_bin = static_bin(target, "trawl-agent");
    let (found, interp) = elf_machine_and_interp(&agent_bin)?;
    assert_eq!(found, machine, "{}: e_machine", agent_bin.display());
    assert!(!interp, "{}: has a dynamic loader (PT_INTERP)", agent_bin.display());
    let arch = target.split('-').next().unwrap_or(target);

    let add_labels = example_plugin("add-labels")?;
    let dir = tempfile::tempdir()?;
    let prom = Prometheus::receiver(dir.path(), "global:\n  scrape_interval: 1h\n").await?;
    let (_node, node_address) = node_exporter(dir.path()).await?;
    let agent_address = format!("127.0.0.1:{}", free_port());
    let config = format!(
        r#"global: {{scrape_interval: 1s, scrape_timeout: 1s, external_labels: {{agent: static}}}}
plugins:
  - name: arch
    path: {add_labels}
    config: {{labels: {{arch: {arch}}}}}
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ['{node_address}']}}]
    plugins: [{{name: arch, stage: relabel}}]
  - job_name: agent
    static_configs: [{{targets: ['{agent_address}']}}]
remote_write:
  - url: {receiver}/api/v1/write
    queue_config: {{batch_send_deadline: 1s}}
"#,
        add_labels = add_labels.display(),
        receiver = prom.url,
    );
    let config_file = dir.path().join("agent.yml");
    std::fs::write(&config_file, config)?;
    let mut args: Vec<String> = launcher.iter().map(|_| agent_bin.display().to_string()).collect();
    args.extend([
        format!("--config.file={}", config_file.display()),
        format!("--web.listen-address={agent_address}"),
        format!("--storage.path={}", dir.path().join("agent-data").display()),
        "--runtime.worker-threads=2".to_owned(),
    ]);
    let program = launcher.as_deref().unwrap_or(&agent_bin);
    let mut agent = Proc::start("trawl-agent", program, &args, dir.path())?;
    wait_http_ok(&format!("http://{agent_address}/-/ready"), Duration::from_secs(60))
        .await
        .with_context(|| agent.log())?;

    eventually("up == 1 for node and agent", Duration::from_secs(60), || async {
        let up = prom.query("up == 1").await?;
        Ok((up.len() == 2).then_some(()))
    })
    .await
    .with_context(|| agent.log())?;

    // node_exporter's series arrived through the plugin, with the external label.
    let node_series = eventually("node_exporter's series", Duration::from_secs(30), || async {
        let series = prom.series(r#"{job="node",__name__=~"node_.*"}"#).await?;
        Ok((series.len() > 100).then_some(series))
    })
    .await
    .with_context(|| agent.log())?;
    for labels in node_series.iter().map(label_map) {
        if labels.get("arch").map(String::as_str) != Some(arch)
            || labels.get("agent").map(String::as_str) != Some("static")
        {
            bail!("{target}: series without arch={arch} or agent=static: {labels:?}");
        }
    }
    let uname = prom.query(r#"node_uname_info{job="node"}"#).await?;
    assert_eq!(uname.len(), 1, "{uname:?}");
    assert_eq!(uname[0]["metric"]["instance"], node_address.as_str());

    // The agent's own metrics arrived too: its HTTP server and exposition work on this build.
    let own = prom.series(r#"{job="agent"}"#).await?;
    assert!(
        own.len() > 10,
        "{target}: only {} series of the agent itself",
        own.len()
    );
    assert!(
        own.iter().all(|s| s.get("arch").is_none()),
        "the plugin is only on the node job"
    );

    agent.check_running()?;
    assert_eq!(agent.terminate(Duration::from_secs(40))?, 0, "{}", agent.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aarch64_musl_agent_under_qemu_scrapes_and_remote_writes() -> Result<()> {
    let qemu = system_bin("qemu-aarch64-static", "qemu-user-static");
    agent_scrapes_and_remote_writes("aarch64-unknown-linux-musl", EM_AARCH64, Some(qemu)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x86_64_musl_agent_scrapes_and_remote_writes() -> Result<()> {
    if !cfg!(target_arch = "x86_64") {
        bail!("this scenario runs the x86_64 musl binary natively: run it on an x86_64 host");
    }
    agent_scrapes_and_remote_writes("x86_64-unknown-linux-musl", EM_X86_64, None).await
}

#[test]
fn elf_reader_refuses_non_elf_and_truncated_files() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text = dir.path().join("text");
    std::fs::write(
        &text,
        "#!/bin/sh\necho not an ELF file, but long enough to be read as one....\n",
    )?;
    assert!(elf_machine_and_interp(&text).is_err());
    // An ELF header that promises a program header table past the end of the file.
    let mut truncated = vec![0u8; 64];
    truncated[..6].copy_from_slice(b"\x7fELF\x02\x01");
    truncated[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    truncated[32..40].copy_from_slice(&4096u64.to_le_bytes());
    truncated[54..56].copy_from_slice(&56u16.to_le_bytes());
    truncated[56..58].copy_from_slice(&1u16.to_le_bytes());
    let path = dir.path().join("truncated");
    std::fs::write(&path, &truncated)?;
    assert!(elf_machine_and_interp(&path).is_err());
    // With no program headers it reads the machine and finds no loader.
    truncated[56..58].copy_from_slice(&0u16.to_le_bytes());
    std::fs::write(&path, &truncated)?;
    assert_eq!(elf_machine_and_interp(&path)?, (EM_AARCH64, false));
    Ok(())
}
