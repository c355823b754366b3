//! The lab harness: a temporary copy of `config/lab/`, the HQ and BR edges as child processes,
//! SIPp UASes standing in for the clusters' call control, and SIPp UACs for the phones.
//!
//! Addresses (LAB.md): HQ edge 127.0.1.1, BR edge 127.0.2.1 (SIP 5060), HQ UAS 127.0.1.10:5060,
//! BR UAS 127.0.2.10:5060, HQ phones 127.0.1.20, BR phones 127.0.2.20.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The HQ edge's SIP address.
pub(crate) const HQ_EDGE: &str = "127.0.1.1:5060";
/// The BR edge's SIP address.
pub(crate) const BR_EDGE: &str = "127.0.2.1:5060";
/// HQ's call control (a SIPp UAS), trunk `hq-pbx` of the HQ edge.
pub(crate) const HQ_UAS_IP: &str = "127.0.1.10";
/// HQ's phones: a source the HQ edge accepts on trunk `hq-pbx`.
pub(crate) const HQ_PHONES: &str = "127.0.1.20";
/// BR's phones: a source the BR edge accepts on trunk `br-pbx`.
pub(crate) const BR_PHONES: &str = "127.0.2.20";

/// How long an edge may take to log its `listening` lines.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an edge may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

static LAB_LOCK: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A SIPp scenario of `tests/sipp/scenarios/`, e.g. `rfc3261/13-invite/uac-basic-call.xml`.
pub(crate) fn scenario(rel: &str) -> PathBuf {
    repo_root().join("tests/sipp/scenarios").join(rel)
}

/// Whether the end-to-end tests can run here. Prints why not and returns false; under `CI=true`
/// a missing SIPp is a failure instead.
pub(crate) fn prerequisites() -> bool {
    let sipp = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if sipp.is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "sipp not installed (CI=true): install the sip-tester package"
        );
        eprintln!("skipping: sipp not installed");
        return false;
    }
    true
}

/// Which edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Edge {
    Hq,
    Br,
}

impl Edge {
    fn name(self) -> &'static str {
        match self {
            Self::Hq => "hq",
            Self::Br => "br",
        }
    }

    fn udp_line(self) -> &'static str {
        match self {
            Self::Hq => "listening proto=udp addr=127.0.1.1:5060",
            Self::Br => "listening proto=udp addr=127.0.2.1:5060",
        }
    }
}

struct EdgeProc {
    edge: Edge,
    child: Child,
}

/// The lab: a temporary copy of `config/lab/`, and every process it started (killed on drop,
/// also when a test panics). Holds the global lab lock while it lives.
pub(crate) struct Lab {
    dir: tempfile::TempDir,
    edges: Vec<EdgeProc>,
    others: Vec<Child>,
    runs: u32,
    _lock: MutexGuard<'static, ()>,
}

impl Lab {
    /// Copies `config/lab/` to a temporary directory (the edges' `data_dir` lives there too).
    pub(crate) fn new() -> Self {
        let lock = LAB_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().expect("tempdir");
        let src = repo_root().join("config/lab");
        for entry in fs::read_dir(&src).expect("config/lab") {
            let entry = entry.expect("dir entry");
            if entry.file_type().expect("file type").is_file() {
                fs::copy(entry.path(), dir.path().join(entry.file_name()))
                    .expect("copy lab config");
            }
        }
        Self {
            dir,
            edges: Vec::new(),
            others: Vec::new(),
            runs: 0,
            _lock: lock,
        }
    }

    /// The lab's directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites a lab file with `edit` (before the edge starts, or before a SIGHUP).
    pub(crate) fn edit(&self, file: &str, edit: impl FnOnce(String) -> String) {
        let path = self.path().join(file);
        let text = fs::read_to_string(&path).expect("read lab file");
        fs::write(&path, edit(text)).expect("write lab file");
    }

