//! Report stage: the printers, peers over one stream of decoded packets.

pub mod analysis;
pub mod annotate;
pub mod ndjson;
pub mod table;
pub mod tcpdump;
