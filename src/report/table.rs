//! The end-of-run connection tables (comfy-table).
//!
//! Memory stays bounded whatever the capture holds: full rows are kept for the first
//! [`DEFAULT_TABLE_ROWS`] connections (lowest ids, i.e. first seen) only; every connection,
//! listed or not, goes into running totals printed as a second table. `--json` / `--ndjson`
//! give every connection.

use crate::analysis::state::ALL_STATES;
use crate::analysis::{CloseKind, ConnSummary, Handshake};
use crate::report::annotate::Dur;
use comfy_table::{ContentArrangement, Table, presets};
use std::collections::BinaryHeap;
use std::io::{self, Write};

/// Connections listed row by row unless told otherwise.
pub const DEFAULT_TABLE_ROWS: usize = 2000;

/// Running totals over every connection.
#[derive(Debug, Default)]
struct Totals {
    connections: u64,
    handshake: [u64; 5],
    close: [u64; 6],
    client_state: [u64; 11],
    server_state: [u64; 11],
    /// Zeek conn_state names and counts (a dozen names at most, all static).
    zeek: Vec<(&'static str, u64)>,
    time_wait: [u64; 3],
    midstream: u64,
    port_reuse: u64,
    packets: [u64; 2],
    bytes: [u64; 2],
    retransmissions: [u64; 2],
    dup_acks: [u64; 2],
    zero_windows: [u64; 2],
    syn_retransmissions: u64,
    synack_retransmissions: u64,
}

const HANDSHAKES: [Handshake; 5] = [
    Handshake::Complete,
    Handshake::Refused,
    Handshake::Unanswered,
    Handshake::Incomplete,
    Handshake::NotSeen,
];
const CLOSES: [CloseKind; 6] = [
    CloseKind::FourWay,
    CloseKind::ThreeWay,
    CloseKind::Simultaneous,
    CloseKind::HalfClose,
    CloseKind::Reset,
    CloseKind::None,
];
const TIME_WAIT_ON: [&str; 3] = ["client", "server", "both"];

fn pos<T: PartialEq>(all: &[T], x: &T) -> usize {
    all.iter().position(|a| a == x).unwrap_or(0)
}

impl Totals {
    fn add(&mut self, c: &ConnSummary) {
        self.connections += 1;
        self.handshake[pos(&HANDSHAKES, &c.handshake)] += 1;
        self.close[pos(&CLOSES, &c.close)] += 1;
        self.client_state[pos(&ALL_STATES, &c.client_state)] += 1;
        self.server_state[pos(&ALL_STATES, &c.server_state)] += 1;
        match self.zeek.iter_mut().find(|(n, _)| *n == c.zeek_conn_state) {
            Some(e) => e.1 += 1,
            None => self.zeek.push((c.zeek_conn_state, 1)),
        }
        if let Some(tw) = c.time_wait_on {
            self.time_wait[pos(&TIME_WAIT_ON, &tw)] += 1;
        }
        self.midstream += u64::from(c.midstream);
        self.port_reuse += u64::from(c.port_reuse);
        for (i, s) in [&c.client_counts, &c.server_counts].into_iter().enumerate() {
            self.packets[i] += s.packets;
            self.bytes[i] += s.bytes;
            self.retransmissions[i] += s.retransmissions;
            self.dup_acks[i] += s.dup_acks;
            self.zero_windows[i] += s.zero_windows;
        }
        self.syn_retransmissions += u64::from(c.syn_retransmissions);
        self.synack_retransmissions += u64::from(c.synack_retransmissions);
    }
}

/// A row kept for listing, ordered by connection id (the heap drops the highest).
#[derive(Debug)]
struct Row(ConnSummary);

impl PartialEq for Row {
    fn eq(&self, o: &Self) -> bool {
        self.0.id == o.0.id
    }
}
impl Eq for Row {}
impl PartialOrd for Row {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Row {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&o.0.id)
    }
}