    /// Starts an edge and waits (bounded) for its UDP `listening` line.
    pub(crate) fn start(&mut self, edge: Edge) {
        let log_path = self.path().join(format!("{}.stderr", edge.name()));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("edge log");
        let offset = log.metadata().expect("log metadata").len();
        let child = Command::new(env!("CARGO_BIN_EXE_ils-edge"))
            .args(["run", "--config", &format!("{}.toml", edge.name())])
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ils-edge run");
        self.edges.push(EdgeProc { edge, child });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = read_from(&log_path, offset);
            if text.contains(edge.udp_line()) {
                return;
            }
            let proc = self
                .edges
                .iter_mut()
                .find(|p| p.edge == edge)
                .expect("edge process");
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!(
                    "{} edge exited ({status}) before listening:\n{text}",
                    edge.name()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} edge not listening after {START_TIMEOUT:?}:\n{text}",
                edge.name()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts HQ and BR.
    pub(crate) fn start_both(&mut self) {
        self.start(Edge::Hq);
        self.start(Edge::Br);
    }

    /// Stops an edge gracefully (SIGTERM), killing it if it is still there after a while.
    pub(crate) fn stop(&mut self, edge: Edge) -> ExitStatus {
        let idx = self
            .edges
            .iter()
            .position(|p| p.edge == edge)
            .expect("edge running");
        let mut proc = self.edges.remove(idx);
        signal("TERM", proc.child.id());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = proc.child.try_wait().expect("wait edge") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = proc.child.kill();
                panic!(
                    "{} edge still running {STOP_TIMEOUT:?} after SIGTERM",
                    edge.name()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP to an edge (reload its directory).
    pub(crate) fn reload(&self, edge: Edge) {
        let proc = self
            .edges
            .iter()
            .find(|p| p.edge == edge)
            .expect("edge running");
        signal("HUP", proc.child.id());
    }

    /// An edge's stderr so far (for failure messages).
    pub(crate) fn log(&self, edge: Edge) -> String {
        read_from(&self.path().join(format!("{}.stderr", edge.name())), 0)
    }

    /// Starts a SIPp UAS at `ip:5060` running `scenario_rel` until the lab is dropped.
    pub(crate) fn uas(&mut self, scenario_rel: &str, ip: &str) {
        let dir = self.run_dir("uas");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scenario(scenario_rel))
            .args([
                "-i",
                ip,
                "-p",
                "5060",
                "-timeout",
                "300s",
                "-nostdin",
                "-trace_err",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp UAS");
        self.others.push(child);
        // SIPp binds its socket within milliseconds; wait until the UAS port is taken.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::UdpSocket::bind((ip, 5060)).is_ok() {
            assert!(Instant::now() < deadline, "SIPp UAS did not bind {ip}:5060");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a child process that the lab kills on drop (e.g. the malformed-message sender).
    pub(crate) fn spawn(&mut self, cmd: &mut Command) -> usize {
        self.others.push(cmd.spawn().expect("spawn helper"));
        self.others.len() - 1
    }

    /// Waits (bounded) for a child started with [`Lab::spawn`]; returns its status and output.
    pub(crate) fn wait(&mut self, idx: usize, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let child = &mut self.others[idx];
        loop {
            if let Some(status) = child.try_wait().expect("wait helper") {
                let mut out = String::new();
                if let Some(mut s) = child.stdout.take() {
                    let _ = s.read_to_string(&mut out);
                }
                return (status, out);
            }
            assert!(
                Instant::now() < deadline,
                "helper still running after {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn run_dir(&mut self, what: &str) -> PathBuf {
        self.runs += 1;
        let dir = self
            .path()
            .join("sipp")
            .join(format!("{:03}-{what}", self.runs));
        fs::create_dir_all(&dir).expect("sipp run dir");
        dir
    }

    /// Runs a SIPp UAC to completion (bounded by `-timeout` and a wall-clock guard).
    pub(crate) fn call(&mut self, uac: &Uac) -> Outcome {
        let dir = self.run_dir("uac");
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario(&uac.scenario))
            .args([
                "-s",
                &uac.user,
                "-key",
                "dest_host",
                &uac.dest_host,
                "-i",
                &uac.from_ip,
                "-p",
                "0",
            ])
            .arg(&uac.target)
            .args([
                "-m",
                &uac.calls.to_string(),
                "-r",
                &uac.rate.to_string(),
                "-l",
                &uac.calls.to_string(),
            ])
            .args([
                "-timeout",
                &format!("{}s", uac.timeout.as_secs().max(1)),
                "-timeout_error",
            ])
            .args([
                "-nostdin",
                "-trace_err",
                "-trace_stat",
                "-stf",
                "stat.csv",
                "-fd",
                "1",
            ])
            .args(["-d", &uac.hold_ms.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if uac.tcp {
            cmd.args(["-t", "t1"]);
        }
        let mut child = cmd.spawn().expect("spawn sipp UAC");
        let deadline = Instant::now() + uac.timeout + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait sipp") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait().expect("wait killed sipp");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let (ok, failed) = parse_stats(&dir.join("stat.csv"));
        let errors = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
            .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        Outcome {
            exit: status.code(),
            ok,
            failed,
            errors,
        }
    }

    /// Places `uac` again and again until it succeeds (every call ok), bounded by `within`;
    /// returns the time it took. Panics with the last outcome when it never does.
    pub(crate) fn call_until_ok(&mut self, uac: &Uac, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let out = self.call(uac);
            if out.all_ok(uac.calls) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{} for {} not ok within {within:?}: {out}",
                uac.scenario,
                uac.user
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &mut self.edges {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for c in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
        }
        if thread::panicking() {
            for edge in [Edge::Hq, Edge::Br] {
                let log = self.log(edge);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {} edge stderr (last lines) ---", edge.name());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn signal(sig: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// `SuccessfulCall(C)` and `FailedCall(C)` of the last row of a SIPp `-trace_stat` file.
fn parse_stats(path: &Path) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(path) else {
        return (0, 0);
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(head) = lines.next() else {
        return (0, 0);
    };
    let Some(last) = lines.next_back() else {
        return (0, 0);
    };
    let cols: Vec<&str> = head.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("SuccessfulCall(C)"), get("FailedCall(C)"))
}

/// One SIPp UAC run: the phones placing calls.
#[derive(Clone, Debug)]
pub(crate) struct Uac {
    pub(crate) scenario: String,
    pub(crate) user: String,
    pub(crate) dest_host: String,
    pub(crate) from_ip: String,
    pub(crate) target: String,
    pub(crate) tcp: bool,
    pub(crate) calls: u64,
    pub(crate) rate: u64,
    pub(crate) hold_ms: u64,
    pub(crate) timeout: Duration,
}

impl Uac {
    /// `calls` of `scenario_rel` to `sip:user@host` from `from_ip` into the edge at `target`.
    pub(crate) fn new(scenario_rel: &str, uri: &str, from_ip: &str, target: &str) -> Self {
        let (user, host) = uri.split_once('@').expect("user@host");
        Self {
            scenario: scenario_rel.to_owned(),
            user: user.to_owned(),
            dest_host: host.to_owned(),
            from_ip: from_ip.to_owned(),
            target: target.to_owned(),
            tcp: false,
            calls: 1,
            rate: 10,
            hold_ms: 50,
            timeout: Duration::from_secs(30),
        }
    }

    /// Over TCP (SIPp `-t t1`).
    pub(crate) fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// `n` calls at `rate` calls/s.
    pub(crate) fn calls(mut self, n: u64, rate: u64) -> Self {
        self.calls = n;
        self.rate = rate;
        self
    }

    /// SIPp's global timeout for the run.
    pub(crate) fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}

/// What a SIPp UAC run reported.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) exit: Option<i32>,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) errors: String,
}

impl Outcome {
    /// Every one of `n` calls succeeded and SIPp exited 0.
    pub(crate) fn all_ok(&self, n: u64) -> bool {
        self.exit == Some(0) && self.ok == n && self.failed == 0
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let errors: String = self.errors.chars().take(3000).collect();
        write!(
            f,
            "sipp exit {:?}, {} ok, {} failed; errors:\n{errors}",
            self.exit, self.ok, self.failed
        )
    }
}

/// Scenario paths, relative to `tests/sipp/scenarios/`.
pub(crate) mod sc {
    pub(crate) const BASIC_CALL: &str = "rfc3261/13-invite/uac-basic-call.xml";
    pub(crate) const UAS_ANSWER: &str = "rfc3261/13-invite/uas-answer.xml";
    pub(crate) const UAS_BUSY: &str = "rfc3261/13-invite/uas-busy-486.xml";
    pub(crate) const UAS_RING_CANCEL: &str = "rfc3261/9-cancel/uas-ring-wait-cancel.xml";
    pub(crate) const CANCEL: &str = "rfc3261/9-cancel/uac-cancel-before-answer.xml";
    pub(crate) const EXPECT_403: &str = "rfc3261/17.1.1.3-non-2xx-ack/uac-expect-403.xml";
    pub(crate) const EXPECT_404: &str = "rfc3261/17.1.1.3-non-2xx-ack/uac-expect-404.xml";
    pub(crate) const EXPECT_483: &str = "rfc3261/17.1.1.3-non-2xx-ack/uac-expect-483.xml";
    pub(crate) const EXPECT_486: &str = "rfc3261/17.1.1.3-non-2xx-ack/uac-expect-486.xml";
    pub(crate) const EXPECT_503: &str = "rfc3261/17.1.1.3-non-2xx-ack/uac-expect-503.xml";
    pub(crate) const MALFORMED: &str = "rfc4475/malformed-burst.py";
}

/// One metric (its name with labels, if any) from an edge's admin API.
pub(crate) fn metric(admin: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).expect("admin API");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {admin}\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("answer");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {admin}/metrics"))
}
