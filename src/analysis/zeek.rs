//! Zeek's view of a connection: its endpoint states, `history` letters and `conn_state`
//! (derivation from Zeek's `TCP.cc` / `conn/main.zeek`, summarised in `notes/peers.md` §5).
//!
//! Zeek's originator is taken to be our client; when the first packet came from the server
//! the history starts with `^`, as Zeek writes it after flipping the roles.
//! Content gaps (`g`/`G`) are reported as Zeek's reassembler does when the receiver's ACK
//! passes bytes of the sender's stream that were never seen (log-scaled like `t` and `w`).
//! Not emulated: checksum letters (`c`: checksums are not verified) and the `x` marker.

use crate::decode::TcpFlags;

/// Zeek's endpoint states (`TCP_ENDPOINT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ZState {
    /// Nothing seen.
    #[default]
    Inactive,
    /// Sent a SYN.
    SynSent,
    /// Sent a SYN-ACK as the originator.
    SynAckSent,
    /// Seen mid-stream.
    Partial,
    /// Established.
    Established,
    /// Sent a FIN.
    Closed,
    /// Sent a RST.
    Reset,
}

/// One endpoint as Zeek tracks it.
#[derive(Clone, Copy, Debug, Default)]
struct ZEnd {
    state: ZState,
    prev_state: ZState,
    start_seq: u32,
    last_seq: u32,
    hist_seen: u16,
    last_syn: Option<u32>,
    last_fin: Option<u32>,
    last_rst: Option<u32>,
    rxmt: (u32, u32),
    zero_win: (u32, u32),
    gap: (u32, u32),
    /// One past the highest contiguous byte seen (SYN and FIN count), absolute.
    contig: u32,
    bytes: u64,
}

impl ZEnd {
    fn set(&mut self, s: ZState) {
        self.prev_state = self.state;
        self.state = s;
    }
    fn inactive(&self) -> bool {
        matches!(self.state, ZState::Inactive | ZState::Partial)
    }
}

const H_SYN: u16 = 1;
const H_FIN: u16 = 2;
const H_RST: u16 = 4;
const H_DATA: u16 = 8;
const H_ACK: u16 = 16;
const H_MULTI: u16 = 32;
const H_FINRST: u16 = 64;

/// Maximum history letters kept; Zeek's own strings are short in practice.
const HIST_CAP: usize = 32;

/// Zeek's state for one connection.
#[derive(Clone, Copy, Debug)]
pub struct Zeek {
    ends: [ZEnd; 2],
    hist: [u8; HIST_CAP],
    len: u8,
    started: bool,
}

impl Default for Zeek {
    fn default() -> Self {
        Zeek {
            ends: [ZEnd::default(); 2],
            hist: [0; HIST_CAP],
            len: 0,
            started: false,
        }
    }
}

impl Zeek {
    fn add(&mut self, orig: bool, code: u8) {
        if usize::from(self.len) < HIST_CAP {
            self.hist[usize::from(self.len)] = if orig {
                code.to_ascii_uppercase()
            } else {
                code
            };
            self.len += 1;
        }
    }

    /// Adds `code` the first time `mask` is seen in this direction; true if it was seen before.
    fn check(&mut self, orig: bool, mask: u16, code: u8) -> bool {
        let e = &mut self.ends[usize::from(!orig)];
        if e.hist_seen & mask == 0 {
            e.hist_seen |= mask;
            self.add(orig, code);
            false
        } else {
            true
        }
    }

