//! End-of-run statistics: packets by kind.

use crate::decode::Kind;
use std::io::{self, Write};

/// Packet counts by decode result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every frame read.
    pub packets: u64,
    /// Frames by kind, in [`Kind`] order.
    pub by_kind: Vec<(Kind, u64)>,
}

impl Stats {
    /// Counts one frame.
    pub fn count(&mut self, kind: Kind) {
        self.packets += 1;
        match self.by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.by_kind.push((kind, 1)),
        }
    }

    /// Writes the statistics as text (to standard error in text modes).
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{} packets read", self.packets)?;
        for (kind, n) in &self.by_kind {
            writeln!(out, "  {n} {kind:?}")?;
        }
        Ok(())
    }
}
