//! The `tcplens` binary: parses the command line, runs the pipeline and maps the outcome to the
//! exit status (0 complete, 1 usage / I/O / setup error, 2 input incomplete or damaged).

use clap::Parser;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use tcplens::cli::{Cli, Command, LiveArgs};
use tcplens::config::{Config, Mode};
use tcplens::filter::Filter;
use tcplens::pipeline::Outcome;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcplens: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Read {
            file,
            filter,
            output,
        } => {
            let cfg = Config::from_output_args(&output)?;
            let filter = Filter::from_words(&filter)?;
            let mut out = BufWriter::with_capacity(1 << 16, stdout_file());
            let outcome = tcplens::pipeline::run_file(&file, &cfg, filter, &mut out)?;
            out.flush()?;
            report_end(&cfg, &outcome)
        }
        Command::Live(args) => live(args),
    }
}

/// Standard output as a plain file: the pipeline's writes (a batch at a time) go straight to
/// the descriptor instead of through `Stdout`'s line buffer and lock, from either of its two
/// threads. Nothing else writes to standard output during a run.
fn stdout_file() -> Box<dyn Write + Send> {
    match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(File::from(fd)),
        // A closed standard output: `Stdout` discards what is written to it, so do the same.
        Err(_) => Box::new(io::sink()),
    }
}

/// Writes the end-of-run statistics and any damage; returns the exit status.
fn report_end(cfg: &Config, outcome: &Outcome) -> anyhow::Result<ExitCode> {
    let stderr = io::stderr();
    let mut err = stderr.lock();
    if matches!(cfg.mode, Mode::Annotated | Mode::Plain | Mode::Summary) {
        outcome.stats.write_text(&mut err)?;
    }
    if let Some(damage) = &outcome.damage {
        writeln!(err, "tcplens: {damage}")?;
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "live")]
fn live(a: LiveArgs) -> anyhow::Result<ExitCode> {
    use tcplens::capture::live::{LiveOptions, list_interfaces};
    if a.list_interfaces {
        let mut out = io::stdout().lock();
        for line in list_interfaces()? {
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut cfg = Config::from_output_args(&a.output)?;
    cfg.flush_each = true;
    let duration = match a.duration {
        Some(d) if d.is_finite() && d > 0.0 => Some(std::time::Duration::from_secs_f64(d)),
        Some(d) => anyhow::bail!("--duration must be a positive number of seconds, not {d}"),
        None => None,
    };
    let opts = LiveOptions {
        iface: a.iface.unwrap_or_default(),
        snaplen: if a.snaplen <= 0 { 262_144 } else { a.snaplen },
        promisc: !a.no_promisc,
        filter: (!a.filter.is_empty()).then(|| a.filter.join(" ")),
        write: a.write,
        duration,
    };
    let mut out = BufWriter::with_capacity(1 << 16, stdout_file());
    let (outcome, counters) = tcplens::pipeline::run_live(opts, &cfg, &mut out)?;
    out.flush()?;
    let code = report_end(&cfg, &outcome)?;
    if matches!(cfg.mode, Mode::Annotated | Mode::Plain | Mode::Summary) {
        eprintln!(
            "{} packets received by filter\n{} packets dropped by kernel\n{} packets dropped by interface",
            counters.received, counters.dropped, counters.if_dropped
        );
    }
    Ok(code)
}

#[cfg(not(feature = "live"))]
fn live(_: LiveArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("live capture needs libpcap: this tcplens was built without the `live` feature")
}

/// True when the error chain holds a broken pipe: `tcplens ... | head` is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