/// Collects connection summaries: the first `limit` as rows, all of them as totals.
#[derive(Debug)]
pub struct ConnTable {
    rows: BinaryHeap<Row>,
    /// `rows` in id order, rebuilt when `dirty`.
    sorted: Vec<ConnSummary>,
    dirty: bool,
    limit: usize,
    totals: Totals,
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable::with_limit(DEFAULT_TABLE_ROWS)
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n}"),
        10_000..=9_999_999 => format!("{:.1}k", n as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

fn ms(ns: Option<i64>) -> String {
    ns.map_or_else(|| "-".into(), |v| Dur(v).to_string())
}

/// A table in the project's style: whole rows in files and pipes, fitted to a terminal.
pub(crate) fn new_table(width: Option<u16>) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    if let Some(w) = width {
        // Files and pipes get whole rows: wrapped cells break grep and diff.
        t.force_no_tty();
        t.set_width(w);
        t.set_content_arrangement(ContentArrangement::Disabled);
    } else {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    }
    t
}

/// The connection table's column names.
const CONN_HEADER: [&str; 17] = [
    "id",
    "client",
    "server",
    "handshake",
    "client state",
    "server state",
    "duration",
    "SYN→SYN-ACK",
    "SYN-ACK→ACK",
    "pkts c→s/s→c",
    "bytes c→s/s→c",
    "retrans c/s",
    "close",
    "initiator",
    "time_wait_on",
    "zeek",
    "history",
];

/// Writes whole rows in the bytes comfy-table prints for [`new_table`] with a fixed width (its
/// UTF8_FULL_CONDENSED style, no wrapping). The connection table can list thousands of rows,
/// and comfy-table spends ~4,400 instructions per cell on them (a tenth of a `--summary` run
/// on the 1M workload); the cells here are one line of ASCII or arrows, one column each.
fn write_grid<const N: usize>(
    out: &mut dyn Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let width = |s: &str| s.chars().count();
    let mut w = header.map(width);
    for r in rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(width(c));
        }
    }
    let mut line = String::new();
    let border = |line: &mut String, left: char, fill: char, mid: char, right: char| {
        line.clear();
        line.push(left);
        for (i, w) in w.iter().enumerate() {
            if i > 0 {
                line.push(mid);
            }
            line.extend(std::iter::repeat_n(fill, w + 2));
        }
        line.push(right);
        line.push('\n');
    };
    let cells = |line: &mut String, row: &mut dyn Iterator<Item = &str>| {
        line.clear();
        line.push('│');
        for (i, (c, w)) in row.zip(&w).enumerate() {
            if i > 0 {
                line.push('┆');
            }
            line.push(' ');
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w - width(c) + 1));
        }
        line.push_str("│\n");
    };
    border(&mut line, '┌', '─', '┬', '┐');
    out.write_all(line.as_bytes())?;
    cells(&mut line, &mut header.iter().copied());
    out.write_all(line.as_bytes())?;
    border(&mut line, '╞', '═', '╪', '╡');
    out.write_all(line.as_bytes())?;
    for r in rows {
        cells(&mut line, &mut r.iter().map(String::as_str));
        out.write_all(line.as_bytes())?;
    }
    border(&mut line, '└', '─', '┴', '┘');
    out.write_all(line.as_bytes())
}

