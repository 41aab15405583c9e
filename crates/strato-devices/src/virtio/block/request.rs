//! Parsing a virtio-blk request out of a descriptor chain (virtio 1.2 section 5.2.6).
//!
//! A request is a device-readable 16-byte header (type, reserved, sector), zero or more
//! data buffers, and a device-writable status byte in the last descriptor. Everything
//! here comes from the guest: every length, address and sector is checked before use,
//! with overflow-safe arithmetic.

use std::ops::Deref;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap};

use crate::virtio::chain;
use crate::virtio::guest::{in_guest_memory, read_bytes};

/// log2 of the virtio-blk sector size.
pub const SECTOR_SHIFT: u32 = 9;
/// The virtio-blk sector size (always 512, whatever `blk_size` says).
pub const SECTOR_SIZE: u64 = 1 << SECTOR_SHIFT;
/// Largest data transfer accepted in one request.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// Most discard or write-zeroes segments in one request (config `max_discard_seg`).
pub const MAX_SEGMENTS: u32 = 16;
/// Most sectors in one discard or write-zeroes segment (config `max_discard_sectors`).
pub const MAX_SEGMENT_SECTORS: u32 = 1 << 21;

const HEADER_LEN: u32 = 16;
const SEGMENT_LEN: usize = 16;

/// One discard or write-zeroes range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First sector.
    pub sector: u64,
    /// Number of sectors.
    pub num_sectors: u32,
    /// Write-zeroes only: the device may deallocate the range.
    pub unmap: bool,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// Read sectors into the data buffers.
    In,
    /// Write the data buffers to sectors.
    Out,
    /// Make earlier writes durable.
    Flush,
    /// Write the device ID (serial) into the data buffers.
    GetId,
    /// Deallocate ranges.
    Discard(Vec<Segment>),
    /// Zero ranges.
    WriteZeroes(Vec<Segment>),
    /// A type this device does not implement.
    Unsupported(u32),
}

/// A parsed, validated request.
#[derive(Debug, Clone)]
pub struct Request {
    /// What to do.
    pub kind: RequestKind,
    /// The header's sector (In and Out).
    pub sector: u64,
    /// The data descriptors, in order (each checked to lie in guest memory; some may
    /// be empty).
    pub data: Vec<Descriptor>,
    /// Total length of `data`.
    pub data_len: u32,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

impl Request {
    /// Byte offset on the disk of the header's sector (checked when parsed).
    pub fn offset(&self) -> u64 {
        self.sector << SECTOR_SHIFT
    }

    /// The data buffers as (address, length).
    pub fn buffers(&self) -> impl Iterator<Item = (GuestAddress, u32)> + '_ {
        self.data.iter().map(|d| (d.addr(), d.len()))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The chain loops, points outside the descriptor table or ends in a descriptor
    /// that has a next one.
    #[error("descriptor chain is broken")]
    BrokenChain,
    /// The last descriptor is not a usable device-writable status byte.
    #[error("no writable status descriptor")]
    NoStatus,
    /// The header is missing, too short, writable or outside guest memory.
    #[error("malformed request header")]
    Header,
    /// A data buffer has the wrong direction for the request type.
    #[error("data buffer has the wrong direction")]
    Direction,
    /// A data buffer is not in guest memory.
    #[error("data buffer outside guest memory")]
    DataAddress,
    /// More data than [`MAX_REQUEST_BYTES`].
    #[error("request of {0} bytes is too large")]
    TooLarge(u64),
    /// Data that is not a whole number of sectors (or of segments).
    #[error("data length {0} is not a whole number of units")]
    Unaligned(u64),
    /// Sectors past the end of the disk (or an overflowing range).
    #[error("sector range past the end of the disk")]
    OutOfRange,
    /// A discard or write-zeroes request with no, too many or too large segments.
    #[error("invalid segment list")]
    Segments,
    /// Segment flags the device does not support.
    #[error("unsupported segment flags {0:#x}")]
    SegmentFlags(u32),
}

/// A refused request, and where to report it (`None`: the chain is too broken to
/// carry a status and is returned with used length 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The status byte's address, when there is a usable one.
    pub status: Option<GuestAddress>,
    /// Why.
    pub error: RequestError,
}

