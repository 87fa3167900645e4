//! Property tests on the decoder and the tcpdump printer (stable-toolchain fuzzing, run by
//! `cargo test`), and the resource bounds of the header walkers.
//!
//! src/report/tcpdump.rs already mutates one Ethernet/IPv4 frame; here frames are built for
//! every link type with random VLAN stacks, IPv4 options, IPv6 extension-header chains and TCP
//! options, then cut and mutated, with arbitrary wire lengths and timestamps, under every
//! combination of printing flags.

use proptest::prelude::*;
use tcplens::capture::{Frame, Linktype, Timestamp};
use tcplens::config::{LineFormat, TimeFormat};
use tcplens::decode::ip::MAX_EXT_HEADERS;
use tcplens::decode::link::MAX_VLAN;
use tcplens::decode::tcp::Options;
use tcplens::decode::{self, Kind};
use tcplens::report::tcpdump::TcpdumpPrinter;

const LINKTYPES: [u16; 8] = [0, 1, 101, 108, 113, 228, 229, 276];

const TIMES: [TimeFormat; 6] = [
    TimeFormat::Clock,
    TimeFormat::None,
    TimeFormat::Epoch,
    TimeFormat::Delta,
    TimeFormat::Date,
    TimeFormat::SinceFirst,
];

fn line_format() -> impl Strategy<Value = LineFormat> {
    (0usize..6, any::<[bool; 4]>(), 0u8..4).prop_map(|(t, [nano, s, num, e], verbose)| LineFormat {
        time: TIMES[t],
        nano,
        absolute: s,
        number: num,
        link_header: e,
        verbose,
    })
}

/// Wire lengths that matter: the captured length, small, and near 2^32.
fn origlen() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        Just(None),
        any::<u32>().prop_map(Some),
        (0u32..64).prop_map(|d| Some(u32::MAX - d)),
        (0u32..2000).prop_map(Some),
    ]
}

fn link_header(lt: u16, vlans: &[u16], ethertype: u16) -> Vec<u8> {
    let mut h = Vec::new();
    match lt {
        1 => {
            h.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
            for &tpid in vlans {
                h.extend_from_slice(&tpid.to_be_bytes());
                h.extend_from_slice(&[0x20, 0x05]);
            }
            h.extend_from_slice(&ethertype.to_be_bytes());
        }
        113 | 276 => {
            if lt == 113 {
                h.extend_from_slice(&[0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
            } else {
                h.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
            }
            let proto_at = if lt == 113 { 14 } else { 0 };
            let first = vlans.first().map_or(ethertype, |_| 0x8100);
            if lt == 113 {
                h.extend_from_slice(&first.to_be_bytes());
            } else {
                h[proto_at..proto_at + 2].copy_from_slice(&first.to_be_bytes());
            }
            for i in 0..vlans.len() {
                h.extend_from_slice(&[0x20, 0x05]);
                let next = if i + 1 < vlans.len() {
                    0x8100
                } else {
                    ethertype
                };
                h.extend_from_slice(&next.to_be_bytes());
            }
        }
        0 => h.extend_from_slice(&(if ethertype == 0x86dd { 24u32 } else { 2 }).to_le_bytes()),
        108 => h.extend_from_slice(&(if ethertype == 0x86dd { 24u32 } else { 2 }).to_be_bytes()),
        _ => {}
    }
    h
}

/// An IPv4 header with `opts` (padded to a multiple of 4) around `payload`.
fn ipv4(opts: &[u8], payload: &[u8], frag: u16) -> Vec<u8> {
    let mut o = opts.to_vec();
    o.truncate(40);
    while !o.len().is_multiple_of(4) {
        o.push(1);
    }
    let hl = 20 + o.len();
    let total = (hl + payload.len()) as u16;
    let mut h = vec![0x40 | (hl / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h.extend_from_slice(&o);
    h.extend_from_slice(payload);
    h
}

/// An IPv6 header with a chain of extension headers (next-header value, body) before TCP.
fn ipv6(chain: &[(u8, Vec<u8>)], payload: &[u8], plen_zero: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    for (i, (_, body)) in chain.iter().enumerate() {
        let next = chain.get(i + 1).map_or(6, |c| c.0);
        let mut b = body.clone();
        // Bodies are whole 8-byte units including the next-header and length bytes.
        b.resize(6 + 8 * (b.len() / 8), 0);
        ext.push(next);
        ext.push((b.len() / 8) as u8);
        ext.extend_from_slice(&b);
    }
    let plen = if plen_zero {
        0
    } else {
        (ext.len() + payload.len()) as u16
    };
    let first = chain.first().map_or(6, |c| c.0);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&plen.to_be_bytes());
    h.extend_from_slice(&[first, 64]);
    h.extend_from_slice(&[0x20, 1, 0x0d, 0xb8]);
    h.extend_from_slice(&[0; 11]);
    h.push(1);
    h.extend_from_slice(&[0x20, 1, 0x0d, 0xb8]);
    h.extend_from_slice(&[0; 11]);
    h.push(2);
    h.extend_from_slice(&ext);
    h.extend_from_slice(payload);
    h
}

fn tcp(opts: &[u8], flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut o = opts.to_vec();
    o.truncate(40);
    while !o.len().is_multiple_of(4) {
        o.push(0);
    }
    let off = ((20 + o.len()) / 4) as u8;
    let mut h = vec![
        0x9c,
        0x40,
        0,
        80,
        0,
        0,
        0,
        7,
        0,
        0,
        0,
        9,
        off << 4,
        flags,
        0xff,
        0xff,
    ];
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(&o);
    h.extend_from_slice(payload);
    h
}

/// TCP option bytes made of plausible kinds with random lengths and contents.
fn tcp_options() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 8, 19, 28, 29, 30, 34, 254, 99]);
    proptest::collection::vec(
        (
            kinds,
            0u8..20,
            proptest::collection::vec(any::<u8>(), 0..16),
        ),
        0..8,
    )
    .prop_map(|opts| {
        let mut v = Vec::new();
        for (kind, len, data) in opts {
            v.push(kind);
            if kind > 1 {
                v.push(len);
                v.extend_from_slice(&data[..data.len().min(usize::from(len))]);
            }
        }
        v
    })
}

