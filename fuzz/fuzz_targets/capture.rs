//! The capture reader over arbitrary bytes (pcap, pcapng or neither): no panic, no runaway
//! allocation (libFuzzer's -malloc_limit_mb), frames numbered 1, 2, …, damage reported at the
//! next packet number inside the input, and the same result whether the bytes arrive at once
//! or a few at a time, as from a pipe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};
use std::ops::ControlFlow;
use tcplens::capture::CaptureError;
use tcplens::capture::file::FileSource;

/// Hands out at most `chunk` bytes per read.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = self.chunk.min(buf.len()).min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// (frames, FNV-1a digest of every frame's fields and bytes, the error's text).
fn read(data: &[u8], chunk: usize) -> (u64, u64, Option<String>) {
    let input = Chunked {
        data: data.to_vec(),
        pos: 0,
        chunk,
    };
    let mut src = match FileSource::from_reader("fuzz", Box::new(input)) {
        Ok(src) => src,
        Err(e) => {
            if let CaptureError::Damaged { packet, offset, .. } = &e {
                assert_eq!((*packet, *offset), (1, 0), "{e}");
            }
            return (0, 0, Some(e.to_string()));
        }
    };
    let (mut n, mut bytes, mut h) = (0u64, 0u64, 0xcbf2_9ce4_8422_2325u64);
    let mut mix = |b: &[u8]| {
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
        }
    };
    let r = src.run(|f| {
        n += 1;
        assert_eq!(f.number, n);
        bytes += f.data.len() as u64;
        mix(&f.ts.0.to_le_bytes());
        mix(&f.linktype.0.to_le_bytes());
        mix(&f.iface.to_le_bytes());
        mix(&f.origlen.to_le_bytes());
        mix(f.data);
        ControlFlow::Continue(())
    });
    assert_eq!(src.info().packets, n);
    assert_eq!(src.info().bytes, bytes);
    let err = r.err().map(|e| {
        match &e {
            CaptureError::Damaged { packet, offset, .. } => {
                assert_eq!(*packet, n + 1, "{e}");
                assert!(*offset <= data.len() as u64, "{e}");
            }
            e => panic!("not damage: {e}"),
        }
        e.to_string()
    });
    (n, h, err)
}

fuzz_target!(|data: &[u8]| {
    let whole = read(data, usize::MAX);
    let trickled = read(data, 1 + data.len() % 7);
    assert_eq!(whole, trickled);
});
