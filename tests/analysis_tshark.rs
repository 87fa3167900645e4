//! Per-frame agreement with tshark 4.0's `tcp.analysis.*` flags on every capture that has a
//! golden in testdata/tshark (made by `scripts/make-tshark-goldens.sh`; `cargo test` needs no
//! tshark): the real-kernel captures (testdata/kernel), the shared public corpus and gen-pcap's
//! seed-1 workload. Also compared: how many TCP frames each tool sees and where each
//! connection (tshark's `tcp.stream`) starts.
//!
//! Every difference must be in [`ALLOWED`] or follow the one documented design rule (Linux's
//! zero-length zero-window probe, see [`linux_zwp`]); reasons are in
//! docs/analysis-vs-tshark.md. An allowed entry that no longer differs fails the test, so the
//! list stays honest.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Wireshark's kinds (`tcp.analysis.<kind>`).
const KINDS: [&str; 14] = [
    "retransmission",
    "fast_retransmission",
    "spurious_retransmission",
    "out_of_order",
    "lost_segment",
    "ack_lost_segment",
    "duplicate_ack",
    "zero_window",
    "zero_window_probe",
    "zero_window_probe_ack",
    "window_update",
    "window_full",
    "keep_alive",
    "keep_alive_ack",
];

/// Pseudo-kind for "a new connection (tcp.stream) starts at this frame".
const STREAM_START: &str = "stream_start";

/// Pseudo-kind for "both call it a duplicate ACK but number it or name the frame differently"
/// (Wireshark's `duplicate_ack_num` / `duplicate_ack_frame`).
const DUP_NUMBERING: &str = "duplicate_ack_numbering";

/// (golden, frame, kind): known differences; docs/analysis-vs-tshark.md gives each reason.
/// Golden names are paths under testdata/tshark without `.tsv`.
const ALLOWED: &[(&str, u64, &str)] = &[
    // tcplens decodes no TCP here (docs: "Frames only tshark analyses"): GRE and Geneve
    // tunnels, NFLOG and ARCNET link types, IP fragments tshark reassembles, and TCP headers
    // whose options run past the captured bytes.
    ("corpus/arkime/gre-sample/gre-sample.pcap", 0, "tcp_frames"),
    ("corpus/arkime/nflog/nflog.pcap", 0, "tcp_frames"),
    (
        "corpus/tcpdump/arcnet-rfc1201-arp-icmp-http.pcap",
        0,
        "tcp_frames",
    ),
    (
        "corpus/tcpdump/arcnet-rfc1201-arp-icmp-http.pcap",
        17,
        "window_update",
    ),
    ("corpus/tcpdump/geneve.pcap", 0, "tcp_frames"),
    (
        "corpus/tcpdump/heapoverflow-tcp_print.4.99.3.pcap",
        0,
        "tcp_frames",
    ),
    (
        "corpus/tcpdump/heapoverflow-tcp_print.pcap",
        0,
        "tcp_frames",
    ),
    ("corpus/tcpdump/mptcp-dss-oobr.pcap", 0, "tcp_frames"),
    (
        "corpus/tcpdump/tcp-auth-heapoverflow.4.99.3.pcap",
        0,
        "tcp_frames",
    ),
    ("corpus/tcpdump/tcp-auth-heapoverflow.pcap", 0, "tcp_frames"),
    (
        "corpus/zeek/fragmented-syn/fragmented-syn.pcap",
        0,
        "tcp_frames",
    ),
    // A reset connection is ended 5 s after its RST (Zeek's tcp_reset_delay); later data on
    // the 4-tuple is a new connection, as in Zeek's conn.log. tshark keeps one stream.
    (
        "corpus/zeek/modbus-p502/modbus-and-non-modbus-p502.pcap",
        65,
        "stream_start",
    ),
];