/// `name count, name count` for the non-zero counts.
fn counts<'a>(items: impl Iterator<Item = (&'a str, u64)>) -> String {
    let v: Vec<String> = items
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

impl ConnTable {
    /// An empty table listing up to [`DEFAULT_TABLE_ROWS`] connections.
    pub fn new() -> Self {
        ConnTable::default()
    }

    /// An empty table listing up to `limit` connections (the lowest ids).
    pub fn with_limit(limit: usize) -> Self {
        ConnTable {
            rows: BinaryHeap::new(),
            sorted: Vec::new(),
            dirty: false,
            limit,
            totals: Totals::default(),
        }
    }

    /// Adds a connection: counted always, kept as a row while it is among the first `limit`.
    pub fn push(&mut self, c: ConnSummary) {
        self.totals.add(&c);
        if self.limit == 0 {
            return;
        }
        if self.rows.len() < self.limit {
            self.rows.push(Row(c));
            self.dirty = true;
        } else if self.rows.peek().is_some_and(|top| c.id < top.0.id) {
            self.rows.pop();
            self.rows.push(Row(c));
            self.dirty = true;
        }
    }

    /// Connections seen (listed or not).
    pub fn total(&self) -> u64 {
        self.totals.connections
    }

    /// The rows kept, in id order: the first `limit` connections, not necessarily all.
    pub fn rows(&mut self) -> &[ConnSummary] {
        if self.dirty {
            self.sorted.clear();
            self.sorted.extend(self.rows.iter().map(|r| r.0));
            self.sorted.sort_by_key(|c| c.id);
            self.dirty = false;
        }
        &self.sorted
    }

    /// The kept rows as text cells, in id order.
    fn cells(&mut self) -> Vec<[String; 17]> {
        self.rows()
            .iter()
            .map(|c| {
                let (a, b) = (&c.client_counts, &c.server_counts);
                [
                    c.id.to_string(),
                    c.client.to_string(),
                    c.server.to_string(),
                    c.handshake.as_str().to_string(),
                    c.client_state.to_string(),
                    c.server_state.to_string(),
                    Dur(c.last_ts.0.saturating_sub(c.first_ts.0)).to_string(),
                    ms(c.syn_synack_ns),
                    ms(c.synack_ack_ns),
                    format!("{}/{}", a.packets, b.packets),
                    format!("{}/{}", bytes(a.bytes), bytes(b.bytes)),
                    format!("{}/{}", a.retransmissions, b.retransmissions),
                    c.close.as_str().to_string(),
                    c.close_initiator.map_or("-", |i| i.as_str()).to_string(),
                    c.time_wait_on.unwrap_or("-").to_string(),
                    c.zeek_conn_state.to_string(),
                    c.zeek_history.as_str().to_string(),
                ]
            })
            .collect()
    }

    /// Builds the table of the kept rows, fitted to the terminal.
    pub fn build(&mut self) -> Table {
        let mut t = new_table(None);
        t.set_header(CONN_HEADER.to_vec());
        for row in self.cells() {
            t.add_row(row.to_vec());
        }
        t
    }

    /// Builds the totals table over every connection.
    pub fn build_totals(&self, width: Option<u16>) -> Table {
        let s = &self.totals;
        let mut t = new_table(width);
        t.set_header(vec!["all connections", "count"]);
        let pair = |v: &[u64; 2]| format!("{}/{}", v[0], v[1]);
        let rows: [(&str, String); 14] = [
            ("connections", s.connections.to_string()),
            (
                "handshake",
                counts(HANDSHAKES.iter().map(|h| h.as_str()).zip(s.handshake)),
            ),
            (
                "close",
                counts(CLOSES.iter().map(|c| c.as_str()).zip(s.close)),
            ),
            (
                "client final state",
                counts(ALL_STATES.iter().map(|x| x.as_str()).zip(s.client_state)),
            ),
            (
                "server final state",
                counts(ALL_STATES.iter().map(|x| x.as_str()).zip(s.server_state)),
            ),
            ("zeek conn_state", counts(s.zeek.iter().copied())),
            (
                "time_wait_on",
                counts(TIME_WAIT_ON.iter().copied().zip(s.time_wait)),
            ),
            (
                "midstream / port reuse",
                format!("{} / {}", s.midstream, s.port_reuse),
            ),
            ("packets c→s/s→c", pair(&s.packets)),
            (
                "bytes c→s/s→c",
                format!("{}/{}", bytes(s.bytes[0]), bytes(s.bytes[1])),
            ),
            ("retransmissions c/s", pair(&s.retransmissions)),
            (
                "SYN / SYN-ACK retransmissions",
                format!("{} / {}", s.syn_retransmissions, s.synack_retransmissions),
            ),
            ("duplicate ACKs c/s", pair(&s.dup_acks)),
            ("zero windows c/s", pair(&s.zero_windows)),
        ];
        for (name, v) in rows {
            t.add_row(vec![name.to_string(), v]);
        }
        t
    }

    /// Writes the listed rows, then (when some are not listed) the totals over all of them.
    pub fn write(&mut self, out: &mut dyn Write, width: Option<u16>) -> io::Result<()> {
        let total = self.total();
        if total == 0 {
            return writeln!(out, "no TCP connections");
        }
        let listed = self.rows.len() as u64;
        if listed > 0 {
            if listed == total {
                writeln!(out, "TCP connections ({total})")?;
            } else {
                writeln!(out, "TCP connections (first {listed} of {total})")?;
            }
            match width {
                Some(_) => write_grid(out, &CONN_HEADER, &self.cells())?,
                None => writeln!(out, "{}", self.build())?,
            }
        }
        if listed < total {
            writeln!(out, "{}", self.build_totals(width))?;
            writeln!(
                out,
                "{} more connections not listed: use --json or --ndjson for all",
                total - listed
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{EndReason, Initiator, Side, SideCounts, TcpState};
    use crate::capture::Timestamp;

    fn conn(id: u64, handshake: Handshake) -> ConnSummary {
        let a = "10.0.0.1:40000".parse().unwrap();
        let b = "10.0.0.2:80".parse().unwrap();
        ConnSummary {
            id,
            client: a,
            server: b,
            first_ts: Timestamp(0),
            last_ts: Timestamp(1_000_000),
            first_packet: 1,
            last_packet: 3,
            client_state: TcpState::TimeWait,
            server_state: TcpState::Closed,
            handshake,
            syn_synack_ns: None,
            synack_ack_ns: None,
            syn_retransmissions: 1,
            synack_retransmissions: 0,
            client_counts: SideCounts {
                packets: 3,
                bytes: 10,
                ..SideCounts::default()
            },
            server_counts: SideCounts::default(),
            close: CloseKind::FourWay,
            close_initiator: Some(Initiator::Side(Side::Client)),
            time_wait_on: Some("client"),
            zeek_conn_state: "SF",
            zeek_history: crate::analysis::ZeekHistory::default(),
            midstream: false,
            port_reuse: false,
            end: EndReason::Closed,
            syn_cookie: false,
            server_payload: Default::default(),
        }
    }

    #[test]
    fn keeps_the_lowest_ids_and_counts_all() {
        let mut t = ConnTable::with_limit(3);
        for id in [5, 1, 9, 3, 7, 2, 8] {
            let h = if id % 2 == 0 {
                Handshake::Refused
            } else {
                Handshake::Complete
            };
            t.push(conn(id, h));
        }
        let ids: Vec<u64> = t.rows().iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        t.push(conn(0, Handshake::Complete));
        let ids: Vec<u64> = t.rows().iter().map(|c| c.id).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(t.total(), 8);
        let mut out = Vec::new();
        t.write(&mut out, Some(200)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("TCP connections (first 3 of 8)"));
        assert!(text.contains("complete 6, refused 2"));
        assert!(text.contains("TIME_WAIT 8"));
        assert!(text.contains("5 more connections not listed: use --json or --ndjson for all"));
        assert!(text.contains("24/0"), "packets summed: {text}");
    }

    #[test]
    fn all_listed_prints_no_totals() {
        let mut t = ConnTable::with_limit(10);
        t.push(conn(0, Handshake::Complete));
        let mut out = Vec::new();
        t.write(&mut out, Some(200)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("TCP connections (1)"));
        assert!(!text.contains("not listed"));
    }

    #[test]
    fn grid_writes_what_comfy_table_writes() {
        // comfy-table is the reference: the same cells through both, byte for byte.
        let mut t = ConnTable::with_limit(10);
        for id in [0, 7, 12_345] {
            t.push(conn(id, Handshake::Complete));
        }
        let mut c = conn(99, Handshake::NotSeen);
        c.client = "[2001:db8::1]:443".parse().unwrap();
        c.client_counts.bytes = 123_456_789;
        c.syn_synack_ns = Some(1_234_567);
        t.push(c);
        let rows = t.cells();
        let mut reference = new_table(Some(220));
        reference.set_header(CONN_HEADER.to_vec());
        for r in &rows {
            reference.add_row(r.to_vec());
        }
        let mut ours = Vec::new();
        write_grid(&mut ours, &CONN_HEADER, &rows).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), format!("{reference}\n"));
        // A column wider than its header, and a one-column table.
        let mut ours = Vec::new();
        write_grid(
            &mut ours,
            &["x"],
            &[["wide→cell".to_string()], [String::new()]],
        )
        .unwrap();
        let mut reference = new_table(Some(220));
        reference.set_header(vec!["x"]);
        reference.add_row(vec!["wide→cell"]);
        reference.add_row(vec![""]);
        assert_eq!(String::from_utf8(ours).unwrap(), format!("{reference}\n"));
    }
}