impl ParseError {
    fn broken(error: RequestError) -> Self {
        Self {
            status: None,
            error,
        }
    }
}

/// Parses the chain into a request for a disk of `capacity` sectors.
pub fn parse<M>(
    chain: DescriptorChain<M>,
    mem: &GuestMemoryMmap,
    capacity: u64,
) -> Result<Request, ParseError>
where
    M: Deref,
    M::Target: GuestMemory,
{
    let descs = chain::collect(chain).map_err(|_| ParseError::broken(RequestError::BrokenChain))?;
    parse_descriptors(descs, mem, capacity)
}

/// Parses a chain's descriptors (already collected) into a request.
pub fn parse_descriptors(
    mut descs: Vec<Descriptor>,
    mem: &GuestMemoryMmap,
    capacity: u64,
) -> Result<Request, ParseError> {
    let status_desc = descs
        .pop()
        .ok_or(ParseError::broken(RequestError::BrokenChain))?;
    if !status_desc.is_write_only()
        || status_desc.len() == 0
        || !in_guest_memory(mem, status_desc.addr(), 1)
    {
        return Err(ParseError::broken(RequestError::NoStatus));
    }
    let status = status_desc.addr();
    let fail = |error| ParseError {
        status: Some(status),
        error,
    };

    let header = *descs.first().ok_or(fail(RequestError::Header))?;
    if header.is_write_only() || header.len() < HEADER_LEN {
        return Err(fail(RequestError::Header));
    }
    let mut raw = [0u8; HEADER_LEN as usize];
    if !read_bytes(mem, header.addr(), &mut raw) {
        return Err(fail(RequestError::Header));
    }
    let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = raw;
    let request_type = u32::from_le_bytes([t0, t1, t2, t3]);
    let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);

    let writable = match request_type {
        VIRTIO_BLK_T_IN | VIRTIO_BLK_T_GET_ID => Some(true),
        VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => Some(false),
        // A flush carries no data; whatever buffers come with it are ignored.
        VIRTIO_BLK_T_FLUSH => None,
        other => {
            return Ok(Request {
                kind: RequestKind::Unsupported(other),
                sector,
                data: Vec::new(),
                data_len: 0,
                status,
            })
        }
    };

    // What is left after the header are the data buffers.
    descs.remove(0);
    let data = descs;
    let mut total = 0u64;
    if let Some(writable) = writable {
        for d in &data {
            if d.is_write_only() != writable {
                return Err(fail(RequestError::Direction));
            }
            if d.len() == 0 {
                continue;
            }
            if !in_guest_memory(mem, d.addr(), d.len() as usize) {
                return Err(fail(RequestError::DataAddress));
            }
            total += u64::from(d.len());
            if total > MAX_REQUEST_BYTES {
                return Err(fail(RequestError::TooLarge(total)));
            }
        }
    }
    // Bounded by MAX_REQUEST_BYTES above.
    let data_len = total as u32;

    let kind = match request_type {
        VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
            if total & (SECTOR_SIZE - 1) != 0 {
                return Err(fail(RequestError::Unaligned(total)));
            }
            check_range(sector, total >> SECTOR_SHIFT, capacity).map_err(fail)?;
            if request_type == VIRTIO_BLK_T_IN {
                RequestKind::In
            } else {
                RequestKind::Out
            }
        }
        VIRTIO_BLK_T_FLUSH => {
            // Whatever buffers came with it were not checked: drop them.
            return Ok(Request {
                kind: RequestKind::Flush,
                sector,
                data: Vec::new(),
                data_len: 0,
                status,
            });
        }
        VIRTIO_BLK_T_GET_ID => RequestKind::GetId,
        _ => {
            let zeroes = request_type == VIRTIO_BLK_T_WRITE_ZEROES;
            let segments = parse_segments(mem, &data, total, capacity, zeroes).map_err(fail)?;
            if zeroes {
                RequestKind::WriteZeroes(segments)
            } else {
                RequestKind::Discard(segments)
            }
        }
    };
    Ok(Request {
        kind,
        sector,
        data,
        data_len,
        status,
    })
}