/// The gen-pcap workload the golden was made from (see the script).
const GEN_ARGS: [&str; 4] = ["--flows", "240", "--seed", "1"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shared corpus: `TCPLENS_CORPUS`, or `shared/corpus` next to the crate or its worktree
/// directory.
fn corpus_dir() -> Option<PathBuf> {
    [
        std::env::var_os("TCPLENS_CORPUS").map(PathBuf::from),
        Some(root().join("../shared/corpus")),
        Some(root().join("../../shared/corpus")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_dir())
}

/// One golden: header counts and the listed frames (flagged ones and each stream's first).
struct Golden {
    source: String,
    tcp_frames: u64,
    /// frame -> (stream, kinds)
    rows: BTreeMap<u64, (u64, BTreeSet<&'static str>)>,
    /// frame -> (duplicate ACK number, frame it duplicates)
    dup: BTreeMap<u64, (u64, u64)>,
}

fn read_golden(path: &Path) -> Golden {
    let text = std::fs::read_to_string(path).unwrap();
    let mut g = Golden {
        source: String::new(),
        tcp_frames: 0,
        rows: BTreeMap::new(),
        dup: BTreeMap::new(),
    };
    let mut hdr: Option<Vec<&str>> = None;
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("# source: ") {
            g.source = s.split(';').next().unwrap().to_string();
        }
        if let Some(s) = line.strip_prefix("# tcp_frames ") {
            g.tcp_frames = s.split(' ').next().unwrap().parse().unwrap();
        }
        if line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let Some(h) = &hdr else {
            hdr = Some(cols);
            continue;
        };
        let get = |name: &str| {
            let i = h.iter().position(|c| *c == name).unwrap();
            cols.get(i).copied().unwrap_or("")
        };
        let kinds = KINDS
            .iter()
            .copied()
            .filter(|k| !get(&format!("tcp.analysis.{k}")).is_empty())
            .collect();
        let frame = get("frame.number").parse().unwrap();
        if let (Ok(n), Ok(f)) = (
            get("tcp.analysis.duplicate_ack_num").parse(),
            get("tcp.analysis.duplicate_ack_frame").parse(),
        ) {
            g.dup.insert(frame, (n, f));
        }
        g.rows
            .insert(frame, (get("tcp.stream").parse().unwrap(), kinds));
    }
    g
}

/// What tcplens says: TCP frames, per-frame Wireshark kinds (and whether the frame is a Linux
/// zero-length zero-window probe), and each connection's first frame.
#[derive(Default)]
struct Ours {
    tcp_frames: u64,
    kinds: BTreeMap<u64, BTreeSet<&'static str>>,
    linux_zwp: BTreeSet<u64>,
    starts: BTreeSet<u64>,
    dup: BTreeMap<u64, (u64, u64)>,
}

fn run(capture: &Path) -> Ours {
    // tshark never forgets a stream; our idle timeout (300 s by default, a memory bound) would
    // split connections with long gaps, so it is set beyond any gap in the test captures here.
    // The default's effect is listed in docs/analysis-vs-tshark.md.
    let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .arg("read")
        .arg(capture)
        .args(["--ndjson", "--idle-timeout", "999999999"])
        .output()
        .unwrap();
    let mut o = Ours::default();
    let mut seen_conns = BTreeSet::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] != "packet" {
            continue;
        }
        let Some(conn) = v["connection"].as_u64() else {
            continue;
        };
        o.tcp_frames += 1;
        let n = v["number"].as_u64().unwrap();
        if seen_conns.insert(conn) {
            o.starts.insert(n);
        }
        let names: Vec<&str> = v["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        let set: BTreeSet<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| names.contains(k))
            .collect();
        // Linux's probe: our own text says "Linux zero-window probe"; the JSON carries both
        // Wireshark's keep_alive and zero_window_probe.
        if set.contains("keep_alive") && set.contains("zero_window_probe") {
            o.linux_zwp.insert(n);
        }
        if !set.is_empty() {
            o.kinds.insert(n, set);
        }
        let d = &v["duplicate_ack"];
        if let (Some(num), Some(frame)) = (d["number"].as_u64(), d["frame"].as_u64()) {
            o.dup.insert(n, (num, frame));
        }
    }
    o
}

/// The documented design difference: Linux probes a zero window with a zero-length segment at
/// snd_una − 1; tshark sees only a keep-alive, we report both keep_alive and zero_window_probe.
fn linux_zwp(ours: &Ours, frame: u64, kind: &str, tshark_has: bool) -> bool {
    kind == "zero_window_probe" && !tshark_has && ours.linux_zwp.contains(&frame)
}

/// Per source group: kind -> (frames either tool flags, frames they disagree on).
type Tally = BTreeMap<&'static str, (u64, u64)>;

struct Case {
    group: &'static str,
    name: String,
    golden: PathBuf,
    capture: PathBuf,
}

fn cases(tmp: &Path) -> Vec<Case> {
    let dir = root().join("testdata/tshark");
    let mut v = Vec::new();
    // Kernel captures and probes: testdata/tshark/X.tsv <- testdata/{kernel,analysis}/X.pcap(ng).
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let Some(stem) = p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_suffix(".tsv")
        else {
            continue;
        };
        let (group, capture) = [("kernel", "pcap"), ("kernel", "pcapng"), ("probes", "pcap")]
            .iter()
            .map(|(g, x)| {
                let d = if *g == "kernel" { "kernel" } else { "analysis" };
                (*g, root().join(format!("testdata/{d}/{stem}.{x}")))
            })
            .find(|(_, c)| c.exists())
            .unwrap_or_else(|| panic!("{stem}.tsv: no capture in testdata/kernel or analysis"));
        v.push(Case {
            group,
            name: stem.to_string(),
            golden: p,
            capture,
        });
    }
    // The shared corpus: testdata/tshark/corpus/REL.tsv <- corpus/REL.
    match corpus_dir() {
        Some(corpus) => {
            let mut stack = vec![dir.join("corpus")];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    let rel = p.strip_prefix(dir.join("corpus")).unwrap();
                    let rel = rel.to_str().unwrap().strip_suffix(".tsv").unwrap();
                    v.push(Case {
                        group: "corpus",
                        name: format!("corpus/{rel}"),
                        golden: p.clone(),
                        capture: corpus.join(rel),
                    });
                }
            }
        }
        None => eprintln!("analysis_tshark: shared corpus not found, corpus goldens skipped"),
    }
    // gen-pcap: regenerated with the golden's arguments (same arguments, same bytes).
    let golden = dir.join("gen-pcap/flows240-seed1.tsv");
    let gen_py = corpus_dir().map(|c| c.join("../tools/gen-pcap/gen_pcap.py"));
    match gen_py.filter(|g| g.exists()) {
        Some(gen_py) => {
            let want = read_golden(&golden).source;
            let ver = Command::new("python3")
                .arg(&gen_py)
                .arg("--version")
                .output()
                .unwrap();
            let ver = String::from_utf8_lossy(&ver.stdout).to_string()
                + &String::from_utf8_lossy(&ver.stderr);
            let ver = ver.split_whitespace().last().unwrap_or("").to_string();
            assert_eq!(
                want,
                format!("gen_pcap.py {ver} {}", GEN_ARGS.join(" ")),
                "gen-pcap changed: rerun scripts/make-tshark-goldens.sh"
            );
            let out = tmp.join("gen.pcap");
            let st = Command::new("python3")
                .arg(&gen_py)
                .args(GEN_ARGS)
                .arg("--quiet")
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap();
            assert!(st.status.success());
            v.push(Case {
                group: "gen-pcap",
                name: "gen-pcap/flows240-seed1".into(),
                golden,
                capture: out,
            });
        }
        None => eprintln!("analysis_tshark: gen_pcap.py not found, gen-pcap golden skipped"),
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Pseudo-kind for "the tools see a different number of TCP frames" (frame 0): link types or
/// encapsulations tcplens does not decode, IP fragments tshark reassembles.
const TCP_FRAMES: &str = "tcp_frames";

/// Compares one capture; returns the differences as (frame, kind, tshark_has).
fn compare(g: &Golden, o: &Ours, tally: &mut Tally) -> Vec<(u64, &'static str, bool)> {
    let mut diffs = Vec::new();
    if g.tcp_frames != o.tcp_frames {
        diffs.push((0, TCP_FRAMES, g.tcp_frames > o.tcp_frames));
    }
    let empty = BTreeSet::new();
    let frames: BTreeSet<u64> = g
        .rows
        .iter()
        .filter(|(_, (_, k))| !k.is_empty())
        .map(|(f, _)| *f)
        .chain(o.kinds.keys().copied())
        .collect();
    for f in frames {
        let t = g.rows.get(&f).map_or(&empty, |r| &r.1);
        let m = o.kinds.get(&f).unwrap_or(&empty);
        for k in KINDS {
            let (a, b) = (t.contains(k), m.contains(k));
            if !a && !b {
                continue;
            }
            let e = tally.entry(k).or_default();
            e.0 += 1;
            if a != b {
                e.1 += 1;
                if !linux_zwp(o, f, k, a) {
                    diffs.push((f, k, a));
                }
            }
        }
    }
    // Duplicate ACKs both tools flag: same number (#n) and same original frame.
    for (f, theirs) in &g.dup {
        if let Some(ours) = o.dup.get(f) {
            let e = tally.entry(DUP_NUMBERING).or_default();
            e.0 += 1;
            if ours != theirs {
                e.1 += 1;
                diffs.push((*f, DUP_NUMBERING, true));
            }
        }
    }
    // Where connections start: each stream's first frame is a golden row. Not compared when
    // the tools do not see the same TCP frames (already a difference above).
    if g.tcp_frames != o.tcp_frames {
        return diffs;
    }
    let mut first = BTreeMap::new();
    for (f, (s, _)) in &g.rows {
        first.entry(*s).or_insert(*f);
    }
    let theirs: BTreeSet<u64> = first.values().copied().collect();
    for f in theirs.union(&o.starts) {
        let (a, b) = (theirs.contains(f), o.starts.contains(f));
        let e = tally.entry(STREAM_START).or_default();
        e.0 += 1;
        if a != b {
            e.1 += 1;
            diffs.push((*f, STREAM_START, a));
        }
    }
    diffs
}

#[test]
fn analysis_flags_agree_with_tshark() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = cases(tmp.path());
    assert!(cases.iter().filter(|c| c.group == "kernel").count() >= 29);
    // Run tcplens on two threads (the machine has two cores).
    let results: Vec<(Golden, Ours)> = std::thread::scope(|s| {
        let half = cases.len().div_ceil(2);
        let hs: Vec<_> = cases
            .chunks(half.max(1))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| (read_golden(&c.golden), run(&c.capture)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut tallies = BTreeMap::<&str, Tally>::new();
    let mut unexplained = Vec::new();
    let mut used = BTreeSet::new();
    for (c, (g, o)) in cases.iter().zip(&results) {
        let tally = tallies.entry(c.group).or_default();
        for (f, k, tshark_has) in compare(g, o, tally) {
            match ALLOWED
                .iter()
                .position(|a| a.0 == c.name && a.1 == f && a.2 == k)
            {
                Some(i) => {
                    used.insert(i);
                }
                None => {
                    let who = if k == TCP_FRAMES {
                        format!(
                            "tcplens {} TCP frames, tshark {}",
                            o.tcp_frames, g.tcp_frames
                        )
                    } else if tshark_has {
                        "tshark only".into()
                    } else {
                        "tcplens only".into()
                    };
                    unexplained.push(format!("(\"{}\", {f}, \"{k}\"), // {who}", c.name));
                }
            }
        }
    }
    for (group, tally) in &tallies {
        let n = cases.iter().filter(|c| c.group == *group).count();
        eprintln!("{group} ({n} captures): kind, frames flagged by either, differ, agreement");
        for (k, (n, d)) in tally {
            let pct = 100.0 * (n - d) as f64 / *n as f64;
            eprintln!("  {k:25} {n:6} {d:4} {pct:7.2}%");
        }
    }
    let stale: Vec<_> = ALLOWED
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, a)| format!("{a:?}"))
        .collect();
    // Only when every source was read can an unused entry be called stale.
    if cases.iter().any(|c| c.group == "corpus") && cases.iter().any(|c| c.group == "gen-pcap") {
        assert!(
            stale.is_empty(),
            "allowed differences that no longer occur:\n{}",
            stale.join("\n")
        );
    }
    assert!(
        unexplained.is_empty(),
        "{} unexplained differences:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}
