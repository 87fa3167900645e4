//! Findings as text: one line when a finding fires (annotated stream, live), and the findings
//! table at the end of the text output.
//!
//! ```text
//! !! finding syn_flood 10.10.0.1:80 since 2023-11-14T22:13:25.5Z (confidence 0.74): 20 SYNs …
//! ```

use crate::detect::{Figures, Finding};
use crate::report::ndjson::Rfc3339;
use crate::report::table::new_table;
use std::io::{self, Write};

/// The key figures of a finding, short.
fn headline(f: &Finding) -> String {
    match &f.figures {
        Figures::SynFlood(x) => format!(
            "{} failed SYNs from {} sources, peak {:.0} SYN/s, peak half-open {}, {:.0}% completed{}",
            x.suspect_syns,
            x.distinct_sources,
            x.peak_syn_rate,
            x.peak_half_open,
            x.completion_ratio * 100.0,
            if x.one_way {
                ", one direction only"
            } else {
                ""
            }
        ),
        Figures::TimeWait(x) => format!(
            "peak {} in TIME_WAIT, {} entered ({} as server, {} as client), up to {}/s",
            x.peak_time_wait, x.entered, x.as_server, x.as_client, x.peak_entry_rate
        ),
        Figures::SynCookies(x) => format!(
            "{} of {} handshakes answered with SYN cookies (mean confidence {:.2})",
            x.cookie_connections, x.judged, x.mean_confidence
        ),
    }
}

/// Writes the one-line form printed when a finding fires.
pub fn write_line(out: &mut dyn Write, f: &Finding) -> io::Result<()> {
    writeln!(
        out,
        "!! finding {} {} since {} (confidence {:.2}): {}",
        f.kind.as_str(),
        f.subject,
        Rfc3339(f.first_time),
        f.confidence,
        headline(f)
    )
}

/// Writes the findings table (`width` fixes the width; None lets comfy-table look at the
/// terminal).
pub fn write_table(
    out: &mut dyn Write,
    findings: &[Finding],
    width: Option<u16>,
) -> io::Result<()> {
    if findings.is_empty() {
        return writeln!(out, "no findings");
    }
    let mut t = new_table(width);
    t.set_header(vec![
        "kind",
        "subject",
        "first",
        "last",
        "confidence",
        "figures",
        "evidence",
    ]);
    for f in findings {
        t.add_row(vec![
            f.kind.as_str().to_string(),
            f.subject.clone(),
            Rfc3339(f.first_time).to_string(),
            Rfc3339(f.last_time).to_string(),
            format!("{:.2}", f.confidence),
            headline(f),
            f.evidence.join("; "),
        ]);
    }
    writeln!(out, "Findings ({})", findings.len())?;
    writeln!(out, "{t}")
}
