//! Decode cost per frame: tcplens's decoder vs etherparse (per-layer header slices and
//! `LaxSlicedPacket`) vs pnet_packet 0.35, plus the tcpdump printer's cost per line.
//!
//! Workloads: a gen_pcap capture made at bench time (240 flows, seed 1) and the corpus TSO
//! captures (pnet sees no TCP in IPv4 total_len == 0 frames). Run: `cargo bench --bench decode`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tcplens::capture::file::FileSource;
use tcplens::capture::{Frame, Linktype, Timestamp};
use tcplens::config::{LineFormat, TimeFormat};
use tcplens::decode::decode;
use tcplens::report::tcpdump::TcpdumpPrinter;

struct Owned {
    number: u64,
    ts: Timestamp,
    linktype: Linktype,
    origlen: u32,
    data: Vec<u8>,
}

fn load(path: &Path) -> Vec<Owned> {
    let mut v = Vec::new();
    let Ok(mut src) = FileSource::open(path.to_str().unwrap_or("")) else {
        eprintln!("cannot open {}", path.display());
        return v;
    };
    let _ = src.run(|f| {
        v.push(Owned {
            number: f.number,
            ts: f.ts,
            linktype: f.linktype,
            origlen: f.origlen,
            data: f.data.to_vec(),
        });
        std::ops::ControlFlow::Continue(())
    });
    v
}

fn frame(o: &Owned) -> Frame<'_> {
    Frame {
        number: o.number,
        ts: o.ts,
        linktype: o.linktype,
        iface: 0,
        origlen: o.origlen,
        data: &o.data,
    }
}

/// Ports, seq, ack, window and payload length summed, so no decoder is optimised away.
type Sum = u64;

fn tcplens_decode(o: &Owned) -> Option<Sum> {
    let s = decode(&frame(o)).segment?;
    Some(
        u64::from(s.sport)
            + u64::from(s.seq)
            + u64::from(s.ack)
            + u64::from(s.window)
            + u64::from(s.payload_len)
            + u64::from(s.options.mss.unwrap_or(0)),
    )
}

fn etherparse_slices(o: &Owned) -> Option<Sum> {
    use etherparse::{
        EtherType, Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice,
        SingleVlanHeaderSlice, TcpHeaderSlice,
    };
    let eth = Ethernet2HeaderSlice::from_slice(&o.data).ok()?;
    let mut et = eth.ether_type();
    let mut rest = o.data.get(eth.slice().len()..)?;
    while et == EtherType::VLAN_TAGGED_FRAME || et == EtherType::PROVIDER_BRIDGING {
        let v = SingleVlanHeaderSlice::from_slice(rest).ok()?;
        et = v.ether_type();
        rest = rest.get(v.slice().len()..)?;
    }
    let (l4, avail) = if et == EtherType::IPV4 {
        let ip = Ipv4HeaderSlice::from_slice(rest).ok()?;
        if ip.protocol() != IpNumber::TCP {
            return None;
        }
        let hl = ip.slice().len();
        let total = usize::from(ip.total_len());
        // total_len 0: a TSO send; use what was captured.
        let end = if total == 0 {
            rest.len()
        } else {
            total.min(rest.len())
        };
        (rest.get(hl..end)?, end.saturating_sub(hl))
    } else if et == EtherType::IPV6 {
        let ip = Ipv6HeaderSlice::from_slice(rest).ok()?;
        if ip.next_header() != IpNumber::TCP {
            return None;
        }
        let end = (40 + usize::from(ip.payload_length())).min(rest.len());
        (rest.get(40..end)?, end.saturating_sub(40))
    } else {
        return None;
    };
    let t = TcpHeaderSlice::from_slice(l4).ok()?;
    let mss = t.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    });
    Some(
        u64::from(t.source_port())
            + u64::from(t.sequence_number())
            + u64::from(t.acknowledgment_number())
            + u64::from(t.window_size())
            + avail.saturating_sub(t.slice().len()) as u64
            + u64::from(mss.unwrap_or(0)),
    )
}

fn etherparse_lax(o: &Owned) -> Option<Sum> {
    use etherparse::{LaxSlicedPacket, TransportSlice};
    let p = LaxSlicedPacket::from_ethernet(&o.data).ok()?;
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        return None;
    };
    Some(
        u64::from(t.source_port())
            + u64::from(t.sequence_number())
            + u64::from(t.acknowledgment_number())
            + u64::from(t.window_size())
            + t.payload().len() as u64,
    )
}

