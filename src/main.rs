//! The `tcplens` binary: parses the command line, runs the pipeline and maps the outcome to the
//! exit status (0 complete, 1 usage / I/O / setup error, 2 input incomplete or damaged).

use clap::Parser;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use tcplens::cli::{Cli, Command};
use tcplens::config::{Config, Mode};
use tcplens::filter::Filter;

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
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            let outcome = tcplens::pipeline::run_file(&file, &cfg, filter, &mut out)?;
            out.flush()?;
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
    }
}

/// True when the error chain holds a broken pipe: `tcplens ... | head` is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