/// Checks that `count` sectors from `sector` fit a disk of `capacity` sectors.
fn check_range(sector: u64, count: u64, capacity: u64) -> Result<(), RequestError> {
    let end = sector.checked_add(count).ok_or(RequestError::OutOfRange)?;
    // The byte offset of the end must be representable too.
    if end > capacity || end.checked_mul(SECTOR_SIZE).is_none() {
        return Err(RequestError::OutOfRange);
    }
    Ok(())
}

fn parse_segments(
    mem: &GuestMemoryMmap,
    data: &[Descriptor],
    total: u64,
    capacity: u64,
    zeroes: bool,
) -> Result<Vec<Segment>, RequestError> {
    if total == 0 || total > u64::from(MAX_SEGMENTS) * SEGMENT_LEN as u64 {
        return Err(RequestError::Segments);
    }
    if total & (SEGMENT_LEN as u64 - 1) != 0 {
        return Err(RequestError::Unaligned(total));
    }
    // At most MAX_SEGMENTS * 16 bytes, checked above.
    let mut raw = vec![0u8; total as usize];
    let mut at = 0usize;
    for d in data {
        let (addr, len) = (d.addr(), d.len());
        let end = at + len as usize;
        let chunk = raw.get_mut(at..end).ok_or(RequestError::Segments)?;
        mem.read_slice(chunk, addr)
            .map_err(|_| RequestError::DataAddress)?;
        at = end;
    }
    let mut segments = Vec::new();
    for chunk in raw.chunks_exact(SEGMENT_LEN) {
        let mut sector = [0u8; 8];
        let mut num = [0u8; 4];
        let mut flags = [0u8; 4];
        sector.copy_from_slice(&chunk[0..8]);
        num.copy_from_slice(&chunk[8..12]);
        flags.copy_from_slice(&chunk[12..16]);
        let (sector, num_sectors, flags) = (
            u64::from_le_bytes(sector),
            u32::from_le_bytes(num),
            u32::from_le_bytes(flags),
        );
        let allowed = if zeroes {
            VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
        } else {
            0
        };
        if flags & !allowed != 0 {
            return Err(RequestError::SegmentFlags(flags));
        }
        if num_sectors > MAX_SEGMENT_SECTORS {
            return Err(RequestError::Segments);
        }
        check_range(sector, u64::from(num_sectors), capacity)?;
        segments.push(Segment {
            sector,
            num_sectors,
            unmap: flags != 0,
        });
    }
    Ok(segments)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::{TestQueue, N, W};
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::QueueT;

    const CAP: u64 = 1 << 20;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap()
    }

    fn header(m: &GuestMemoryMmap, at: u64, t: u32, sector: u64) {
        m.write_obj(t, GuestAddress(at)).unwrap();
        m.write_obj(0u32, GuestAddress(at + 4)).unwrap();
        m.write_obj(sector, GuestAddress(at + 8)).unwrap();
    }

    /// Builds a chain from (addr, len, flags) and parses it.
    fn parse_chain(m: &GuestMemoryMmap, descs: &[(u64, u32, u16)]) -> Result<Request, ParseError> {
        let mut tq = TestQueue::new(m, 0x1000, 16);
        tq.add(descs);
        let mut q = tq.queue();
        let chain = q.pop_descriptor_chain(m).unwrap();
        parse(chain, m, CAP)
    }

    #[test]
    fn parses_read_and_write() {
        let m = mem();
        header(&m, 0x10000, VIRTIO_BLK_T_IN, 8);
        let r = parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 4096, W), (0x30000, 1, W)]).unwrap();
        assert_eq!(r.kind, RequestKind::In);
        assert_eq!(r.sector, 8);
        assert_eq!(r.offset(), 4096);
        assert_eq!(
            r.buffers().collect::<Vec<_>>(),
            vec![(GuestAddress(0x20000), 4096)]
        );
        assert_eq!(r.status, GuestAddress(0x30000));
        header(&m, 0x10000, VIRTIO_BLK_T_OUT, 0);
        let r = parse_chain(
            &m,
            &[
                (0x10000, 16, 0),
                (0x20000, 512, 0),
                (0x21000, 0, 0),
                (0x30000, 1, W),
            ],
        )
        .unwrap();
        assert_eq!(r.kind, RequestKind::Out);
        assert_eq!(r.data_len, 512);
    }

    #[test]
    fn refuses_wrong_directions() {
        let m = mem();
        header(&m, 0x10000, VIRTIO_BLK_T_IN, 0);
        // Readable status: no status at all.
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 512, W), (0x30000, 1, 0)]).unwrap_err();
        assert_eq!(
            e,
            ParseError {
                status: None,
                error: RequestError::NoStatus
            }
        );
        // Writable header.
        let e =
            parse_chain(&m, &[(0x10000, 16, W), (0x20000, 512, W), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Header);
        assert_eq!(e.status, Some(GuestAddress(0x30000)));
        // Readable buffer for a read.
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 512, 0), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Direction);
    }

    #[test]
    fn refuses_bad_lengths_and_addresses() {
        let m = mem();
        header(&m, 0x10000, VIRTIO_BLK_T_IN, 0);
        let e =
            parse_chain(&m, &[(0x10000, 8, 0), (0x20000, 512, W), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Header);
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 500, W), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Unaligned(500));
        let e = parse_chain(
            &m,
            &[(0x10000, 16, 0), (0xfff000, 0x2000, W), (0x30000, 1, W)],
        )
        .unwrap_err();
        assert_eq!(e.error, RequestError::DataAddress);
        let e = parse_chain(
            &m,
            &[(0x10000, 16, 0), (u64::MAX - 8, 512, W), (0x30000, 1, W)],
        )
        .unwrap_err();
        assert_eq!(e.error, RequestError::DataAddress);
        // Header outside memory.
        let e = parse_chain(&m, &[(0x2000_0000, 16, 0), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Header);
        // Status outside memory, or zero-length.
        let e = parse_chain(&m, &[(0x10000, 16, 0), (0x2000_0000, 1, W)]).unwrap_err();
        assert_eq!(e.status, None);
        let e = parse_chain(&m, &[(0x10000, 16, 0), (0x30000, 0, W)]).unwrap_err();
        assert_eq!(e.status, None);
        // Only a status.
        let e = parse_chain(&m, &[(0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Header);
    }

    #[test]
    fn refuses_oversized_requests() {
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x500_0000)]).unwrap();
        header(&m, 0x10000, VIRTIO_BLK_T_IN, 0);
        let e = parse_chain(
            &m,
            &[
                (0x10000, 16, 0),
                (0x100000, 0x400_0000, W),
                (0x100000, 512, W),
                (0x30000, 1, W),
            ],
        )
        .unwrap_err();
        assert_eq!(e.error, RequestError::TooLarge(0x400_0000 + 512));
    }

    #[test]
    fn refuses_sectors_past_the_end_and_overflowing() {
        let m = mem();
        header(&m, 0x10000, VIRTIO_BLK_T_IN, CAP - 1);
        assert!(parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 512, W), (0x30000, 1, W)]).is_ok());
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 1024, W), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::OutOfRange);
        header(&m, 0x10000, VIRTIO_BLK_T_OUT, u64::MAX);
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 512, 0), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::OutOfRange);
        assert!(check_range(u64::MAX >> 9, 1, u64::MAX).is_err());
        assert!(check_range(u64::MAX - 1, 0, u64::MAX).is_err());
    }

    #[test]
    fn detects_loops_and_bad_next() {
        let m = mem();
        header(&m, 0x10000, VIRTIO_BLK_T_IN, 0);
        let mut tq = TestQueue::new(&m, 0x1000, 16);
        // 0 -> 1 -> 0 -> ...
        let raw = [
            RawDescriptor::from(Descriptor::new(0x10000, 16, N, 1)),
            RawDescriptor::from(Descriptor::new(0x20000, 512, N | W, 0)),
        ];
        tq.add_raw_at(0, &raw);
        let mut q = tq.queue();
        let e = parse(q.pop_descriptor_chain(&m).unwrap(), &m, CAP).unwrap_err();
        assert_eq!(
            e,
            ParseError {
                status: None,
                error: RequestError::BrokenChain
            }
        );
        // next past the table.
        tq.add_raw_at(
            5,
            &[RawDescriptor::from(Descriptor::new(0x10000, 16, N, 999))],
        );
        let e = parse(q.pop_descriptor_chain(&m).unwrap(), &m, CAP).unwrap_err();
        assert_eq!(e.error, RequestError::BrokenChain);
    }

    #[test]
    fn parses_flush_get_id_and_unsupported() {
        let m = mem();
        header(&m, 0x10000, VIRTIO_BLK_T_FLUSH, 0);
        let r = parse_chain(&m, &[(0x10000, 16, 0), (0x30000, 1, W)]).unwrap();
        assert_eq!(r.kind, RequestKind::Flush);
        header(&m, 0x10000, VIRTIO_BLK_T_GET_ID, 0);
        let r = parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 20, W), (0x30000, 1, W)]).unwrap();
        assert_eq!(r.kind, RequestKind::GetId);
        header(&m, 0x10000, 0x1234, 0);
        let r = parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 20, 0), (0x30000, 1, W)]).unwrap();
        assert_eq!(r.kind, RequestKind::Unsupported(0x1234));
    }

    fn segment(m: &GuestMemoryMmap, at: u64, sector: u64, num: u32, flags: u32) {
        m.write_obj(sector, GuestAddress(at)).unwrap();
        m.write_obj(num, GuestAddress(at + 8)).unwrap();
        m.write_obj(flags, GuestAddress(at + 12)).unwrap();
    }

    #[test]
    fn parses_and_checks_segments() {
        let m = mem();
        header(&m, 0x10000, VIRTIO_BLK_T_DISCARD, 0);
        segment(&m, 0x20000, 8, 16, 0);
        segment(&m, 0x20010, 100, 1, 0);
        let r = parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 32, 0), (0x30000, 1, W)]).unwrap();
        assert_eq!(
            r.kind,
            RequestKind::Discard(vec![
                Segment {
                    sector: 8,
                    num_sectors: 16,
                    unmap: false
                },
                Segment {
                    sector: 100,
                    num_sectors: 1,
                    unmap: false
                },
            ])
        );
        // Split across two descriptors.
        let r = parse_chain(
            &m,
            &[
                (0x10000, 16, 0),
                (0x20000, 20, 0),
                (0x20014, 12, 0),
                (0x30000, 1, W),
            ],
        )
        .unwrap();
        assert!(matches!(r.kind, RequestKind::Discard(ref s) if s.len() == 2));
        // Discard with the unmap flag; write zeroes accepts it.
        segment(&m, 0x20000, 8, 16, 1);
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 16, 0), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::SegmentFlags(1));
        header(&m, 0x10000, VIRTIO_BLK_T_WRITE_ZEROES, 0);
        let r = parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 16, 0), (0x30000, 1, W)]).unwrap();
        assert_eq!(
            r.kind,
            RequestKind::WriteZeroes(vec![Segment {
                sector: 8,
                num_sectors: 16,
                unmap: true
            }])
        );
        // Past the end, unaligned, empty, too many.
        segment(&m, 0x20000, CAP, 1, 0);
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 16, 0), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::OutOfRange);
        let e =
            parse_chain(&m, &[(0x10000, 16, 0), (0x20000, 15, 0), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Unaligned(15));
        let e = parse_chain(&m, &[(0x10000, 16, 0), (0x30000, 1, W)]).unwrap_err();
        assert_eq!(e.error, RequestError::Segments);
        let e = parse_chain(
            &m,
            &[(0x10000, 16, 0), (0x20000, 17 * 16, 0), (0x30000, 1, W)],
        )
        .unwrap_err();
        assert_eq!(e.error, RequestError::Segments);
    }
}
