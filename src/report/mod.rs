//! Report stage: the printers, peers over one stream of decoded packets.

pub mod tcpdump;
