//! Live capture on loopback: runs only as root (CI runs as root); elsewhere each test says it
//! was skipped. Traffic stays on 127.0.0.1 and every wait is bounded.

#![cfg(feature = "live")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Starts `tcplens live` with `args`, waits for its "listening on" line, runs `traffic`, and
/// returns (exit status, stdout).
fn capture_around(args: &[&str], traffic: impl FnOnce()) -> (i32, String) {
    capture_around_with_pid(args, traffic, |_| {})
}

/// The same, then runs `stop` with the capture's process id.
fn capture_around_with_pid(
    args: &[&str],
    traffic: impl FnOnce(),
    stop: impl FnOnce(u32),
) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcplens live");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !line.contains("listening on") {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
            let _ = child.kill();
            panic!("tcplens live did not start: {line}");
        }
    }
    traffic();
    stop(child.id());
    // Bound the wait: a capture that does not stop is killed and the test fails below.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out)
}

/// One bounded exchange on loopback: handshake, a request and a reply, close.
fn exchange(listener: TcpListener) {
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"world").unwrap();
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    drop(c);
    server.join().unwrap();
}

/// One bounded loopback exchange captured for 3 s with `mode`, the packets also written with
/// `-w`. Returns (exit status, output, the written file (kept alive by its folder), port).
fn capture_exchange(mode: &str) -> (i32, String, tempfile::TempDir, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("live.pcap");
    let written = written.to_str().unwrap().to_string();
    let (code, out) = capture_around(
        &[
            "live",
            "-i",
            "lo",
            mode,
            "--duration",
            "3",
            "-w",
            &written,
            "tcp",
            "port",
            &port,
        ],
        || exchange(listener),
    );
    (code, out, dir, port)
}

#[test]
fn live_loopback_capture_and_write_file_read_back() {
    if !is_root() {
        eprintln!("skipped live_loopback_capture_and_write_file_read_back: needs root");
        return;
    }
    let (code, live_out, dir, port) = capture_exchange("--plain");
    let written = dir.path().join("live.pcap");
    let written = written.to_str().unwrap();
    assert_eq!(code, 0, "exit status");
    let lines: Vec<&str> = live_out.lines().collect();
    for flags in ["Flags [S]", "Flags [S.]", "Flags [P.]", "Flags [F.]"] {
        assert!(
            lines.iter().any(|l| l.contains(flags)),
            "no {flags} in:\n{live_out}"
        );
    }
    assert!(
        lines.iter().all(|l| l.contains(&format!(".{port}"))),
        "filter leaked:\n{live_out}"
    );
    // The -w file is complete and reads back to the same lines.
    let back = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .args(["read", written, "--plain"])
        .output()
        .unwrap();
    assert!(back.status.success());
    assert_eq!(String::from_utf8_lossy(&back.stdout), live_out);
}

#[test]
fn live_errors_are_clear() {
    if !is_root() {
        eprintln!("skipped live_errors_are_clear: needs root");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .args(["live", "-i", "no-such-iface0", "-c", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-iface0"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .args(["live", "-i", "lo", "-c", "1", "tcp", "porrt", "80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn sigterm_stops_cleanly_with_table_and_complete_file() {
    if !is_root() {
        eprintln!("skipped sigterm_stops_cleanly_with_table_and_complete_file: needs root");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("term.pcap");
    let written = written.to_str().unwrap();
    let (code, out) = capture_around_with_pid(
        &["live", "-i", "lo", "-w", written, "tcp", "port", &port],
        || exchange(listener),
        |pid| {
            // Give libpcap a moment to deliver the last packets, then ask it to stop.
            std::thread::sleep(Duration::from_millis(300));
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        },
    );
    assert_eq!(code, 0, "exit status after SIGTERM:\n{out}");
    assert!(
        out.contains("TCP connections (1)"),
        "no connection table:\n{out}"
    );
    assert!(out.contains("handshake 3/3"), "no annotation:\n{out}");
    let back = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .args(["read", written])
        .output()
        .unwrap();
    assert_eq!(back.status.code(), Some(0), "the -w file is not complete");
    let back = String::from_utf8_lossy(&back.stdout);
    let lines = |s: &str| s.lines().filter(|l| l.contains(" > ")).count();
    assert_eq!(lines(&back), lines(&out), "-w file:\n{back}\nlive:\n{out}");
}

#[test]
fn live_ndjson_streams_the_same_records_as_read() {
    if !is_root() {
        eprintln!("skipped live_ndjson_streams_the_same_records_as_read: needs root");
        return;
    }
    let (code, live_out, dir, port) = capture_exchange("--ndjson");
    let written = dir.path().join("live.pcap");
    let written = written.to_str().unwrap();
    assert_eq!(code, 0);
    let records: Vec<serde_json::Value> = live_out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let of = |t: &str| records.iter().filter(|r| r["type"] == t).count();
    assert!(of("packet") >= 7, "{live_out}");
    assert_eq!(of("connection"), 1, "{live_out}");
    assert_eq!(of("summary"), 1, "{live_out}");
    let conn = records.iter().find(|r| r["type"] == "connection").unwrap();
    assert_eq!(conn["handshake"], "complete");
    assert_eq!(conn["server"], format!("127.0.0.1:{port}"));
    // The same packets and connection from the -w file (the summary's inputs differ).
    let back = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .args(["read", written, "--ndjson"])
        .output()
        .unwrap();
    let back: Vec<serde_json::Value> = String::from_utf8_lossy(&back.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pick = |v: &[serde_json::Value]| -> Vec<serde_json::Value> {
        v.iter()
            .filter(|r| r["type"] == "packet" || r["type"] == "connection")
            .cloned()
            .collect()
    };
    assert_eq!(pick(&records), pick(&back));
}
