//! Builders of pcapng blocks for the readers' tests (`mapped_ng`,
//! `stdin`): one definition of the format's test bytes, in either byte
//! order, so both readers are tested on the same blocks. Test-only.

#![allow(clippy::cast_possible_truncation)]

/// pcapng block types and the section's byte-order magic (pcapng §4).
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
const DSB: u32 = 0x0000_000A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

pub(crate) fn w32(v: u32, be: bool) -> [u8; 4] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}

pub(crate) fn w16(v: u16, be: bool) -> [u8; 2] {
    if be { v.to_be_bytes() } else { v.to_le_bytes() }
}

pub(crate) fn pad(mut v: Vec<u8>) -> Vec<u8> {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

pub(crate) fn block(kind: u32, body: &[u8], be: bool) -> Vec<u8> {
    let body = pad(body.to_vec());
    let n = 12 + body.len() as u32;
    let mut b = w32(kind, be).to_vec();
    b.extend(w32(n, be));
    b.extend(body);
    b.extend(w32(n, be));
    b
}

pub(crate) fn shb(be: bool) -> Vec<u8> {
    shb_sized(be, 28)
}

/// A section header `len` bytes long (zeros after its fixed part).
pub(crate) fn shb_sized(be: bool, len: usize) -> Vec<u8> {
    let mut body = w32(BYTE_ORDER_MAGIC, be).to_vec();
    body.extend(w16(1, be));
    body.extend(w16(0, be));
    body.extend([0xff; 8]); // section length unknown
    body.resize(len - 12, 0);
    block(SHB, &body, be)
}

pub(crate) fn opt(code: u16, value: &[u8], be: bool) -> Vec<u8> {
    let mut o = w16(code, be).to_vec();
    o.extend(w16(value.len() as u16, be));
    o.extend(value);
    pad(o)
}

pub(crate) fn idb(be: bool, link: u16, snaplen: u32, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = w16(link, be).to_vec();
    body.extend([0, 0]);
    body.extend(w32(snaplen, be));
    for o in opts {
        body.extend(o);
    }
    block(IDB, &body, be)
}

pub(crate) fn epb(be: bool, iface: u32, ts: u64, data: &[u8], len: u32) -> Vec<u8> {
    let mut body = w32(iface, be).to_vec();
    body.extend(w32((ts >> 32) as u32, be));
    body.extend(w32(ts as u32, be));
    body.extend(w32(data.len() as u32, be));
    body.extend(w32(len, be));
    body.extend(data);
    // An epb_flags option after the data: skipped, as libpcap does.
    body = pad(body);
    body.extend(opt(2, &w32(1, be), be));
    block(EPB, &body, be)
}

pub(crate) fn spb(be: bool, len: u32, data: &[u8]) -> Vec<u8> {
    let mut body = w32(len, be).to_vec();
    body.extend(data);
    block(SPB, &body, be)
}

pub(crate) fn pb(be: bool, iface: u16, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut body = w16(iface, be).to_vec();
    body.extend(w16(0, be)); // drops
    body.extend(w32((ts >> 32) as u32, be));
    body.extend(w32(ts as u32, be));
    body.extend(w32(data.len() as u32, be));
    body.extend(w32(data.len() as u32, be));
    body.extend(data);
    block(PB, &body, be)
}

pub(crate) fn dsb(be: bool, text: &[u8]) -> Vec<u8> {
    let mut body = w32(0x544c_534b, be).to_vec();
    body.extend(w32(text.len() as u32, be));
    body.extend(text);
    block(DSB, &body, be)
}

/// Blocks every reader skips: name resolution, interface statistics,
/// a custom block, an unknown type.
pub(crate) fn skipped(be: bool) -> Vec<u8> {
    let mut v = block(0x0000_0004, &[0; 4], be);
    v.extend(block(0x0000_0005, &[0; 12], be));
    v.extend(block(0x0000_0BAD, &[1, 2, 3, 4, 5, 6, 7, 8], be));
    v.extend(block(0x1234_5678, &[9; 16], be));
    v
}
