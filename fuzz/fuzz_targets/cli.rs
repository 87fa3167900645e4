//! Command-line parsing and validation over arbitrary words: clap's parser, the checked
//! `Config`, and (for short expressions) libpcap's filter compiler for two link types.
//! Errors are fine; panics, hangs and unprintable messages are not.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use tcplens::capture::{Frame, Linktype, Timestamp};
use tcplens::cli::{Cli, Command};
use tcplens::config::Config;
use tcplens::filter::Filter;

/// libpcap's compiler is C and not the subject here: keep each compile cheap.
const MAX_FILTER: usize = 256;

fuzz_target!(|data: &[u8]| {
    // Words are NUL-separated, as in argv.
    let words = std::iter::once("tcplens".to_string()).chain(
        data.split(|&b| b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned()),
    );
    let cli = match Cli::try_parse_from(words) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.render().to_string();
            return;
        }
    };
    let (filter, output) = match cli.command {
        Command::Read { filter, output, .. } => (filter, output),
        Command::Live(a) => (a.filter, a.output),
    };
    let _ = Config::from_output_args(&output).map_err(|e| e.to_string());
    if filter.iter().map(|w| w.len() + 1).sum::<usize>() > MAX_FILTER {
        return;
    }
    match Filter::from_words(&filter) {
        Ok(Some(mut f)) => {
            let data = [0u8; 64];
            for linktype in [Linktype::ETHERNET, Linktype::LINUX_SLL2] {
                let frame = Frame {
                    number: 1,
                    ts: Timestamp(0),
                    linktype,
                    iface: 0,
                    origlen: 64,
                    data: &data,
                };
                let _ = f.matches(&frame).map_err(|e| e.to_string());
            }
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
