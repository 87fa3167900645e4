//! TCP header fields and a bounded option walker that keeps unknown kinds.

use super::OptionSummary;

/// End of option list.
pub const OPT_EOL: u8 = 0;
/// No operation (padding).
pub const OPT_NOP: u8 = 1;
/// Maximum segment size.
pub const OPT_MSS: u8 = 2;
/// Window scale.
pub const OPT_WSCALE: u8 = 3;
/// SACK permitted.
pub const OPT_SACKOK: u8 = 4;
/// SACK blocks.
pub const OPT_SACK: u8 = 5;
/// Timestamps.
pub const OPT_TIMESTAMP: u8 = 8;
/// TCP Fast Open (RFC 7413).
pub const OPT_FASTOPEN: u8 = 34;
/// RFC 6994 experimental option (Fast Open before RFC 7413 uses magic 0xF989).
pub const OPT_EXPERIMENT2: u8 = 254;

/// One option as it appears on the wire: its kind and its data (without kind and length bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// Option kind.
    pub kind: u8,
    /// Option data.
    pub data: &'a [u8],
}

/// Walks the option bytes of a TCP header: EOL ends the walk, NOP is one byte, every other
/// kind needs `2 <= len <= remaining`; a malformed option ends the walk with `Err`.
/// At most 40 bytes exist, so the walk is bounded by the slice.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Walks `opts` (the bytes between the fixed header and the data offset).
    pub fn new(opts: &'a [u8]) -> Self {
        Options { rest: opts }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<RawOption<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, tail) = self.rest.split_first()?;
        match kind {
            OPT_EOL => {
                self.rest = &[];
                Some(Ok(RawOption { kind, data: &[] }))
            }
            OPT_NOP => {
                self.rest = tail;
                Some(Ok(RawOption { kind, data: &[] }))
            }
            _ => {
                let len = usize::from(*tail.first().unwrap_or(&0));
                match self.rest.get(2..len.max(2)) {
                    Some(data) if len >= 2 => {
                        self.rest = self.rest.get(len..).unwrap_or(&[]);
                        Some(Ok(RawOption { kind, data }))
                    }
                    _ => {
                        self.rest = &[];
                        Some(Err(()))
                    }
                }
            }
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the options the analysis uses. Options of the wrong size are ignored, unknown kinds
/// are skipped, a malformed option ends the walk.
#[cfg(test)]
fn summarize(opts: &[u8]) -> OptionSummary {
    let mut s = OptionSummary::default();
    summarize_into(opts, &mut s);
    s
}

/// [`summarize`] into `s`, which holds the default summary.
// Inlined for the usual option areas, so their summary is written in place in the segment:
// built on the stack and copied, the copy's wide loads waited on the narrow stores that built
// it (the most stalled instruction of the decode, perf).
#[inline(always)]
pub fn summarize_into(opts: &[u8], s: &mut OptionSummary) {
    match *opts {
        [] => {}
        // Most segments: nop, nop, timestamps (the walk reads the same).
        [
            OPT_NOP,
            OPT_NOP,
            OPT_TIMESTAMP,
            10,
            v0,
            v1,
            v2,
            v3,
            e0,
            e1,
            e2,
            e3,
        ] => {
            s.timestamps = Some((
                u32::from_be_bytes([v0, v1, v2, v3]),
                u32::from_be_bytes([e0, e1, e2, e3]),
            ));
        }
        _ => *s = summarize_walk(opts),
    }
}

/// [`summarize`] for the other option areas.
fn summarize_walk(opts: &[u8]) -> OptionSummary {
    let mut s = OptionSummary::default();
    for o in Options::new(opts) {
        let Ok(o) = o else { break };
        match (o.kind, o.data.len()) {
            (OPT_MSS, 2) => s.mss = Some(u16::from_be_bytes([o.data[0], o.data[1]])),
            (OPT_WSCALE, 1) => s.wscale = Some(o.data[0]),
            (OPT_SACKOK, 0) => s.sack_permitted = true,
            (OPT_TIMESTAMP, 8) => {
                if let (Some(a), Some(b)) = (be32(o.data, 0), be32(o.data, 4)) {
                    s.timestamps = Some((a, b));
                }
            }
            (OPT_SACK, n) if n % 8 == 0 => {
                for block in o.data.chunks_exact(8) {
                    if let (Some(l), Some(r)) = (be32(block, 0), be32(block, 4)) {
                        if usize::from(s.sack_count) < s.sack.len() {
                            s.sack[usize::from(s.sack_count)] = (l, r);
                        }
                        s.sack_count = s.sack_count.saturating_add(1);
                    }
                }
            }
            (OPT_FASTOPEN, _) => s.fast_open = true,
            (OPT_EXPERIMENT2, n) if n >= 2 && o.data[..2] == [0xf9, 0x89] => s.fast_open = true,
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walker_keeps_unknown_kinds_and_reads_past_them() {
        // TFO cookie (34) then timestamps: etherparse stops at kind 34, this walker must not.
        let opts = [34, 6, 1, 2, 3, 4, 8, 10, 0, 0, 0, 5, 0, 0, 0, 7, 1, 0];
        let s = summarize(&opts);
        assert!(s.fast_open);
        assert_eq!(s.timestamps, Some((5, 7)));
    }

    #[test]
    fn malformed_length_stops_the_walk() {
        let kinds: Vec<_> = Options::new(&[2, 1, 4, 2]).collect();
        assert_eq!(kinds, vec![Err(())]);
        let kinds: Vec<_> = Options::new(&[1, 2, 9]).collect();
        assert_eq!(kinds.len(), 2);
        assert!(kinds[1].is_err());
    }

    #[test]
    fn nop_nop_timestamps_read_as_by_the_walk() {
        let opts = [1, 1, 8, 10, 0, 0, 1, 2, 0xff, 0, 0, 3];
        let s = summarize(&opts);
        assert_eq!(s.timestamps, Some((258, 0xff00_0003)));
        assert_eq!((s.mss, s.wscale, s.sack_count), (None, None, 0));
    }

    #[test]
    fn sack_blocks_beyond_four_are_counted() {
        let mut opts = vec![5, 2 + 5 * 8];
        for i in 0..10u32 {
            opts.extend_from_slice(&i.to_be_bytes());
        }
        let s = summarize(&opts);
        assert_eq!(s.sack_count, 5);
        assert_eq!(s.sack[3], (6, 7));
    }
}
