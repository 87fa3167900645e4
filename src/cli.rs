//! The command line as parsed, before validation (see [`crate::config`] for the checked form).
//!
//! Commands and tcpdump-compatible flags are fixed by the project's contract; keep their names.

use clap::{Args, Parser, Subcommand};

/// tcplens: reads packet captures, rebuilds every TCP connection and explains each packet.
#[derive(Debug, Parser)]
#[command(name = "tcplens", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a pcap or pcapng capture (`-` for standard input).
    Read {
        /// The capture file, or `-` for standard input.
        file: String,
        /// A tcpdump (libpcap) filter expression.
        filter: Vec<String>,
        /// Output and analysis options.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Capture live on an interface (needs root or CAP_NET_RAW / CAP_NET_ADMIN).
    Live(LiveArgs),
}

/// The `live` subcommand's arguments.
#[derive(Debug, Args, Clone)]
pub struct LiveArgs {
    /// The interface to capture on.
    #[arg(
        short = 'i',
        long = "interface",
        required_unless_present = "list_interfaces"
    )]
    pub iface: Option<String>,
    /// List the interfaces that can be captured on, as tcpdump -D does.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,
    /// Bytes to capture of each packet (tcpdump -s; 0 means 262144).
    #[arg(short = 's', long = "snapshot-length", default_value_t = 262_144)]
    pub snaplen: i32,
    /// Also write the raw packets to this pcap file (tcpdump -w).
    #[arg(short = 'w')]
    pub write: Option<String>,
    /// Do not put the interface into promiscuous mode (tcpdump -p).
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promisc: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// A tcpdump (libpcap) filter expression, run in the kernel.
    pub filter: Vec<String>,
    /// Output and analysis options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Output selection and tcpdump's printing flags, shared by `read` and `live`.
#[derive(Debug, Args, Default, Clone)]
pub struct OutputArgs {
    /// Print only the line `tcpdump -n` prints for each TCP packet.
    #[arg(long, group = "mode")]
    pub plain: bool,
    /// Print only the end-of-run tables.
    #[arg(long, group = "mode")]
    pub summary: bool,
    /// Print one JSON document when the run ends.
    #[arg(long, group = "mode")]
    pub json: bool,
    /// Print one JSON record per line as the capture is read.
    #[arg(long, group = "mode")]
    pub ndjson: bool,
    /// Spell out the sequence arithmetic of handshake and close steps.
    #[arg(long)]
    pub explain: bool,
    /// Print absolute TCP sequence numbers (tcpdump -S).
    #[arg(short = 'S', long = "absolute-tcp-sequence-numbers")]
    pub absolute: bool,
    /// Timestamp format: -t none, -tt epoch, -ttt delta, -tttt date, -ttttt since first.
    #[arg(short = 't', action = clap::ArgAction::Count)]
    pub t: u8,
    /// Print timestamps with nanoseconds (tcpdump --nano).
    #[arg(long = "nano", visible_alias = "time-stamp-precision-nano")]
    pub nano: bool,
    /// Print a packet number at the start of each line (tcpdump -#).
    #[arg(short = '#', long = "number")]
    pub number: bool,
    /// Print the link-level header (tcpdump -e).
    #[arg(short = 'e')]
    pub link_header: bool,
    /// Verbose: IP header fields and the TCP checksum verdict (tcpdump -v).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Stop after this many packets (tcpdump -c).
    #[arg(short = 'c')]
    pub count: Option<u64>,
    /// Maximum segment lifetime in seconds: TIME_WAIT lasts 2 MSL of capture time.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub msl: f64,
    /// Forget a connection after this many seconds without a packet.
    #[arg(long = "idle-timeout", default_value_t = 300.0, value_name = "SECONDS")]
    pub idle_timeout: f64,
    /// Most connections tracked at once; the least recently active are evicted beyond it.
    #[arg(long = "max-connections", default_value_t = crate::analysis::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections listed one per row in the end table (the first seen); all are counted in
    /// the totals below it, and listed in --json / --ndjson.
    #[arg(long = "table-rows", default_value_t = crate::report::table::DEFAULT_TABLE_ROWS)]
    pub table_rows: usize,
    /// SYN flood: sliding window for SYN rates, seconds.
    #[arg(long = "syn-window", default_value_t = 1.0, value_name = "SECONDS")]
    pub syn_window: f64,
    /// SYN flood: a handshake not complete this long after its SYN has failed, seconds.
    #[arg(long = "syn-grace", default_value_t = 3.0, value_name = "SECONDS")]
    pub syn_grace: f64,
    /// SYN flood: failed, never-retransmitted SYNs to one port within one window.
    #[arg(
        long = "syn-flood-threshold",
        default_value_t = 10,
        value_name = "SYNS"
    )]
    pub syn_flood_threshold: u32,
    /// SYN flood: how long a server keeps a half-open connection, seconds.
    #[arg(
        long = "half-open-timeout",
        default_value_t = 63.0,
        value_name = "SECONDS"
    )]
    pub half_open_timeout: f64,
    /// TIME_WAIT buildup: connections in TIME_WAIT on one host that make a finding.
    #[arg(
        long = "time-wait-threshold",
        default_value_t = 200,
        value_name = "CONNECTIONS"
    )]
    pub time_wait_threshold: u32,
    /// SYN cookies: connections judged cookie replies that make a finding for their port.
    #[arg(
        long = "syn-cookie-min",
        default_value_t = 3,
        value_name = "CONNECTIONS"
    )]
    pub syn_cookie_min: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tcpdump_style_flags_parse() {
        let cli =
            Cli::try_parse_from(["tcplens", "read", "x.pcap", "-tttt", "-#", "-S", "-vv"]).unwrap();
        let Command::Read { output, .. } = cli.command else {
            panic!("not read")
        };
        assert_eq!(output.t, 4);
        assert!(output.number && output.absolute);
        assert_eq!(output.verbose, 2);
    }

    #[test]
    fn live_takes_tcpdump_capture_flags() {
        let cli = Cli::try_parse_from([
            "tcplens", "live", "-i", "lo", "-c", "5", "-s", "96", "-w", "x.pcap", "-p", "tcp",
            "port", "80",
        ])
        .unwrap();
        let Command::Live(a) = cli.command else {
            panic!("not live")
        };
        assert_eq!(a.iface.as_deref(), Some("lo"));
        assert_eq!(
            (a.snaplen, a.write.as_deref(), a.no_promisc),
            (96, Some("x.pcap"), true)
        );
        assert_eq!(a.filter, ["tcp", "port", "80"]);
        assert_eq!(a.output.count, Some(5));
        assert!(Cli::try_parse_from(["tcplens", "live"]).is_err());
        assert!(Cli::try_parse_from(["tcplens", "live", "-D"]).is_ok());
    }

    #[test]
    fn output_modes_are_exclusive() {
        assert!(Cli::try_parse_from(["tcplens", "read", "x", "--plain", "--json"]).is_err());
    }
}
