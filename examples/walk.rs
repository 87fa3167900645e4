//! The floor of the performance targets (issue 7): a bare pcap record walk with pcap-parser,
//! no decoding. `scripts/bench-vs-peers.sh` times it beside tcplens as "bare record walk".
//!
//!     cargo run --release --example walk -- FILE

use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError};
use std::fs::File;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: walk FILE"))?;
    let mut reader = LegacyPcapReader::new(1 << 16, File::open(&path)?)?;
    let (mut packets, mut bytes) = (0u64, 0u64);
    loop {
        let used = match reader.next() {
            Ok((used, block)) => {
                if let PcapBlockOwned::Legacy(b) = block {
                    packets += 1;
                    bytes += u64::from(b.caplen);
                }
                used
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => 0,
            Err(e) => anyhow::bail!("{path}: {e:?}"),
        };
        if used > 0 {
            reader.consume(used);
        } else if let Err(e) = reader.refill() {
            anyhow::bail!("{path}: {e:?}");
        }
    }
    println!("{packets} packets, {bytes} bytes captured");
    Ok(())
}
