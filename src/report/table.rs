//! The end-of-run connection table (comfy-table).

use crate::analysis::ConnSummary;
use crate::report::annotate::Dur;
use comfy_table::{ContentArrangement, Table, presets};
use std::io::{self, Write};

/// Collects connection summaries and prints them as one table, in id order.
#[derive(Debug, Default)]
pub struct ConnTable {
    rows: Vec<ConnSummary>,
}

fn bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n}"),
        10_000..=9_999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn ms(ns: Option<i64>) -> String {
    ns.map_or_else(|| "-".into(), |v| Dur(v).to_string())
}

impl ConnTable {
    /// An empty table.
    pub fn new() -> Self {
        ConnTable::default()
    }

    /// Adds a connection.
    pub fn push(&mut self, c: ConnSummary) {
        self.rows.push(c);
    }

    /// The rows held, in id order.
    pub fn rows(&mut self) -> &[ConnSummary] {
        self.rows.sort_by_key(|c| c.id);
        &self.rows
    }

    /// Builds the table (`width` fixes the width; None lets comfy-table look at the terminal).
    pub fn build(&mut self, width: Option<u16>) -> Table {
        self.rows.sort_by_key(|c| c.id);
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
        t.set_header(vec![
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
        ]);
        for c in &self.rows {
            let (a, b) = (&c.client_counts, &c.server_counts);
            t.add_row(vec![
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
            ]);
        }
        t
    }

    /// Writes the table (nothing when there are no connections).
    pub fn write(&mut self, out: &mut dyn Write, width: Option<u16>) -> io::Result<()> {
        if self.rows.is_empty() {
            return writeln!(out, "no TCP connections");
        }
        let n = self.rows.len();
        let t = self.build(width);
        writeln!(out, "TCP connections ({n})")?;
        writeln!(out, "{t}")
    }
}
