//! tcplens reads packet captures, rebuilds the TCP state machine of every connection and
//! explains each packet.
//!
//! One pipeline, one direction, streaming; memory is bounded by live connections:
//!
//! ```text
//! capture (file | live) -> decode (link, IP, TCP) -> filter -> flow table
//!   -> per-connection TCP analysis -> cross-connection detectors -> reports (text | table | json)
//! ```
//!
//! Each stage is a module: [`capture`], [`decode`], [`report`]; [`pipeline`] drives them.
#![deny(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_docs)]

pub mod analysis;
pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod detect;
pub mod filter;
pub mod pipeline;
pub mod report;
pub mod stats;
