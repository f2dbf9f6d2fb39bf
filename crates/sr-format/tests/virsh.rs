//! The `virsh save` wrapper: the real Xen stream rewrapped, truncations and malformed headers.

#[path = "../../../tests/common/testdata.rs"]
mod testdata;

use sr_format::virsh::{VIRSH_XML_MAX, encode_virsh_header};
use sr_format::{Error, Item, Layer, StreamReader, walk};

const XML: &[u8] = b"<domain type='xen'>\n  <name>tiny32</name>\n</domain>\n";

/// The real `xl save` file with its xl header replaced by virsh's: what `virsh save` of the
/// same domain writes.
fn real_as_virsh() -> (Vec<u8>, Vec<u8>, i64) {
    let xl = testdata::real_save_file();
    let mut r = StreamReader::from_slice(&xl);
    let Some(Item::Xl { .. }) = r.next_item().unwrap() else { panic!("an xl file") };
    let libxl_at = r.offset();
    let mut virsh = encode_virsh_header(XML);
    let virsh_len = virsh.len() as u64;
    virsh.extend_from_slice(&xl[libxl_at as usize..]);
    (xl, virsh, virsh_len.cast_signed() - libxl_at.cast_signed())
}

fn items(bytes: &[u8]) -> Vec<(String, u64)> {
    let mut r = StreamReader::from_slice(bytes);
    let mut out = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        out.push(match item {
            Item::Xl { offset, .. } => ("xl".to_string(), offset),
            Item::Virsh { offset, header, xml } => {
                assert_eq!(xml, XML);
                assert_eq!(header.xml_len.get() as usize, XML.len() + 1);
                ("virsh".to_string(), offset)
            }
            Item::LibxlHeader { offset, .. } => ("libxl".into(), offset),
            Item::LibxlRecord(rec) => (format!("libxl {}", rec.rtype), rec.offset),
            Item::ImageHeader { offset, .. } => ("ihdr".into(), offset),
            Item::DomainHeader { offset, .. } => ("dhdr".into(), offset),
            Item::Record(rec) => (format!("{} {}", rec.rtype, rec.body.len()), rec.offset),
        });
    }
    assert_eq!(r.layer(), Some(if out[0].0 == "xl" { Layer::Xl } else { Layer::Virsh }));
    out
}

#[test]
fn real_stream_reads_the_same_through_virsh() {
    let (xl, virsh, shift) = real_as_virsh();
    let a = items(&xl);
    let b = items(&virsh);
    assert_eq!(a.len(), b.len());
    assert_eq!(b[0], ("virsh".into(), 0));
    for (x, v) in a.iter().zip(&b).skip(1) {
        assert_eq!(x.0, v.0);
        assert_eq!(x.1.cast_signed() + shift, v.1.cast_signed(), "{}", x.0);
    }
    assert_eq!(walk(&xl).unwrap().records, walk(&virsh).unwrap().records);
}

#[test]
fn truncations_and_bad_fields() {
    let (_, virsh, _) = real_as_virsh();
    for len in [0usize, 7, 8, 20, 63, 64, 64 + XML.len()] {
        let e = walk(&virsh[..len]).unwrap_err();
        assert!(matches!(e, Error::Truncated { offset: 0 | 64, .. }), "{len}: {e:?}");
    }
    let mut bad = virsh.clone();
    bad[12] = b'X'; // past the 8 bytes that select the layer
    assert!(matches!(walk(&bad), Err(Error::BadVirshHeader { offset: 0, .. })));
    let mut bad = virsh.clone();
    bad[16] = 7;
    assert!(matches!(walk(&bad), Err(Error::BadVirshHeader { offset: 16, .. })));
    let mut bad = virsh.clone();
    bad[20..24].copy_from_slice(&(VIRSH_XML_MAX + 1).to_le_bytes());
    assert!(matches!(walk(&bad), Err(Error::BadVirshHeader { offset: 20, .. })));
    // An XML length that runs into the libxl stream misplaces it.
    let mut bad = virsh;
    bad[20..24].copy_from_slice(&((XML.len() + 9) as u32).to_le_bytes());
    assert!(walk(&bad).is_err());
}
