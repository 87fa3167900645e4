//! Decoder and tcpdump printer over arbitrary frames of every link type with every flag
//! combination. Input: `[link type][flags][time format]` then frames as [`frames`] splits them;
//! one printer prints them all, so its state (relative sequence numbers, -ttt deltas) is
//! exercised too, and each frame is printed a second time to hit the "already seen" paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcplens::capture::Frame;
use tcplens::decode::{self, Kind};
use tcplens::report::tcpdump::TcpdumpPrinter;
use tcplens_fuzz::{LINKTYPES, assert_printable, frames, line_format};

fuzz_target!(|data: &[u8]| {
    let Some((&[lt, flags, time], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let linktype = LINKTYPES[usize::from(lt) % LINKTYPES.len()];
    let mut printer = TcpdumpPrinter::new(line_format(flags, time));
    let mut out = Vec::new();
    for (i, raw) in frames(rest).enumerate() {
        let frame = Frame {
            number: i as u64 + 1,
            ts: raw.ts,
            linktype,
            iface: 0,
            origlen: raw.origlen,
            data: raw.data,
        };
        let d = decode::decode(&frame);
        assert_eq!(d.segment.is_some(), d.kind == Kind::Tcp, "{:?}", d.kind);
        if matches!(
            d.kind,
            Kind::Tcp | Kind::TcpTruncated | Kind::TcpBadHeader | Kind::TcpFragment
        ) {
            assert!(d.is_tcp(), "{:?}", d.kind);
        }
        for _ in 0..2 {
            out.clear();
            let printed = printer.write_packet(&mut out, &frame, &d).unwrap();
            assert_eq!(printed, d.is_tcp());
            assert_eq!(printed, out.last() == Some(&b'\n'));
            assert_printable(&out);
        }
    }
});
