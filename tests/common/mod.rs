//! Shared by the golden-file and corpus tests: splitting tcpdump output into packets and the
//! comparison rule.
#![allow(dead_code)]

pub mod split;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared folder (corpus, contract, workload generator): `TCPLENS_SHARED`, else `shared`
/// beside the crate or beside the worktree that holds it.
pub fn shared_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        std::env::var_os("TCPLENS_SHARED").map(PathBuf::from),
        Some(root.join("../shared")),
        Some(root.join("../../shared")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.join("tools/gen-pcap/gen_pcap.py").is_file())
}

/// Runs the shared workload generator (`gen_pcap.py`) with `args`; panics when it is missing
/// or fails.
pub fn gen_pcap<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) {
    let dir = shared_dir().expect("gen_pcap.py under ../shared (set TCPLENS_SHARED)");
    let st = Command::new("python3")
        .arg(dir.join("tools/gen-pcap/gen_pcap.py"))
        .args(args)
        .output()
        .expect("python3 runs gen_pcap.py");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// TCP-level trailers tcplens prints itself: a line that stops before one of them is wrong.
const TCP_TRAILERS: [&str; 5] = [" [|tcp]", " [RST", " [!RST", " [remaining", " [|mptcp]"];

/// Splits `-#` output into packet number -> text (continuation lines included).
pub fn packets(text: &str) -> BTreeMap<u64, String> {
    let mut map = BTreeMap::new();
    let mut cur: Option<u64> = None;
    for line in text.trim_end_matches('\n').split('\n') {
        let num = line
            .get(..5)
            .filter(|_| line.get(5..7) == Some("  "))
            .and_then(|n| n.trim_start().parse::<u64>().ok());
        match num {
            Some(n) if cur.is_none_or(|c| n > c) => {
                cur = Some(n);
                map.insert(n, line.to_owned());
            }
            _ => {
                if let Some(c) = cur {
                    let t: &mut String = map.get_mut(&c).expect("current packet");
                    t.push('\n');
                    t.push_str(line);
                }
            }
        }
    }
    map
}

/// True when tcplens's text equals tcpdump's, or stops exactly where tcpdump's
/// application-layer decoding starts (after `length N`, with no TCP-level trailer missed).
pub fn matches(mine: &str, reference: &str) -> bool {
    if mine == reference {
        return true;
    }
    let Some(rest) = reference.strip_prefix(mine) else {
        return false;
    };
    let ends_with_length = mine
        .rsplit_once("length ")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    ends_with_length && !TCP_TRAILERS.iter().any(|t| rest.starts_with(t))
}

/// tcpdump, if installed.
pub fn tcpdump() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/tcpdump");
    if p.exists() {
        return Some(p);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("tcpdump"))
        .find(|p| p.exists())
}

/// Runs a command with `TZ=GMT0` and returns its standard output (lossy UTF-8).
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.env("TZ", "GMT0").output().expect("run command");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs tcplens `read FILE --plain -# FLAGS`.
pub fn tcplens(file: &Path, flags: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .arg("read")
        .arg(file)
        .args(["--plain", "-#"])
        .args(flags))
}

/// Compares one run: returns (packets compared, failures as readable text).
pub fn compare(
    mine: &BTreeMap<u64, String>,
    reference: &BTreeMap<u64, String>,
    tcp_numbers: &[u64],
) -> (usize, Vec<String>) {
    let mut fails = Vec::new();
    let mut seen = 0;
    for (n, text) in mine {
        seen += 1;
        match reference.get(n) {
            Some(r) if matches(text, r) => {}
            Some(r) => fails.push(format!("packet {n}:\n  tcplens: {text}\n  tcpdump: {r}")),
            None => fails.push(format!(
                "packet {n}: tcplens printed, tcpdump has no such packet\n  tcplens: {text}"
            )),
        }
    }
    for n in tcp_numbers {
        if !mine.contains_key(n) {
            seen += 1;
            fails.push(format!(
                "packet {n}: libpcap calls it TCP, tcplens printed nothing\n  tcpdump: {}",
                reference.get(n).map_or("", String::as_str)
            ));
        }
    }
    (seen, fails)
}

/// The filters that make libpcap name a packet TCP, most thorough first (VLAN filters are
/// refused on some link types).
pub const TCP_FILTERS: [&str; 2] = [
    "tcp or (vlan and tcp) or (vlan and vlan and tcp) or (ip6 and ip6 protochain 6)",
    "tcp or (ip6 and ip6 protochain 6)",
];

/// Numbers of the packets libpcap's filter calls TCP: the filtered run's packets are found,
/// in order, among the numbered unfiltered run's (both with epoch nanosecond stamps, which
/// tell packets apart).
pub fn libpcap_tcp_numbers(tcpdump: &Path, file: &Path) -> Vec<u64> {
    libpcap_tcp_numbers_filtered(tcpdump, file, None)
}

/// The same, numbered among the packets that pass the user's filter `expr` (as `-#` counts).
pub fn libpcap_tcp_numbers_filtered(tcpdump: &Path, file: &Path, expr: Option<&str>) -> Vec<u64> {
    let all = packets(&run(Command::new(tcpdump)
        .args(["-#", "-n", "-tt", "--nano", "-r"])
        .arg(file)
        .args(expr)));
    for filter in TCP_FILTERS {
        let filter = match expr {
            Some(e) => format!("({e}) and ({filter})"),
            None => filter.to_string(),
        };
        let out = Command::new(tcpdump)
            .args(["-n", "-tt", "--nano", "-r"])
            .arg(file)
            .arg(&filter)
            .env("TZ", "GMT0")
            .output()
            .expect("run tcpdump");
        if !out.status.success() && out.stdout.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut firsts = text
            .lines()
            .filter(|l| l.bytes().next().is_some_and(|b| b.is_ascii_digit()));
        let mut want = firsts.next();
        let mut nums = Vec::new();
        for (n, t) in &all {
            let Some(w) = want else { break };
            let first = t.lines().next().unwrap_or("");
            if first.get(7..) == Some(w) {
                nums.push(*n);
                want = firsts.next();
            }
        }
        return nums;
    }
    Vec::new()
}