/// IPv4 option bytes: timestamp, route, router alert, unknown, with random contents.
fn ip_options() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop::sample::select(vec![0u8, 1, 7, 68, 82, 130, 131, 137, 148, 200]);
    proptest::collection::vec(
        (
            kinds,
            0u8..24,
            proptest::collection::vec(any::<u8>(), 0..22),
        ),
        0..4,
    )
    .prop_map(|opts| {
        let mut v = Vec::new();
        for (kind, len, data) in opts {
            v.push(kind);
            if kind > 1 {
                v.push(len);
                v.extend_from_slice(&data);
            }
        }
        v
    })
}

fn ext_chain() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    proptest::collection::vec(
        (
            prop::sample::select(vec![0u8, 43, 44, 60]),
            proptest::collection::vec(any::<u8>(), 0..40),
        ),
        0..(MAX_EXT_HEADERS + 3),
    )
}

/// A frame of link type `lt` carrying IPv4 or IPv6 and TCP, then cut and mutated.
fn built_frame() -> impl Strategy<Value = (u16, Vec<u8>)> {
    (
        prop::sample::select(LINKTYPES.to_vec()),
        proptest::collection::vec(
            prop::sample::select(vec![0x8100u16, 0x88a8, 0x9100, 0x9200]),
            0..(MAX_VLAN + 3),
        ),
        any::<bool>(),
        (ip_options(), any::<u16>(), any::<bool>()),
        ext_chain(),
        (
            tcp_options(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        ),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(
            |(lt, vlans, v6, (ipo, frag, fragged), chain, (to, fl, pl), muts, cut, do_cut)| {
                let seg = tcp(&to, fl, &pl);
                let (ethertype, net) = if v6 {
                    (0x86dd, ipv6(&chain, &seg, fragged))
                } else {
                    (
                        0x0800,
                        ipv4(&ipo, &seg, if fragged { frag } else { 0x4000 }),
                    )
                };
                let mut f = link_header(lt, &vlans, ethertype);
                f.extend_from_slice(&net);
                for (i, b) in muts {
                    let at = i.index(f.len());
                    f[at] = b;
                }
                if do_cut {
                    f.truncate(cut.index(f.len() + 1));
                }
                (lt, f)
            },
        )
}

/// Decodes and prints `frames` with one printer; checks what must hold for any input.
fn decode_and_print(lt: u16, frames: &[(Vec<u8>, Option<u32>, i64)], fmt: LineFormat) {
    let mut p = TcpdumpPrinter::new(fmt);
    let mut out = Vec::new();
    for (i, (data, origlen, ts)) in frames.iter().enumerate() {
        let frame = Frame {
            number: i as u64 + 1,
            ts: Timestamp(*ts),
            linktype: Linktype(lt),
            iface: 0,
            origlen: origlen.unwrap_or(data.len() as u32),
            data,
        };
        let d = decode::decode(&frame);
        assert_eq!(d.segment.is_some(), d.kind == Kind::Tcp);
        if matches!(
            d.kind,
            Kind::Tcp | Kind::TcpTruncated | Kind::TcpBadHeader | Kind::TcpFragment
        ) {
            assert!(d.is_tcp());
        }
        if let Some(s) = d.segment {
            assert!(s.options.sack_count as usize <= 40 / 8);
        }
        out.clear();
        let printed = p.write_packet(&mut out, &frame, &d).unwrap();
        assert_eq!(printed, d.is_tcp());
        assert_eq!(printed, out.last() == Some(&b'\n'));
        // Hostile bytes are escaped: nothing but printable ASCII, tabs and newlines.
        assert!(
            out.iter()
                .all(|&b| b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b)),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Built, cut and mutated frames of every link type never panic, in sequences (so the
    /// relative-sequence table and delta clocks see them) and under every flag combination.
    #[test]
    fn built_frames_decode_and_print(
        frames in proptest::collection::vec((built_frame(), origlen(), any::<i64>()), 1..4),
        fmt in line_format(),
    ) {
        for ((lt, data), o, ts) in &frames {
            decode_and_print(*lt, &[(data.clone(), *o, *ts), (data.clone(), *o, ts.wrapping_add(1))], fmt);
        }
    }

    /// Arbitrary bytes as a frame of any link type, supported or not.
    #[test]
    fn arbitrary_bytes_decode_and_print(
        lt in prop_oneof![prop::sample::select(LINKTYPES.to_vec()), any::<u16>()],
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        o in origlen(),
        ts in any::<i64>(),
        fmt in line_format(),
    ) {
        decode_and_print(lt, &[(data, o, ts)], fmt);
    }

    /// The TCP option walker takes at least one byte per step: it ends within the slice.
    #[test]
    fn option_walker_is_bounded(opts in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert!(Options::new(&opts).count() <= opts.len());
    }
}

fn tcp_frame(lt: u16, vlans: usize, ext: usize) -> (Vec<u8>, Kind) {
    let seg = tcp(&[2, 4, 5, 0xb4], 0x02, b"");
    let (ethertype, net) = if ext == 0 {
        (0x0800, ipv4(&[], &seg, 0x4000))
    } else {
        let chain: Vec<(u8, Vec<u8>)> = (0..ext).map(|_| (60, vec![1, 4, 0, 0, 0, 0])).collect();
        (0x86dd, ipv6(&chain, &seg, false))
    };
    let tpids = vec![0x8100; vlans];
    let mut f = link_header(lt, &tpids, ethertype);
    f.extend_from_slice(&net);
    let frame = Frame {
        number: 1,
        ts: Timestamp(0),
        linktype: Linktype(lt),
        iface: 0,
        origlen: f.len() as u32,
        data: &f,
    };
    let kind = decode::decode(&frame).kind;
    (f, kind)
}

/// VLAN stacks are walked to MAX_VLAN tags; one more is malformed, not a longer walk.
#[test]
fn vlan_stack_is_bounded() {
    for lt in [1, 113, 276] {
        assert_eq!(tcp_frame(lt, MAX_VLAN, 0).1, Kind::Tcp, "linktype {lt}");
        assert_eq!(
            tcp_frame(lt, MAX_VLAN + 1, 0).1,
            Kind::Malformed,
            "linktype {lt}"
        );
    }
}

/// IPv6 extension headers are walked to MAX_EXT_HEADERS; a longer chain is malformed.
#[test]
fn ipv6_extension_chain_is_bounded() {
    assert_eq!(tcp_frame(101, 0, MAX_EXT_HEADERS).1, Kind::Tcp);
    assert_eq!(tcp_frame(101, 0, MAX_EXT_HEADERS + 1).1, Kind::Malformed);
}

/// 64 KB of VLAN tags or IPv6 extension headers: the decoder stops at the bound and calls the
/// frame malformed (so the printer, which walks what the decoder accepted, never sees it).
#[test]
fn long_chains_stop_at_the_bound() {
    let mut eth = vec![0u8; 12];
    for _ in 0..16_000 {
        eth.extend_from_slice(&[0x81, 0x00, 0, 1]);
    }
    eth.extend_from_slice(&[0x08, 0x00]);
    let frame = Frame {
        number: 1,
        ts: Timestamp(0),
        linktype: Linktype::ETHERNET,
        iface: 0,
        origlen: eth.len() as u32,
        data: &eth,
    };
    let d = decode::decode(&frame);
    assert_eq!(d.kind, Kind::Malformed);
    assert!(!d.is_tcp());
    let (f, kind) = tcp_frame(101, 0, 8000);
    assert!(f.len() > 64_000);
    assert_eq!(kind, Kind::Malformed);
}

/// One option the printer's common line takes (src/report/tcpdump.rs `common_options`), or
/// now and then one it does not, with random values.
fn common_option() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![1u8]),
        any::<u16>().prop_map(|m| [vec![2, 4], m.to_be_bytes().to_vec()].concat()),
        any::<u8>().prop_map(|w| vec![3, 3, w]),
        Just(vec![4u8, 2]),
        proptest::collection::vec(any::<u32>(), 2..9).prop_map(|e| {
            let mut v = vec![5, 2 + 4 * (e.len() / 2 * 2) as u8];
            for x in e.iter().take(e.len() / 2 * 2) {
                v.extend_from_slice(&x.to_be_bytes());
            }
            v
        }),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| {
            [
                vec![8, 10],
                a.to_be_bytes().to_vec(),
                b.to_be_bytes().to_vec(),
            ]
            .concat()
        }),
        // Not taken by the common line: wrong lengths, end of list, unknown kinds.
        (
            prop::sample::select(vec![0u8, 2, 3, 4, 5, 8, 30, 99]),
            0u8..12
        )
            .prop_map(|(k, l)| vec![k, l]),
    ]
}