    /// Feeds one packet; `orig` is true when the client sent it.
    pub fn packet(
        &mut self,
        orig: bool,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        payload: u32,
        window: u16,
    ) {
        if !self.started {
            self.started = true;
            if !orig && usize::from(self.len) < HIST_CAP {
                self.hist[0] = b'^';
                self.len = 1;
            }
        }
        let ack_no = ack;
        let (syn, fin, rst, ack) = (flags.syn(), flags.fin(), flags.rst(), flags.ack());
        let i = usize::from(!orig);
        // Wrapping: a jumbogram's length can be near 2^32, and sequence space wraps anyway.
        let mut seg_len = payload.wrapping_add(u32::from(syn) + u32::from(fin));
        if rst {
            seg_len = seg_len.wrapping_sub(payload);
        }
        let one_past = seq.wrapping_add(seg_len);
        // init_endpoint
        {
            let e = &mut self.ends[i];
            match e.state {
                ZState::Inactive => {
                    if syn {
                        e.start_seq = seq;
                        e.last_seq = one_past;
                    } else {
                        e.start_seq = seq.wrapping_sub(1);
                        e.last_seq = seq;
                    }
                    e.contig = if syn { one_past } else { seq };
                }
                ZState::SynSent | ZState::SynAckSent if syn && seq != e.start_seq => {
                    e.start_seq = seq;
                    e.last_seq = one_past;
                    e.contig = one_past;
                }
                _ => {}
            }
        }
        let rel = seq.wrapping_sub(self.ends[i].start_seq);
        // update_history
        let bits = u8::from(syn) + u8::from(fin) + u8::from(rst);
        if bits > 1 {
            if fin && rst {
                self.check(orig, H_FINRST, b'i');
            } else {
                self.check(orig, H_MULTI, b'q');
            }
        } else if bits == 1 {
            if syn {
                let code = if ack { b'h' } else { b's' };
                if self.check(orig, H_SYN, code) && self.ends[i].last_syn != Some(rel) {
                    self.add(orig, code);
                }
                self.ends[i].last_syn = Some(rel);
            }
            if fin {
                let at = rel.wrapping_add(payload);
                if self.check(orig, H_FIN, b'f') && self.ends[i].last_fin != Some(at) {
                    self.add(orig, b'f');
                }
                self.ends[i].last_fin = Some(at);
            }
            if rst {
                if self.check(orig, H_RST, b'r') && self.ends[i].last_rst != Some(rel) {
                    self.add(orig, b'r');
                }
                self.ends[i].last_rst = Some(rel);
            }
        } else if payload > 0 {
            self.check(orig, H_DATA, b'd');
        } else if ack {
            self.check(orig, H_ACK, b'a');
        }
        // update_window: zero windows, log-scaled
        let peer_closed = self.ends[1 - i].state == ZState::Closed;
        if window == 0 && !rst && !peer_closed && self.ends[i].state != ZState::Reset {
            self.scaled(orig, b'w', |e| &mut e.zero_win);
        }
        // update_last_seq: retransmitted payload, log-scaled
        let delta = one_past.wrapping_sub(self.ends[i].last_seq) as i32;
        if (syn || rst) && !(-16384..=16384).contains(&delta) || delta > 0 {
            self.ends[i].last_seq = one_past;
        } else if payload > 0 {
            self.scaled(orig, b't', |e| &mut e.rxmt);
        }
        if !rst {
            self.ends[i].bytes += u64::from(payload);
            // Contiguous stream: a segment starting at or before its end extends it.
            let e = &mut self.ends[i];
            let starts = e.contig.wrapping_sub(seq) as i32;
            let ends = one_past.wrapping_sub(e.contig) as i32;
            if starts >= 0 && ends > 0 {
                e.contig = one_past;
            }
        }
        // Content gap: the ACK passes bytes of the peer's stream never seen.
        let p = &mut self.ends[1 - i];
        if ack && !rst && p.state != ZState::Inactive {
            // A FIN seen ahead of the data it follows is not part of a gap.
            let fin_at = p.last_fin.map(|r| p.start_seq.wrapping_add(r));
            let end = p.contig.wrapping_add(u32::from(fin_at == Some(p.contig)));
            let beyond = ack_no.wrapping_sub(end) as i32;
            if beyond > 0 {
                p.contig = ack_no;
                self.scaled(!orig, b'g', |e| &mut e.gap);
            }
        }
        self.state_machine(orig, flags, payload);
    }

