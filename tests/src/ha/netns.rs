//! Network namespaces for the fault scenarios: a bridge in the root namespace and one namespace
//! per collector, joined to the bridge by a veth pair. Processes in the root namespace (the agent,
//! the test) reach namespace `i` at `10.A.B.(i + 2)`; the namespaces reach each other over the
//! bridge (layer 2, no IP forwarding needed). Cutting namespace `i` sets its root-side veth down:
//! its carrier drops on both ends, so packets to and from it are lost and peers see timeouts, as
//! with a pulled cable (the kernel here has no `netem`).
//!
//! Names embed the test process id (`tw<pid>n<index>…`, at most 15 bytes as Linux wants for
//! links), so concurrent runs do not collide, and leftovers of a killed run are recognised and
//! removed by the next one. Everything is removed when the [`Network`] is dropped.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

/// Networks created by this process so far; numbers the names and picks the subnet.
static NEXT_INDEX: AtomicU32 = AtomicU32::new(0);

/// A bridge in the root namespace with `size` namespaces attached; removed on drop.
#[derive(Debug)]
pub struct Network {
    /// `tw<pid>n<index>`: the bridge's name and the prefix of every other name.
    base: String,
    /// The first two octets after `10.`: the subnet is `10.a.b.0/24`.
    subnet: (u8, u8),
    size: usize,
}

/// Runs `ip args…`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run ip (package iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Runs `ip args…` and returns its stdout.
fn ip_output(args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The process id in a name made by [`Network`] (`tw<pid>n<index>[h<i>|c<i>]`), or `None` for
/// any other name.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("tw")?;
    let (pid, rest) = rest.split_once('n')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) {
        return None;
    }
    let index_end = rest.find(['h', 'c']).unwrap_or(rest.len());
    let (index, suffix) = rest.split_at(index_end);
    let suffix_ok = suffix.is_empty() || digits(&suffix[1..]);
    (digits(index) && suffix_ok).then(|| pid.parse().ok()).flatten()
}

