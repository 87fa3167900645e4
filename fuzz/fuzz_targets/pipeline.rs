//! The whole `read` pipeline over arbitrary capture bytes, as `tcplens read FILE` runs it
//! (every stage after the capture is in `Run`, so later stages are fuzzed here as they land).
//! The last input byte and the length pick the output mode and flags; `--json` output must be
//! one JSON document and `--ndjson` output one JSON object with a `type` per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcplens::capture::file::FileSource;
use tcplens::config::Mode;
use tcplens::pipeline::Run;
use tcplens_fuzz::{assert_printable, config, json_document, json_lines};

fuzz_target!(|data: &[u8]| {
    let flags = data.last().copied().unwrap_or(0);
    let cfg = config(flags, data.len() as u8);
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    let Ok(mut src) = FileSource::from_reader("fuzz", input) else {
        return;
    };
    let mut out = Vec::new();
    let mut run = Run::new(&cfg, "fuzz", None, &mut out);
    let r = src.run(|f| run.on_frame(f));
    let info = src.info().clone();
    let outcome = run
        .finish(r, Some(&info), None)
        .expect("no output error into a Vec");
    let counted: u64 = outcome.stats.by_kind.iter().map(|(_, n)| n).sum();
    assert_eq!(outcome.stats.packets, counted);
    match cfg.count {
        Some(c) => assert!(outcome.stats.packets <= c),
        None => assert_eq!(outcome.stats.packets, src.info().packets),
    }
    match cfg.mode {
        Mode::Json => json_document(&out),
        Mode::Ndjson => json_lines(&out),
        _ => assert_printable(&out),
    }
});
