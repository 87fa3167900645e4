//! Filter stage: tcpdump (libpcap) filter expressions, compiled by libpcap itself so that
//! `tcplens read FILE EXPR` keeps exactly the packets `tcpdump -r FILE EXPR` keeps.
//!
//! A program is compiled per link type on first use, because a pcapng file may mix interfaces
//! of different link types and libpcap's code depends on the link type.

use crate::capture::{Frame, Linktype};

/// A filter expression that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// libpcap rejected the expression for this link type.
    #[error("filter expression \"{expr}\" (link type {linktype}): {message}")]
    Compile {
        /// The expression as given.
        expr: String,
        /// The link type it was compiled for.
        linktype: Linktype,
        /// libpcap's message.
        message: String,
    },
    /// This build has no libpcap.
    #[error("filter expressions need libpcap: this tcplens was built without the `live` feature")]
    Unsupported,
}

/// A compiled filter.
pub struct Filter {
    expr: String,
    #[cfg(feature = "live")]
    programs: Vec<(Linktype, pcap::BpfProgram)>,
    /// The input's byte order: libpcap compiles link-layer checks (the BSD loopback family)
    /// for the byte order of the file it reads.
    big_endian: bool,
}

impl Filter {
    /// Joins the command line's filter words as tcpdump does; `None` when there are none.
    pub fn from_words(words: &[String]) -> Result<Option<Filter>, FilterError> {
        if words.is_empty() {
            return Ok(None);
        }
        let expr = words.join(" ");
        if !cfg!(feature = "live") {
            return Err(FilterError::Unsupported);
        }
        let mut filter = Filter {
            expr,
            #[cfg(feature = "live")]
            programs: Vec::new(),
            big_endian: cfg!(target_endian = "big"),
        };
        // Compile once up front so a syntax error is reported before any output.
        filter
            .program_index(Linktype::ETHERNET)
            .map(|_| Some(filter))
    }

    /// Compiles for an input of this byte order from now on (tcpdump compiles for the file).
    pub fn set_big_endian(&mut self, big_endian: bool) {
        if big_endian != self.big_endian {
            self.big_endian = big_endian;
            #[cfg(feature = "live")]
            self.programs.clear();
        }
    }

    /// The expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// True when the frame passes the filter.
    pub fn matches(&mut self, frame: &Frame<'_>) -> Result<bool, FilterError> {
        #[cfg(feature = "live")]
        {
            let i = self.program_index(frame.linktype)?;
            Ok(offline_filter(
                &self.programs[i].1,
                frame.data,
                frame.origlen,
            ))
        }
        #[cfg(not(feature = "live"))]
        {
            let _ = frame;
            Err(FilterError::Unsupported)
        }
    }

    #[cfg(feature = "live")]
    fn program_index(&mut self, linktype: Linktype) -> Result<usize, FilterError> {
        if let Some(i) = self.programs.iter().position(|(l, _)| *l == linktype) {
            return Ok(i);
        }
        let err = |e: pcap::Error| FilterError::Compile {
            expr: self.expr.clone(),
            linktype,
            message: e.to_string(),
        };
        let program = savefile_capture(linktype, self.big_endian)
            .and_then(|cap| cap.compile(&self.expr, true))
            .map_err(err)?;
        self.programs.push((linktype, program));
        Ok(self.programs.len() - 1)
    }

    #[cfg(not(feature = "live"))]
    fn program_index(&mut self, _linktype: Linktype) -> Result<usize, FilterError> {
        Err(FilterError::Unsupported)
    }
}

/// An empty savefile of this link type and byte order, opened by libpcap, so the filter is
/// compiled exactly as tcpdump compiles it when reading a file (a dead handle compiles as for
/// a live capture: e.g. the BSD loopback family would be Linux's AF_INET6 only).
#[cfg(feature = "live")]
fn savefile_capture(
    linktype: Linktype,
    big_endian: bool,
) -> Result<pcap::Capture<pcap::Offline>, pcap::Error> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let fields: [u32; 6] = [
        0xa1b2_c3d4,
        0x0004_0002,
        0,
        0,
        262_144,
        u32::from(linktype.0),
    ];
    let mut header = Vec::with_capacity(24);
    for (i, v) in fields.into_iter().enumerate() {
        // The version field is two u16s: major 2, minor 4.
        let bytes = match (i, big_endian) {
            (1, true) => [0, 2, 0, 4],
            (1, false) => [2, 0, 4, 0],
            (_, true) => v.to_be_bytes(),
            (_, false) => v.to_le_bytes(),
        };
        header.extend_from_slice(&bytes);
    }
    let (reader, mut writer) = std::io::pipe().map_err(|e| pcap::Error::IoError(e.kind()))?;
    writer
        .write_all(&header)
        .map_err(|e| pcap::Error::IoError(e.kind()))?;
    drop(writer);
    // libpcap reads the 24-byte header through the pipe's /dev/fd path and keeps no data.
    pcap::Capture::from_file(format!("/dev/fd/{}", reader.as_raw_fd()))
}

/// libpcap's `struct pcap_pkthdr`.
#[cfg(feature = "live")]
#[repr(C)]
struct PktHdr {
    tv_sec: std::ffi::c_long,
    tv_usec: std::ffi::c_long,
    caplen: u32,
    len: u32,
}

#[cfg(feature = "live")]
#[allow(unsafe_code)]
unsafe extern "C" {
    fn pcap_offline_filter(
        prog: *const std::ffi::c_void,
        hdr: *const PktHdr,
        data: *const u8,
    ) -> std::ffi::c_int;
}

/// Runs the program on a frame with its real wire length: `pcap::BpfProgram::filter` passes the
/// captured length as both, which changes `len`, `greater` and `less` on snaplen-cut frames.
#[cfg(feature = "live")]
#[allow(unsafe_code)]
fn offline_filter(program: &pcap::BpfProgram, data: &[u8], origlen: u32) -> bool {
    let hdr = PktHdr {
        tv_sec: 0,
        tv_usec: 0,
        caplen: u32::try_from(data.len()).unwrap_or(u32::MAX),
        len: origlen.max(u32::try_from(data.len()).unwrap_or(u32::MAX)),
    };
    // SAFETY: `BpfProgram` is `#[repr(transparent)]` over libpcap's `struct bpf_program` and
    // outlives the call; `hdr.caplen` is the length of `data`, and libpcap's BPF interpreter
    // checks every load against it, so nothing is read past the slice.
    unsafe {
        pcap_offline_filter(
            (program as *const pcap::BpfProgram).cast(),
            &hdr,
            data.as_ptr(),
        ) > 0
    }
}
