//! tcpdump's timestamp column (`ts_print` in util-print.c): clock, none, epoch, deltas, date.

use crate::capture::Timestamp;
use crate::config::TimeFormat;
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
}

fn hms(out: &mut Vec<u8>, sec: i64) {
    let s = sec.rem_euclid(86_400);
    let _ = write!(out, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
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

    fn frac(&self, out: &mut Vec<u8>, frac: i64) {
        let _ = if self.nano {
            write!(out, ".{frac:09}")
        } else {
            write!(out, ".{frac:06}")
        };
    }

    /// tcpdump refuses times with bit 31 of the seconds set.
    fn bad(sec: i64) -> bool {
        (sec as u32) & 0x8000_0000 != 0
    }

    fn clock(&mut self, out: &mut Vec<u8>, tv: Tv, date: bool) {
        if Self::bad(tv.sec) {
            out.extend_from_slice(b"[Error converting time]");
            return;
        }
        let local = tv.sec + self.tz.as_mut().map_or(0, |c| c.offset(tv.sec));
        if date {
            let (y, m, d) = civil(local.div_euclid(86_400));
            let _ = write!(out, "{y:04}-{m:02}-{d:02} ");
        }
        hms(out, local);
        self.frac(out, tv.frac);
    }

    /// Writes the column (with its trailing space) for a printed packet.
    pub fn write(&mut self, out: &mut Vec<u8>, ts: Timestamp) {
        let tv = self.tv(ts);
        match self.format {
            TimeFormat::Clock => self.clock(out, tv, false),
            TimeFormat::Date => self.clock(out, tv, true),
            TimeFormat::None => return,
            TimeFormat::Epoch => {
                if Self::bad(tv.sec) {
                    out.extend_from_slice(b"[Error converting time]");
                } else {
                    let _ = write!(out, "{}", tv.sec as u32);
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
                out.push(if neg { b'-' } else { b' ' });
                if Self::bad(sec) {
                    out.extend_from_slice(b"[Error converting time]");
                } else {
                    hms(out, sec);
                    self.frac(out, frac);
                }
                if self.format == TimeFormat::Delta {
                    self.tv_ref = tv;
                }
            }
        }
        out.push(b' ');
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

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(18_423), (2020, 6, 10));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