    fn scaled(&mut self, orig: bool, code: u8, f: impl Fn(&mut ZEnd) -> &mut (u32, u32)) {
        let e = &mut self.ends[usize::from(!orig)];
        let (count, threshold) = f(e);
        *count += 1;
        if *threshold == 0 {
            *threshold = 1;
        }
        if *count == *threshold {
            *threshold = threshold.saturating_mul(10);
            self.add(orig, code);
        }
    }

    fn state_machine(&mut self, orig: bool, flags: TcpFlags, len: u32) {
        let (syn, fin, rst, ack) = (flags.syn(), flags.fin(), flags.rst(), flags.ack());
        let [o, r] = &mut self.ends;
        let orig_state = o.state;
        // This packet's sender and its peer, worked on in place.
        let (e, p) = if orig { (o, r) } else { (r, o) };
        match e.state {
            ZState::Inactive => {
                if syn {
                    if orig {
                        e.set(if ack {
                            ZState::SynAckSent
                        } else {
                            ZState::SynSent
                        });
                    } else {
                        if p.state == ZState::SynSent {
                            p.set(ZState::Established);
                        }
                        e.set(ZState::Established);
                    }
                }
                if fin {
                    e.set(ZState::Closed);
                }
                if rst {
                    e.set(ZState::Reset);
                }
                if e.state == ZState::Inactive {
                    if !orig && len == 0 && orig_state == ZState::SynSent {
                        // An ACK of the SYN before the SYN-ACK: not a partial connection.
                    } else if ack && p.state == ZState::Established {
                        e.set(ZState::Established);
                    } else {
                        e.set(ZState::Partial);
                    }
                }
            }
            ZState::SynSent | ZState::SynAckSent => {
                if fin {
                    e.set(ZState::Closed);
                }
                if rst {
                    e.set(ZState::Reset);
                }
            }
            ZState::Established | ZState::Partial => {
                if syn && e.state == ZState::Partial && p.state == ZState::Inactive && !ack {
                    e.set(ZState::SynSent);
                }
                if fin && !rst {
                    e.set(ZState::Closed);
                    if p.state == ZState::Reset && p.prev_state == ZState::Closed {
                        p.set(ZState::Closed);
                    }
                }
                if rst {
                    e.set(ZState::Reset);
                }
            }
            ZState::Closed => {
                if rst && p.state != ZState::Closed {
                    e.set(ZState::Reset);
                }
            }
            ZState::Reset => {}
        }
    }

    /// The history string (ASCII).
    pub fn history(&self) -> &str {
        std::str::from_utf8(&self.hist[..usize::from(self.len)]).unwrap_or("")
    }

