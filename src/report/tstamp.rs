//! tcpdump's timestamp column (`ts_print` in util-print.c): clock, none, epoch, deltas, date.

use crate::capture::Timestamp;
use crate::config::TimeFormat;
use crate::report::tcpdump::{Sink, ZEROS, digits8};
use jiff::tz::TimeZone;
use std::io::Write;

/// A timestamp at the printing precision: whole seconds and microseconds or nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Tv {
    sec: i64,
    frac: i64,
}

/// The local-time offset cached with the span of time it holds for, so the zone database is
/// consulted once per offset change, not once per packet.
#[derive(Debug)]
struct OffsetCache {
    tz: TimeZone,
    /// Valid for seconds in `from..to`.
    from: i64,
    to: i64,
    offset: i64,
}

impl OffsetCache {
    fn new() -> Self {
        OffsetCache {
            tz: TimeZone::system(),
            from: 0,
            to: 0,
            offset: 0,
        }
    }

    fn offset(&mut self, sec: i64) -> i64 {
        if (self.from..self.to).contains(&sec) {
            return self.offset;
        }
        let Ok(ts) = jiff::Timestamp::from_second(sec) else {
            return 0;
        };
        self.offset = i64::from(self.tz.to_offset(ts).seconds());
        // The offset holds from the preceding transition (inclusive) to the next one.
        self.from = self
            .tz
            .preceding(
                ts.checked_add(jiff::SignedDuration::from_secs(1))
                    .unwrap_or(ts),
            )
            .next()
            .map_or(i64::MIN, |t| t.timestamp().as_second());
        self.to = self
            .tz
            .following(ts)
            .next()
            .map_or(i64::MAX, |t| t.timestamp().as_second());
        self.offset
    }
}

/// Formats the timestamp column; keeps the reference time of the delta formats.
#[derive(Debug)]
pub struct Clock {
    format: TimeFormat,
    nano: bool,
    tv_ref: Tv,
    tz: Option<OffsetCache>,
    /// The local second whose text `sec_text` holds: packets come many to a second, so the
    /// clock and date formats reuse it.
    sec_cached: Option<i64>,
    sec_text: Vec<u8>,
    /// `sec_text` in a fixed-size array when it fits (always, for 32-bit times): stored
    /// with one fixed-size write.
    sec_word: Option<[u8; 24]>,
    /// For the default format (`HH:MM:SS.ffffff`): the start, in nanoseconds, of the second
    /// whose text `hms_word` holds (little-endian), when set. Most packets share their
    /// second with the one before, so they skip the offset lookup and the other formats.
    fast_from: Option<i64>,
    hms_word: u64,
}

/// Two digits of `v` (0..100) at `at`.
fn two(text: &mut [u8; 8], at: usize, v: i64) {
    text[at] = b'0' + (v / 10) as u8;
    text[at + 1] = b'0' + (v % 10) as u8;
}