/// Removes links and namespaces left by test processes that no longer run (a test killed before
/// its drop guards ran).
fn remove_stale() {
    let dead = |name: &str| owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
    if let Ok(list) = ip_output(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if dead(name) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip_output(&["-o", "link", "show"]) {
        // "7: tw123n0h1@if6: <…>": the name is the second field, before any '@'.
        for name in list.lines().filter_map(|l| l.split(": ").nth(1)?.split('@').next()) {
            if dead(name) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// Whether some interface of the root namespace already has an address in `10.a.b.0/24`.
fn subnet_in_use(a: u8, b: u8) -> bool {
    ip_output(&["-4", "-o", "addr", "show"]).is_ok_and(|out| out.contains(&format!(" 10.{a}.{b}.")))
}

impl Network {
    /// Creates the bridge (`10.a.b.1/24`) and `size` namespaces (`10.a.b.(i + 2)/24` on their
    /// `eth0`, loopback up). Needs root (CAP_NET_ADMIN). Fails if any step fails, removing what
    /// was made.
    pub fn create(size: usize) -> Result<Network> {
        if size == 0 || size > 200 {
            bail!("a network holds 1 to 200 namespaces, not {size}");
        }
        remove_stale();
        let pid = std::process::id();
        let mut index = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
        // 10.(200 + pid % 50).(index % 250): skip subnets another run is using.
        let a = 200 + (pid % 50) as u8;
        while subnet_in_use(a, (index % 250) as u8) {
            index = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
            if index > 1000 {
                bail!("no free subnet 10.{a}.x.0/24");
            }
        }
        let network = Network {
            base: format!("tw{pid}n{index}"),
            subnet: (a, (index % 250) as u8),
            size,
        };
        // On an error, the drop removes the parts already made.
        network.build()?;
        Ok(network)
    }

    fn build(&self) -> Result<()> {
        let bridge = &self.base;
        ip(&["link", "add", bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", self.host_address()), "dev", bridge])?;
        ip(&["link", "set", bridge, "up"])?;
        for i in 0..self.size {
            let ns = self.namespace(i);
            let host = self.host_veth(i);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &host, "master", bridge])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.address(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// Number of namespaces.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The bridge's address, `10.a.b.1`: the root namespace as the namespaces see it.
    pub fn host_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 1)
    }

    /// The address of namespace `i`, `10.a.b.(i + 2)`.
    pub fn address(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, (i + 2) as u8)
    }

    /// The name of namespace `i`, `tw<pid>n<index>c<i>`.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}c{i}", self.base)
    }

    /// The root-side end of namespace `i`'s veth pair, `tw<pid>n<index>h<i>`.
    fn host_veth(&self, i: usize) -> String {
        format!("{}h{i}", self.base)
    }

    /// The program and arguments that run `program args…` inside namespace `i`
    /// (`ip netns exec`, which execs: the child's pid is the program's).
    pub fn exec_in(&self, i: usize, program: &str, args: &[String]) -> (String, Vec<String>) {
        let mut all = vec![
            "netns".to_owned(),
            "exec".to_owned(),
            self.namespace(i),
            program.to_owned(),
        ];
        all.extend_from_slice(args);
        ("ip".to_owned(), all)
    }

    /// Cuts namespace `i` off the network (its veth goes down on both ends).
    pub fn cut(&self, i: usize) -> Result<()> {
        ip(&["link", "set", &self.host_veth(i), "down"])
    }

    /// Reconnects namespace `i` after [`Network::cut`].
    pub fn restore(&self, i: usize) -> Result<()> {
        ip(&["link", "set", &self.host_veth(i), "up"])
    }

    /// Whether namespace `i`'s root-side veth is up (not cut).
    pub fn is_connected(&self, i: usize) -> Result<bool> {
        let out = ip_output(&["-o", "link", "show", &self.host_veth(i)])?;
        Ok(out.contains(",UP") || out.contains("<UP"))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end and so the pair; delete the root end too in
        // case a process still holds the namespace open.
        for i in 0..self.size {
            let _ = ip(&["link", "del", &self.host_veth(i)]);
            let _ = ip(&["netns", "del", &self.namespace(i)]);
        }
        let _ = ip(&["link", "del", &self.base]);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use super::*;

    #[test]
    fn owner_pid_reads_only_our_names() {
        assert_eq!(owner_pid("tw123n0"), Some(123));
        assert_eq!(owner_pid("tw123n45h2"), Some(123));
        assert_eq!(owner_pid("tw9n1c0"), Some(9));
        for other in [
            "tw", "twn0", "tw12", "tw12n", "tw12nx", "tw12n1h", "tw12n1x2", "eth0", "twa1n0", "tw1n2c3d",
        ] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }

    fn links() -> String {
        ip_output(&["-o", "link", "show"]).unwrap_or_default()
    }

    fn namespaces() -> String {
        ip_output(&["netns", "list"]).unwrap_or_default()
    }

    /// Can `addr` be reached over TCP from the root namespace within a second?
    fn reachable(addr: SocketAddr) -> bool {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    }

    #[test]
    fn namespaces_are_reachable_cut_restored_and_removed() -> Result<()> {
        let net = Network::create(2)?;
        let (ns0, ns1) = (net.namespace(0), net.namespace(1));
        assert!(namespaces().contains(&ns0) && namespaces().contains(&ns1));
        assert_ne!(net.address(0), net.address(1));
        // A listener inside namespace 0, reached from the root namespace over the bridge.
        let (program, args) = net.exec_in(0, "/usr/bin/python3", &[
            "-c".to_owned(),
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',7777))\ns.listen(16)\nwhile True:\n  c,_=s.accept();c.close()".to_owned(),
        ]);
        let mut child = Command::new(program).args(args).spawn()?;
        let addr = SocketAddr::from((net.address(0), 7777));
        let mut up = false;
        for _ in 0..50 {
            if reachable(addr) {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(up, "listener in {ns0} not reachable at {addr}");
        net.cut(0)?;
        assert!(!net.is_connected(0)?);
        assert!(!reachable(addr), "{addr} reachable while cut");
        assert!(net.is_connected(1)?);
        net.restore(0)?;
        assert!(net.is_connected(0)?);
        let mut back = false;
        for _ in 0..50 {
            if reachable(addr) {
                back = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(back, "{addr} not reachable after restore");
        let _ = child.kill();
        let _ = child.wait();
        let bridge = net.base.clone();
        drop(net);
        assert!(!namespaces().contains(&ns0), "{ns0} left behind");
        assert!(!links().contains(&format!(" {bridge}:")), "{bridge} left behind");
        Ok(())
    }

    #[test]
    fn networks_of_one_process_get_distinct_names_and_subnets() -> Result<()> {
        let a = Network::create(1)?;
        let b = Network::create(1)?;
        assert_ne!(a.namespace(0), b.namespace(0));
        assert_ne!(a.address(0), b.address(0));
        assert!(a.namespace(0).len() <= 15 && b.host_veth(0).len() <= 15);
        Ok(())
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        assert!(Network::create(0).is_err());
        assert!(Network::create(201).is_err());
    }

    #[test]
    fn stale_names_of_dead_processes_are_removed() -> Result<()> {
        // Pid 4194304 is above Linux's pid_max limit: never alive.
        let name = "tw4194304n7";
        ip(&["link", "add", name, "type", "bridge"])?;
        remove_stale();
        assert!(!links().contains(&format!(" {name}:")), "{name} left behind");
        Ok(())
    }
}