fn pnet(o: &Owned) -> Option<Sum> {
    use pnet_packet::Packet;
    use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
    use pnet_packet::ip::IpNextHeaderProtocols;
    use pnet_packet::ipv4::Ipv4Packet;
    use pnet_packet::ipv6::Ipv6Packet;
    use pnet_packet::tcp::TcpPacket;
    let eth = EthernetPacket::new(&o.data)?;
    let sum = |t: TcpPacket<'_>| {
        u64::from(t.get_source())
            + u64::from(t.get_sequence())
            + u64::from(t.get_acknowledgement())
            + u64::from(t.get_window())
            + t.payload().len() as u64
    };
    match eth.get_ethertype() {
        EtherTypes::Ipv4 => {
            let ip = Ipv4Packet::new(eth.payload())?;
            if ip.get_next_level_protocol() != IpNextHeaderProtocols::Tcp {
                return None;
            }
            TcpPacket::new(ip.payload()).map(sum)
        }
        EtherTypes::Ipv6 => {
            let ip = Ipv6Packet::new(eth.payload())?;
            if ip.get_next_header() != IpNextHeaderProtocols::Tcp {
                return None;
            }
            TcpPacket::new(ip.payload()).map(sum)
        }
        _ => None,
    }
}

fn bench(label: &str, frames: &[Owned], f: fn(&Owned) -> Option<Sum>) {
    let rounds = (2_000_000 / frames.len().max(1)).clamp(3, 10_000);
    let tcp = frames.iter().filter(|o| f(o).is_some()).count();
    let mut acc = 0u64;
    let start = Instant::now();
    for _ in 0..rounds {
        for o in frames {
            acc = acc.wrapping_add(black_box(f(black_box(o))).unwrap_or(0));
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (rounds * frames.len().max(1)) as f64;
    black_box(acc);
    println!(
        "  {label:<28} {ns:8.1} ns/frame   TCP found in {tcp}/{} frames",
        frames.len()
    );
}

fn bench_printer(frames: &[Owned]) {
    let fmt = LineFormat {
        time: TimeFormat::Clock,
        nano: false,
        absolute: false,
        number: true,
        link_header: false,
        verbose: 0,
    };
    for (label, verbose) in [("print (default)", 0u8), ("print -v", 1)] {
        let rounds = (500_000 / frames.len().max(1)).clamp(2, 1000);
        let mut sink = std::io::sink();
        let start = Instant::now();
        let mut lines = 0u64;
        for _ in 0..rounds {
            let mut p = TcpdumpPrinter::new(LineFormat { verbose, ..fmt });
            for o in frames {
                let f = frame(o);
                let d = decode(&f);
                lines += u64::from(p.write_packet(&mut sink, &f, &d).unwrap_or(false));
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / lines.max(1) as f64;
        println!("  {label:<28} {ns:8.1} ns/line (decode included)");
    }
}

fn shared() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("TCPLENS_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared")])
        .find(|p| p.is_dir())
}

fn main() {
    let Some(shared) = shared() else {
        eprintln!("decode bench: ../shared not found (set TCPLENS_SHARED); nothing to measure");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let gen_out = dir.path().join("gen.pcap");
    let ok = Command::new("python3")
        .arg(shared.join("tools/gen-pcap/gen_pcap.py"))
        .args(["--flows", "240", "--seed", "1", "--quiet", "--out"])
        .arg(&gen_out)
        .status()
        .is_ok_and(|s| s.success());
    let mut sets: Vec<(String, PathBuf)> = Vec::new();
    if ok {
        sets.push(("gen_pcap --flows 240 --seed 1".into(), gen_out));
    } else {
        eprintln!("gen_pcap.py failed; corpus captures only");
    }
    for f in [
        "bigtcp-ipv4.pcap",
        "gso-ipv4.pcap",
        "ipv4_tcp_http_xml_tso.pcap",
    ] {
        sets.push((f.into(), shared.join("corpus/tcpdump").join(f)));
    }
    for (label, path) in sets {
        let frames = load(&path);
        println!("{label}: {} frames", frames.len());
        bench("tcplens decode", &frames, tcplens_decode);
        bench("etherparse header slices", &frames, etherparse_slices);
        bench("etherparse LaxSlicedPacket", &frames, etherparse_lax);
        bench("pnet_packet 0.35", &frames, pnet);
        bench_printer(&frames);
    }
}