/// An Ethernet, raw, null, loopback or SLL frame with IPv4 or IPv6 and TCP whose fields are
/// random, most of them lines the printer writes by its common path, over few 4-tuples (so
/// relative numbers come into play).
fn common_frame() -> impl Strategy<Value = (u16, Vec<u8>, Option<u32>)> {
    (
        prop::sample::select(vec![1u16, 101, 0, 108, 113]),
        any::<bool>(),
        (0u8..3, 0u8..3, any::<u8>()),
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()),
        prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(common_option(), 0..6)
        ],
        0usize..40,
        prop_oneof![4 => Just(None), 1 => (0u32..200).prop_map(Some)],
    )
        .prop_map(
            |(lt, v6, (a, b, flags), (seq, ack, win, urg), opts, payload, o)| {
                let mut opt: Vec<u8> = opts.concat();
                opt.truncate(40);
                while !opt.len().is_multiple_of(4) {
                    opt.push(1);
                }
                let mut t = Vec::new();
                t.extend_from_slice(&(40000 + u16::from(a)).to_be_bytes());
                t.extend_from_slice(&(80 + u16::from(b)).to_be_bytes());
                t.extend_from_slice(&seq.to_be_bytes());
                t.extend_from_slice(&ack.to_be_bytes());
                t.extend_from_slice(&[((20 + opt.len()) / 4) as u8 * 16, flags]);
                t.extend_from_slice(&win.to_be_bytes());
                t.extend_from_slice(&[0, 0]);
                t.extend_from_slice(&urg.to_be_bytes());
                t.extend_from_slice(&opt);
                t.extend(std::iter::repeat_n(0x61, payload));
                let (ethertype, net) = if v6 {
                    (0x86dd, ipv6(&[], &t, false))
                } else {
                    (0x0800, ipv4(&[], &t, 0x4000))
                };
                let mut f = link_header(lt, &[], ethertype);
                f.extend_from_slice(&net);
                let origlen = o.map(|cut| (f.len() as u32).saturating_sub(cut));
                (lt, f, origlen)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Most lines are written by a fast path for the common case; `-#` (which only puts the
    /// packet number in front) sends every line through the general one. Both must print the
    /// same text, packet after packet.
    #[test]
    fn common_lines_print_as_the_general_path(
        frames in proptest::collection::vec((common_frame(), 0i64..3_000_000_000), 1..24),
        fmt in line_format(),
    ) {
        let fast_fmt = LineFormat { number: false, link_header: false, verbose: 0, ..fmt };
        let (mut fast, mut general) = (
            TcpdumpPrinter::new(fast_fmt),
            TcpdumpPrinter::new(LineFormat { number: true, ..fast_fmt }),
        );
        let mut ts = 1_700_000_000_000_000_000i64;
        for (i, ((lt, data, origlen), gap)) in frames.iter().enumerate() {
            ts += gap;
            let frame = Frame {
                number: i as u64 + 1,
                ts: Timestamp(ts),
                linktype: Linktype(*lt),
                iface: 0,
                origlen: origlen.unwrap_or(data.len() as u32),
                data,
            };
            let d = decode::decode(&frame);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            fast.write_packet(&mut a, &frame, &d).unwrap();
            general.write_packet(&mut b, &frame, &d).unwrap();
            let prefix = format!("{:5}  ", i + 1);
            prop_assert!(b.starts_with(prefix.as_bytes()) || b.is_empty());
            prop_assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(b.get(prefix.len()..).unwrap_or_default())
            );
        }
    }
}
