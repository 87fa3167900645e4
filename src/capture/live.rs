//! Live input through libpcap: the filter is compiled by libpcap and runs in the kernel, as
//! tcpdump's does. Ctrl-C, SIGTERM, `-c` or `--duration` end the capture cleanly: the `-w`
//! file is flushed and libpcap's counters are returned.

use super::{CaptureError, Frame, Linktype, Timestamp};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How to open the interface.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Interface name (`tcplens live -D` lists them).
    pub iface: String,
    /// Bytes captured per packet (tcpdump's default is 262144).
    pub snaplen: i32,
    /// Put the interface in promiscuous mode (tcpdump's default; `-p` turns it off).
    pub promisc: bool,
    /// A filter expression for the kernel, if any.
    pub filter: Option<String>,
    /// Also write the raw packets to this pcap file.
    pub write: Option<String>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// libpcap's counters at the end of a capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets the kernel delivered to the filter.
    pub received: u32,
    /// Packets dropped because tcplens did not read fast enough.
    pub dropped: u32,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u32,
}

/// An open live capture.
pub struct LiveSource {
    cap: pcap::Capture<pcap::Active>,
    linktype: Linktype,
    savefile: Option<pcap::Savefile>,
    stop: Arc<AtomicBool>,
    opts: LiveOptions,
    packets: u64,
}

/// The interfaces libpcap can capture on, formatted as `tcpdump -D` lists them.
pub fn list_interfaces() -> Result<Vec<String>, CaptureError> {
    let devices = pcap::Device::list().map_err(|e| setup_error("interfaces", &e))?;
    Ok(devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut line = format!("{}.{}", i + 1, d.name);
            if let Some(desc) = &d.desc {
                line.push_str(&format!(" ({desc})"));
            }
            let f = &d.flags;
            let mut tags = Vec::new();
            if f.if_flags.contains(pcap::IfFlags::UP) {
                tags.push("Up");
            }
            if f.if_flags.contains(pcap::IfFlags::RUNNING) {
                tags.push("Running");
            }
            if f.if_flags.contains(pcap::IfFlags::WIRELESS) {
                tags.push("Wireless");
            }
            if f.if_flags.contains(pcap::IfFlags::LOOPBACK) {
                tags.push("Loopback");
            }
            match f.connection_status {
                pcap::ConnectionStatus::Connected => tags.push("Connected"),
                pcap::ConnectionStatus::Disconnected => tags.push("Disconnected"),
                _ => {}
            }
            if tags.is_empty() {
                tags.push("none");
            }
            line.push_str(&format!(" [{}]", tags.join(", ")));
            line
        })
        .collect())
}

impl LiveSource {
    /// Opens the interface, sets the kernel filter and installs the Ctrl-C / SIGTERM handler.
    pub fn open(opts: LiveOptions) -> Result<Self, CaptureError> {
        let name = opts.iface.clone();
        let inactive =
            pcap::Capture::from_device(name.as_str()).map_err(|e| setup_error(&name, &e))?;
        let mut cap = inactive
            .promisc(opts.promisc)
            .snaplen(opts.snaplen)
            .immediate_mode(true)
            .timeout(100)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(|e| setup_error(&name, &e))?;
        if let Some(expr) = &opts.filter {
            cap.filter(expr, true)
                .map_err(|e| setup_error(&format!("{name}: filter \"{expr}\""), &e))?;
        }
        let linktype = Linktype((cap.get_datalink().0 & 0xffff) as u16);
        let savefile = match &opts.write {
            Some(path) => Some(cap.savefile(path).map_err(|e| setup_error(path, &e))?),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let breaker = cap.breakloop_handle();
        // A second handler cannot be installed; one run per process needs only one.
        let _ = ctrlc::set_handler(move || {
            flag.store(true, Ordering::SeqCst);
            breaker.breakloop();
        });
        Ok(LiveSource {
            cap,
            linktype,
            savefile,
            stop,
            opts,
            packets: 0,
        })
    }

    /// The interface's link type.
    pub fn linktype(&self) -> Linktype {
        self.linktype
    }

    /// Calls `f` for every packet until `f` breaks, the duration passes, or a signal arrives.
    pub fn run<F>(&mut self, mut f: F) -> Result<(), CaptureError>
    where
        F: FnMut(&Frame<'_>) -> ControlFlow<()>,
    {
        if let Some(d) = self.opts.duration {
            // A read blocked on a quiet interface does not wake up by itself: break it.
            let flag = Arc::clone(&self.stop);
            let breaker = self.cap.breakloop_handle();
            std::thread::spawn(move || {
                std::thread::sleep(d);
                flag.store(true, Ordering::SeqCst);
                breaker.breakloop();
            });
        }
        let result = loop {
            if self.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            match self.cap.next_packet() {
                Ok(p) => {
                    self.packets += 1;
                    if let Some(s) = self.savefile.as_mut() {
                        s.write(&p);
                    }
                    // Opened with nanosecond precision: tv_usec holds nanoseconds.
                    let ts = Timestamp::from_parts(p.header.ts.tv_sec, p.header.ts.tv_usec as u32);
                    let frame = Frame {
                        number: self.packets,
                        ts,
                        linktype: self.linktype,
                        iface: 0,
                        origlen: p.header.len,
                        data: p.data,
                    };
                    if f(&frame).is_break() {
                        break Ok(());
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {}
                Err(pcap::Error::NoMorePackets) => break Ok(()),
                Err(e) => {
                    break Err(CaptureError::Damaged {
                        path: self.opts.iface.clone(),
                        packet: self.packets + 1,
                        offset: 0,
                        detail: format!("capture stopped: {e}"),
                    });
                }
            }
        };
        if let Some(s) = self.savefile.as_mut() {
            s.flush().map_err(|e| setup_error("write file", &e))?;
        }
        result
    }

    /// libpcap's counters so far.
    pub fn stats(&mut self) -> LiveStats {
        self.cap
            .stats()
            .map(|s| LiveStats {
                received: s.received,
                dropped: s.dropped,
                if_dropped: s.if_dropped,
            })
            .unwrap_or_default()
    }
}

/// A setup error, with the hint tcpdump users need when permission is the cause.
fn setup_error(what: &str, e: &pcap::Error) -> CaptureError {
    let msg = e.to_string();
    let hint = if msg.contains("ermission") || msg.contains("not permitted") {
        " (capturing needs root, or the CAP_NET_RAW and CAP_NET_ADMIN capabilities)"
    } else {
        ""
    };
    CaptureError::Io {
        path: what.to_string(),
        source: std::io::Error::other(format!("{msg}{hint}")),
    }
}