fn hms(out: &mut impl Sink, sec: i64) {
    let s = sec.rem_euclid(86_400);
    let mut text = *b"00:00:00";
    two(&mut text, 0, s / 3600);
    two(&mut text, 3, s / 60 % 60);
    two(&mut text, 6, s % 60);
    out.put(text, 8);
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Clock {
    /// A clock for the given format; `nano` selects nine fractional digits.
    pub fn new(format: TimeFormat, nano: bool) -> Self {
        let tz = matches!(format, TimeFormat::Clock | TimeFormat::Date).then(OffsetCache::new);
        Clock {
            format,
            nano,
            tv_ref: Tv::default(),
            tz,
            sec_cached: None,
            sec_text: Vec::with_capacity(32),
            sec_word: None,
            fast_from: None,
            hms_word: 0,
        }
    }

    fn tv(&self, ts: Timestamp) -> Tv {
        let ns = i64::from(ts.subsec_nanos());
        // libpcap hands tcpdump a pcap record's seconds as a signed 32-bit value: after
        // 2038 they are negative, which the delta formats show.
        Tv {
            sec: i64::from(ts.secs() as i32),
            frac: if self.nano { ns } else { ns / 1000 },
        }
    }

    fn frac(&self, out: &mut impl Sink, frac: i64) {
        let digits = if self.nano { 9 } else { 6 };
        if !(0..10i64.pow(digits as u32)).contains(&frac) {
            // Not reached (fractions are below one second); kept exact all the same.
            let _ = write!(out, ".{frac:0digits$}");
            return;
        }
        // `.{frac:06}` / `.{frac:09}` by hand, in place: this runs for every printed packet.
        if self.nano {
            let hi = (frac / 100_000_000) as u128;
            let low = u128::from(digits8((frac % 100_000_000) as u32) | ZEROS);
            out.put(
                (u128::from(b'.') | (0x30 + hi) << 8 | low << 16).to_le_bytes(),
                10,
            );
        } else {
            // Eight digits of which the first two are zero: drop them, put the dot in front.
            let text = ((digits8(frac as u32) | ZEROS) >> 16) << 8 | u64::from(b'.');
            out.put(text.to_le_bytes(), 7);
        }
    }

    /// tcpdump refuses times with bit 31 of the seconds set.
    fn bad(sec: i64) -> bool {
        (sec as u32) & 0x8000_0000 != 0
    }

    fn clock(&mut self, out: &mut impl Sink, tv: Tv, date: bool) {
        if Self::bad(tv.sec) {
            let _ = out.write_all(b"[Error converting time]");
            return;
        }
        let local = tv.sec + self.tz.as_mut().map_or(0, |c| c.offset(tv.sec));
        // A Clock prints one format, so the cached text is of this format.
        if self.sec_cached != Some(local) {
            self.sec_text.clear();
            if date {
                let (y, m, d) = civil(local.div_euclid(86_400));
                let _ = write!(self.sec_text, "{y:04}-{m:02}-{d:02} ");
            }
            hms(&mut self.sec_text, local);
            self.sec_cached = Some(local);
            self.sec_word = self.sec_text.get(..).and_then(|t| {
                let mut w = [0u8; 24];
                w.get_mut(..t.len())?.copy_from_slice(t);
                Some(w)
            });
        }
        // `sec_text` is this second's text: the fast path of `write` may reuse it.
        if let (false, Ok(w)) = (date, <[u8; 8]>::try_from(self.sec_text.as_slice())) {
            self.hms_word = u64::from_le_bytes(w);
            // Only where the 32-bit cast of the seconds (`tv`) is exact.
            self.fast_from = tv.sec.checked_mul(1_000_000_000);
        }
        match self.sec_word {
            Some(w) => out.put(w, self.sec_text.len()),
            None => {
                let _ = out.write_all(&self.sec_text);
            }
        }
        self.frac(out, tv.frac);
    }

    /// The column of the default format (`HH:MM:SS.ffffff `) when `ts` is in the second
    /// last printed; None otherwise (then [`write`](Self::write) does the work).
    #[inline(always)]
    pub(crate) fn fast(&self, ts: Timestamp) -> Option<[u8; 16]> {
        let from = self.fast_from?;
        // Within the second: one subtraction and one comparison, no division.
        let ns = u64::try_from(ts.0.checked_sub(from)?)
            .ok()
            .filter(|&ns| ns < 1_000_000_000)?;
        if self.format != TimeFormat::Clock || self.nano {
            return None;
        }
        // `.ffffff `: the fraction's eight digits, of which the first two are zero,
        // shifted in behind the dot.
        let frac =
            ((digits8((ns / 1000) as u32) | ZEROS) >> 16) << 8 | u64::from(b'.') | 0x20 << 56;
        Some((u128::from(self.hms_word) | u128::from(frac) << 64).to_le_bytes())
    }

    /// Writes the column (with its trailing space) for a printed packet.
    pub(crate) fn write(&mut self, out: &mut impl Sink, ts: Timestamp) {
        if let Some(text) = self.fast(ts) {
            out.put(text, 16);
            return;
        }
        let tv = self.tv(ts);
        match self.format {
            TimeFormat::Clock => self.clock(out, tv, false),
            TimeFormat::Date => self.clock(out, tv, true),
            TimeFormat::None => return,
            TimeFormat::Epoch => {
                if Self::bad(tv.sec) {
                    let _ = out.write_all(b"[Error converting time]");
                } else {
                    let _ = out.write_all(itoa::Buffer::new().format(tv.sec as u32).as_bytes());
                    self.frac(out, tv.frac);
                }
            }
            TimeFormat::Delta | TimeFormat::SinceFirst => {
                if self.tv_ref == Tv::default() {
                    self.tv_ref = tv;
                }
                let (neg, a, b) = if tv < self.tv_ref {
                    (true, self.tv_ref, tv)
                } else {
                    (false, tv, self.tv_ref)
                };
                let unit = if self.nano { 1_000_000_000 } else { 1_000_000 };
                let mut sec = a.sec - b.sec;
                let mut frac = a.frac - b.frac;
                if frac < 0 {
                    sec -= 1;
                    frac += unit;
                }
                out.put([if neg { b'-' } else { b' ' }], 1);
                if Self::bad(sec) {
                    let _ = out.write_all(b"[Error converting time]");
                } else {
                    hms(out, sec);
                    self.frac(out, frac);
                }
                if self.format == TimeFormat::Delta {
                    self.tv_ref = tv;
                }
            }
        }
        out.put([b' '], 1);
    }

    /// Notes a packet that is not printed: `-ttt` deltas run from the previous packet of any
    /// kind, as tcpdump prints every packet.
    pub fn skip(&mut self, ts: Timestamp) {
        match self.format {
            TimeFormat::Delta => self.tv_ref = self.tv(ts),
            TimeFormat::SinceFirst if self.tv_ref == Tv::default() => self.tv_ref = self.tv(ts),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written column parts against std's `fmt`, which they replace.
    #[test]
    fn fast_parts_match_std_fmt() {
        for sec in [
            0i64,
            59,
            3599,
            3600,
            86_399,
            86_400,
            1_700_000_000,
            -1,
            -86_401,
        ] {
            let mut out = Vec::new();
            hms(&mut out, sec);
            let s = sec.rem_euclid(86_400);
            let want = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
            assert_eq!(out, want.as_bytes());
        }
        for nano in [false, true] {
            let c = Clock::new(TimeFormat::Epoch, nano);
            for frac in [
                0i64,
                7,
                999_999,
                123_456_789,
                999_999_999,
                1_000_000_000,
                -5,
            ]
            .into_iter()
            .chain((0..1_000_000).step_by(7))
            .chain((0..1_000_000_000).step_by(999_983))
            {
                let mut out = Vec::new();
                c.frac(&mut out, frac);
                let want = if nano {
                    format!(".{frac:09}")
                } else {
                    format!(".{frac:06}")
                };
                assert_eq!(out, want.as_bytes(), "frac {frac} nano {nano}");
            }
        }
    }

    #[test]
    fn clock_reuses_the_second_only_within_it() {
        let mut c = Clock::new(TimeFormat::Date, false);
        let mut out = Vec::new();
        for ts in [
            1_700_000_000_000_000_000i64,
            1_700_000_000_500_000_000,
            1_700_000_001_000_001_000,
        ] {
            c.write(&mut out, Timestamp(ts));
        }
        // Each timestamp formatted alone, by a fresh clock.
        let mut want = Vec::new();
        for ts in [
            1_700_000_000_000_000_000i64,
            1_700_000_000_500_000_000,
            1_700_000_001_000_001_000,
        ] {
            Clock::new(TimeFormat::Date, false).write(&mut want, Timestamp(ts));
        }
        assert_eq!(out, want);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(18_423), (2020, 6, 10));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
