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
        };
        // Compile once up front so a syntax error is reported before any output.
        filter
            .program_index(Linktype::ETHERNET)
            .map(|_| Some(filter))
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
            // libpcap sees the captured bytes as both captured and wire length here.
            Ok(self.programs[i].1.filter(frame.data))
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
        let dead = pcap::Capture::dead(pcap::Linktype(i32::from(linktype.0))).map_err(err)?;
        let program = dead.compile(&self.expr, true).map_err(err)?;
        self.programs.push((linktype, program));
        Ok(self.programs.len() - 1)
    }

    #[cfg(not(feature = "live"))]
    fn program_index(&mut self, _linktype: Linktype) -> Result<usize, FilterError> {
        Err(FilterError::Unsupported)
    }
}