    /// Zeek's `conn_state` code.
    pub fn conn_state(&self) -> &'static str {
        let (o, r) = (&self.ends[0], &self.ends[1]);
        use ZState::*;
        if r.state == Reset {
            if matches!(o.state, SynSent | SynAckSent)
                || (o.state == Reset && o.bytes == 0 && r.bytes == 0)
            {
                return "REJ";
            }
            return if o.inactive() { "RSTRH" } else { "RSTR" };
        }
        if o.state == Reset {
            if r.inactive() {
                return if rstos0_history(self.history()) {
                    "RSTOS0"
                } else {
                    "OTH"
                };
            }
            return "RSTO";
        }
        match (o.state, r.state) {
            (Closed, Closed) => "SF",
            (Closed, _) => {
                if r.inactive() {
                    "SH"
                } else {
                    "S2"
                }
            }
            (_, Closed) => {
                if o.inactive() {
                    "SHR"
                } else {
                    "S3"
                }
            }
            (SynSent, Inactive) => "S0",
            (Established, Established) => "S1",
            _ => "OTH",
        }
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/` on the history.
fn rstos0_history(h: &str) -> bool {
    let b = h.strip_prefix('^').unwrap_or(h).as_bytes();
    if b.first() != Some(&b'S') {
        return false;
    }
    for &c in &b[1..] {
        if c == b'R' {
            return true;
        }
        if b"HAFGIQ".contains(&c) {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u16 = TcpFlags::SYN;
    const A: u16 = TcpFlags::ACK;
    const F: u16 = TcpFlags::FIN;
    const R: u16 = TcpFlags::RST;
    const P: u16 = TcpFlags::PSH;

    fn run(pkts: &[(bool, u16, u32, u32)]) -> (String, &'static str) {
        let mut z = Zeek::default();
        for &(orig, f, seq, len) in pkts {
            z.packet(orig, TcpFlags(f), seq, 0, len, 1000);
        }
        (z.history().to_string(), z.conn_state())
    }

    // Packets as in corpus/zeek/rst-behavior/*.pcap (read with tcpdump); expected values from
    // Zeek's conn_state-RST-behavior baseline.
    #[test]
    fn zeek_rst_behaviour_baseline() {
        assert_eq!(run(&[(true, R, 0, 0)]), ("R".into(), "OTH"));
        assert_eq!(
            run(&[(true, S, 0, 0), (true, R, 0, 0)]),
            ("SR".into(), "RSTOS0")
        );
        assert_eq!(
            run(&[(true, S, 0, 0), (false, A, 0, 0), (true, R, 0, 0)]),
            ("SaR".into(), "RSTOS0")
        );
        assert_eq!(
            run(&[
                (true, S, 0, 0),
                (false, A, 0, 0),
                (true, F, 0, 0),
                (true, R, 0, 0)
            ]),
            ("SaFR".into(), "OTH")
        );
    }

    // Documented meanings (conn/main.zeek): a full exchange is SF with history ShADadFf.
    #[test]
    fn normal_connection_is_sf() {
        let h = run(&[
            (true, S, 100, 0),
            (false, S | A, 900, 0),
            (true, A, 101, 0),
            (true, P | A, 101, 10),
            (false, A, 901, 0),
            (false, P | A, 901, 5),
            (true, A, 111, 0),
            (true, F | A, 111, 0),
            (false, F | A, 906, 0),
            (true, A, 112, 0),
        ]);
        assert_eq!(h, ("ShADadFf".into(), "SF"));
    }

    #[test]
    fn unanswered_syn_is_s0_and_reject_is_rej() {
        assert_eq!(run(&[(true, S, 1, 0)]), ("S".into(), "S0"));
        assert_eq!(run(&[(true, S, 1, 0), (true, S, 1, 0)]), ("S".into(), "S0"));
        assert_eq!(
            run(&[(true, S, 1, 0), (false, R | A, 0, 0)]),
            ("Sr".into(), "REJ")
        );
    }

    #[test]
    fn retransmissions_are_log_scaled() {
        let mut pk = vec![(true, S, 0, 0), (false, S | A, 50, 0), (true, A, 1, 0)];
        for _ in 0..12 {
            pk.push((true, P | A, 1, 10));
        }
        // First copy is new data (D), then 11 repeats: T at the 1st and the 10th.
        assert_eq!(run(&pk).0, "ShADTT");
    }

    // Zeek's history letter `g` ("a content gap"; upper case for the originator): the
    // responder ACKs originator bytes 101..300 that were never seen, then one more hole.
    #[test]
    fn content_gap_letter() {
        let mut z = Zeek::default();
        z.packet(true, TcpFlags(S), 0, 0, 0, 1000);
        z.packet(false, TcpFlags(S | A), 500, 1, 0, 1000);
        z.packet(true, TcpFlags(A), 1, 501, 0, 1000);
        z.packet(true, TcpFlags(A), 1, 501, 100, 1000);
        z.packet(false, TcpFlags(A), 501, 101, 0, 1000);
        z.packet(false, TcpFlags(A), 501, 301, 0, 1000);
        assert_eq!(z.history(), "ShADaG");
        // A FIN seen ahead of the data before it is no gap once the data arrives (the late
        // data counts as a retransmission, `T`, as in the ctu-64702-888 baseline).
        z.packet(true, TcpFlags(F | A), 310, 501, 0, 1000);
        z.packet(true, TcpFlags(A), 301, 501, 9, 1000);
        z.packet(false, TcpFlags(A), 501, 311, 0, 1000);
        assert_eq!(z.history(), "ShADaGFT");
    }
}
