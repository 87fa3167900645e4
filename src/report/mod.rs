//! Report stage: the printers, peers over one stream of decoded packets.

pub mod analysis;
pub mod annotate;
pub mod findings;
pub mod json;
pub mod ndjson;
pub mod seqtable;
pub mod table;
pub mod tcpdump;
pub mod tstamp;
