//! Shared helpers for root integration tests: each test uses its own prefix,
//! and guards take labs and namespaces down even when the test fails.
#![allow(dead_code)]

pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nslab")
}

/// nslab's state directory, as nslab itself finds it: `NSLAB_STATE_DIR`, else
/// /run/nslab. `scripts/test.sh` points it at a fresh directory for each run.
pub fn state_dir() -> PathBuf {
    std::env::var_os("NSLAB_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/nslab"))
}

/// A file under the state directory, e.g. `state("labs/x.json")`.
pub fn state(rel: &str) -> PathBuf {
    state_dir().join(rel)
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

pub fn example(name: &str) -> PathBuf {
    examples().join(name)
}

/// A unique, short prefix for one test: "t{tag}{pid % 10000}-".
pub fn prefix(tag: &str) -> String {
    format!("t{tag}{}-", std::process::id() % 10000)
}

/// The nslab command; `host` = Some(ns) runs it inside that namespace (host-mode
/// tests: nsenter execs nslab, so the child's pid is nslab's).
pub fn nslab_cmd(host: Option<&str>) -> Command {
    match host {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg(bin());
            c
        }
        None => Command::new(bin()),
    }
}

/// Run nslab, in `host` if given.
pub fn nslab_in(host: Option<&str>, args: &[&str]) -> Output {
    nslab_env(host, args, &[])
}

/// `nslab_in` with extra environment (the test hooks).
pub fn nslab_env(host: Option<&str>, args: &[&str], env: &[(&str, String)]) -> Output {
    nslab_cmd(host)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("run nslab")
}

/// Run nslab as nobody, without capabilities.
pub fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin(),
        ])
        .args(args)
        .output()
        .unwrap()
}

pub fn nslab(args: &[&str]) -> Output {
    nslab_in(None, args)
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "nslab failed ({:?}):\n{}",
        o.status.code(),
        text(&o)
    );
    o
}

/// Takes a lab down when dropped (also when the test panics).
pub struct LabGuard {
    pub lab: String,
    pub host: Option<String>,
}

impl LabGuard {
    pub fn new(lab: &str, host: Option<&str>) -> LabGuard {
        LabGuard {
            lab: lab.into(),
            host: host.map(String::from),
        }
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let o = nslab_in(
            self.host.as_deref(),
            &["down", "--lab", &self.lab, "--kill"],
        );
        if !o.status.success() {
            eprintln!("cleanup of lab {} failed: {}", self.lab, text(&o));
        }
    }
}

/// A namespace made by the test itself (e.g. to play the host in host mode).
pub struct TestNs {
    pub name: String,
}

