//! A capture that ends with more connections open than one of the analysis's end-of-capture
//! chunks (`tcplens::analysis::FINISH_CHUNK`): every one of them gets its record, once, in
//! id order (the order of their first packets in the file), in `--ndjson` and `--json`.

use std::process::Command;

/// A classic pcap (Ethernet) of `n` SYNs, each from its own client port or address: `n`
/// connections, all open at the end.
fn syns(n: u32) -> Vec<u8> {
    // Magic, version 2.4, zone, sigfigs, snaplen, Ethernet.
    let mut f = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    for w in [0u32, 0, 65535, 1] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    for i in 0..n {
        let mut p = Vec::new();
        p.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let src = [10, 1, (i >> 16) as u8, (i >> 8) as u8];
        let ip_start = p.len();
        p.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&[10, 0, 0, 2]);
        let sum = checksum(&p[ip_start..], 0);
        p[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
        let sport = 1024 + (i & 0xff) as u16;
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&80u16.to_be_bytes());
        tcp.extend_from_slice(&(1000 + i).to_be_bytes());
        tcp.extend_from_slice(&0u32.to_be_bytes());
        tcp.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        let mut pseudo = 0u32;
        for pair in src
            .chunks(2)
            .chain([[10u8, 0], [0, 2]].iter().map(|a| &a[..]))
        {
            pseudo += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        pseudo += 6 + 20;
        let sum = checksum(&tcp, pseudo);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&tcp);
        // Timestamps 100 µs apart: all inside every timeout.
        for w in [1_700_000_000u32, i * 100, p.len() as u32, p.len() as u32] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend_from_slice(&p);
    }
    f
}

/// The Internet checksum of `b`, starting from the partial sum `sum`.
fn checksum(b: &[u8], mut sum: u32) -> u16 {
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The `id` of each connection record (an `id` followed by `client`), in output order.
fn ids(text: &str, marker: &str) -> Vec<u64> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            let end = rest.find(|c: char| !c.is_ascii_digit())?;
            rest[end..]
                .starts_with(",\"client\":")
                .then(|| rest[..end].parse().unwrap())
        })
        .collect()
}

#[test]
fn more_connections_open_at_the_end_than_a_chunk_all_get_records_in_id_order() {
    let n = 2 * tcplens::analysis::FINISH_CHUNK as u32 + 1000;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("syns.pcap");
    std::fs::write(&pcap, syns(n)).unwrap();
    let want: Vec<u64> = (0..u64::from(n)).collect();
    for (flag, marker) in [
        ("--ndjson", "{\"type\":\"connection\",\"id\":"),
        ("--json", "{\"id\":"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
            .args(["read", flag])
            .arg(&pcap)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(ids(&text, marker), want, "{flag}");
        // All were open at the end, none ended by a timeout.
        let open = text.matches("\"end\":\"end_of_capture\"").count();
        assert_eq!(open, want.len(), "{flag}");
    }
}
