//! Report stage: the printers, peers over one stream of decoded packets.

pub mod seqtable;
pub mod tcpdump;
pub mod tstamp;