impl TestNs {
    pub fn new(name: &str) -> TestNs {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let o = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .unwrap();
        assert!(o.status.success(), "ip netns add {name}: {}", text(&o));
        sh(&format!("ip -n {name} link set lo up"));
        TestNs { name: name.into() }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Run a shell command, return (success, output).
pub fn sh_status(cmd: &str) -> (bool, String) {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (o.status.success(), text(&o))
}

#[track_caller]
pub fn sh(cmd: &str) -> String {
    let (ok, out) = sh_status(cmd);
    assert!(ok, "`{cmd}` failed:\n{out}");
    out
}

/// `ping` from namespace `ns` (system ping, an independent tool).
pub fn pings(ns: &str, dst: &str) -> bool {
    let six = if dst.contains(':') { "-6" } else { "-4" };
    sh_status(&format!("ip netns exec {ns} ping {six} -c 1 -W 2 {dst}")).0
}

/// `ip -j ...` in a namespace, parsed.
pub fn ip_json(ns: Option<&str>, args: &str) -> serde_json::Value {
    let cmd = match ns {
        Some(n) => format!("ip -n {n} -j {args}"),
        None => format!("ip -j {args}"),
    };
    let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Array(vec![]))
}

pub fn netns_list() -> Vec<String> {
    let v = ip_json(None, "netns list");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn link_names(ns: Option<&str>) -> Vec<String> {
    let v = ip_json(ns, "link show");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["ifname"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn ifindex(ns: Option<&str>, name: &str) -> u64 {
    let v = ip_json(ns, &format!("link show {name}"));
    v[0]["ifindex"].as_u64().expect("ifindex")
}

/// Wait until something listens on TCP `port` in namespace `ns` (no sleeping and hoping).
pub fn wait_listen(ns: &str, port: u16) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        let out = sh_status(&format!("ip netns exec {ns} ss -Htln 'sport = :{port}'")).1;
        if out.contains(&format!(":{port}")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} in {ns}");
}

/// A background process started by the test, killed (by its pid) when dropped.
pub struct Bg(pub std::process::Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn bg(cmd: &str) -> Bg {
    Bg(Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

/// Nothing of the lab left: no namespace with the prefix, no /etc/netns entry, no record.
#[track_caller]
pub fn assert_gone(prefix: &str, lab: &str) {
    let left: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let etc: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(etc.is_empty(), "/etc/netns entries left: {etc:?}");
    assert!(
        !state(&format!("labs/{lab}.json")).exists(),
        "record of {lab} left"
    );
}

/// Write a topology file into a temp dir and return its path.
pub fn write_file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// tcpdump running in a namespace (an independent witness of traffic).
pub struct Tcpdump {
    child: std::process::Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tcpdump {
    /// Start `tcpdump -n -l -i IF FILTER` in `ns` and wait until it listens.
    pub fn start(ns: &str, iface: &str, filter: &str) -> Tcpdump {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let err = dir.path().join("err.txt");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-n", "-l", "-i", iface])
            .args(filter.split_whitespace())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("tcpdump (installed by scripts/test.sh)");
        let t0 = Instant::now();
        while !std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "tcpdump did not start: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Tcpdump {
            child,
            out,
            _dir: dir,
        }
    }

    /// Stop it (by its pid) and return what it printed.
    pub fn stop(mut self) -> String {
        // Give the kernel a moment to hand over the last packets.
        std::thread::sleep(Duration::from_millis(200));
        let _ = nix_kill(self.child.id());
        let _ = self.child.wait();
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    // SIGINT lets tcpdump flush its output.
    let r = unsafe { libc::kill(pid as i32, libc::SIGINT) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Packets sent by an interface (from `ip -s -j link`).
pub fn tx_packets(ns: &str, iface: &str) -> u64 {
    let v = ip_json(Some(ns), &format!("-s link show {iface}"));
    v[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or(0)
}

/// `nslab capture ...` running in the background until it stops by itself
/// (`-c` or `--duration`); waits until it listens.
pub struct CaptureRun {
    child: std::process::Child,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl CaptureRun {
    pub fn start(args: &[&str]) -> CaptureRun {
        let dir = tempfile::tempdir().unwrap();
        let err = dir.path().join("err.txt");
        let child = Command::new(bin())
            .arg("capture")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        loop {
            let e = std::fs::read_to_string(&err).unwrap_or_default();
            if e.contains("listening on") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "capture did not start: {e}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        CaptureRun {
            child,
            err,
            _dir: dir,
        }
    }

    /// Wait for it to end; (stdout, stderr).
    pub fn finish(mut self) -> (String, String) {
        let mut out = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let st = self.child.wait().unwrap();
        let err = std::fs::read_to_string(&self.err).unwrap_or_default();
        assert!(st.success(), "capture failed: {err}");
        (out, err)
    }
}

impl Drop for CaptureRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bring a tutorial example up sandboxed under a test's own prefix; returns the
/// prefix, the lab's name and the guard that takes it down.
pub fn up_example(tag: &str, file: &str) -> (String, String, LabGuard) {
    let p = prefix(tag);
    let base = nslab::lab::name_in_file(&example(file)).expect("example has a name");
    let lab = format!("{p}{base}");
    let g = LabGuard::new(&lab, None);
    ok(nslab(&[
        "up",
        example(file).to_str().unwrap(),
        "--sandbox",
        "--prefix",
        &p,
    ]));
    (p, lab, g)
}

/// A path as the &str a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}
