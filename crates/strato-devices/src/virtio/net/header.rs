//! The 12-byte `virtio_net_hdr_v1` in front of every frame, and the offloads it asks for.
//!
//! On TX the header is the guest's request to the host kernel ("finish this checksum",
//! "segment this into MSS-sized TCP packets"). It never reaches the tap as the guest
//! wrote it: the device copies it out of guest memory once, checks it against the
//! offloads that were negotiated, and hands the tap a header it built itself (so a
//! guest can neither ask for an offload it did not negotiate nor change the header
//! between the check and the write). On RX the tap writes the header; the device passes
//! on only what the guest negotiated and fills in `num_buffers`.

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
};

/// Length of `virtio_net_hdr_v1`.
pub const VNET_HDR_LEN: usize = 12;

/// A header's raw bytes.
pub type RawHeader = [u8; VNET_HDR_LEN];

const NEEDS_CSUM: u8 = VIRTIO_NET_HDR_F_NEEDS_CSUM as u8;
const DATA_VALID: u8 = VIRTIO_NET_HDR_F_DATA_VALID as u8;
const GSO_NONE: u8 = VIRTIO_NET_HDR_GSO_NONE as u8;
const GSO_TCPV4: u8 = VIRTIO_NET_HDR_GSO_TCPV4 as u8;
const GSO_TCPV6: u8 = VIRTIO_NET_HDR_GSO_TCPV6 as u8;
const GSO_ECN: u8 = VIRTIO_NET_HDR_GSO_ECN as u8;

/// `TUNSETOFFLOAD` flags (linux/if_tun.h).
pub mod tun {
    /// The reader handles partial checksums.
    pub const TUN_F_CSUM: u32 = 0x01;
    /// The reader handles TCPv4 segmentation offload.
    pub const TUN_F_TSO4: u32 = 0x02;
    /// The reader handles TCPv6 segmentation offload.
    pub const TUN_F_TSO6: u32 = 0x04;
    /// The reader handles TSO with ECN bits.
    pub const TUN_F_TSO_ECN: u32 = 0x08;
}

/// The fields of a `virtio_net_hdr_v1` (little-endian on the wire, virtio 1.x).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Length of the headers to copy into every segment.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
    /// Receive buffers this frame spans (RX with mergeable buffers).
    pub num_buffers: u16,
}

impl VnetHeader {
    /// Decodes raw bytes.
    pub fn from_bytes(b: &RawHeader) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
            num_buffers: u16_at(10),
        }
    }

    /// Encodes the header.
    pub fn to_bytes(self) -> RawHeader {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b[10..12].copy_from_slice(&self.num_buffers.to_le_bytes());
        b
    }
}

/// The checksum and segmentation offloads negotiated for one direction. Each holds only
/// with what it depends on (segmentation needs checksum offload, ECN needs segmentation),
/// whatever the driver acked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Partial checksums.
    pub csum: bool,
    /// TCPv4 segmentation.
    pub tso4: bool,
    /// TCPv6 segmentation.
    pub tso6: bool,
    /// Segmentation of frames with ECN (CWR) set.
    pub ecn: bool,
}

impl Offloads {
    fn from_bits(acked: u64, csum: u32, tso4: u32, tso6: u32, ecn: u32) -> Self {
        let has = |bit: u32| acked & (1 << bit) != 0;
        let csum = has(csum);
        let tso4 = csum && has(tso4);
        let tso6 = csum && has(tso6);
        Self {
            csum,
            tso4,
            tso6,
            ecn: (tso4 || tso6) && has(ecn),
        }
    }

    /// What the guest may ask of the host on TX (the `HOST_*` and `CSUM` features).
    pub fn tx(acked: u64) -> Self {
        Self::from_bits(
            acked,
            VIRTIO_NET_F_CSUM,
            VIRTIO_NET_F_HOST_TSO4,
            VIRTIO_NET_F_HOST_TSO6,
            VIRTIO_NET_F_HOST_ECN,
        )
    }

    /// What the host may hand the guest on RX (the `GUEST_*` features).
    pub fn rx(acked: u64) -> Self {
        Self::from_bits(
            acked,
            VIRTIO_NET_F_GUEST_CSUM,
            VIRTIO_NET_F_GUEST_TSO4,
            VIRTIO_NET_F_GUEST_TSO6,
            VIRTIO_NET_F_GUEST_ECN,
        )
    }

    /// The `TUNSETOFFLOAD` flags that let the tap hand over what these RX offloads allow.
    pub fn tun_flags(self) -> u32 {
        let mut f = 0;
        if self.csum {
            f |= tun::TUN_F_CSUM;
        }
        if self.tso4 {
            f |= tun::TUN_F_TSO4;
        }
        if self.tso6 {
            f |= tun::TUN_F_TSO6;
        }
        if self.ecn {
            f |= tun::TUN_F_TSO_ECN;
        }
        f
    }

    /// Whether any segmentation offload holds (frames up to 64 KiB).
    pub fn gso(self) -> bool {
        self.tso4 || self.tso6
    }

    /// Whether `gso_type` is allowed.
    fn allows_gso(self, gso_type: u8) -> bool {
        let ecn = gso_type & GSO_ECN != 0;
        let allowed = match gso_type & !GSO_ECN {
            GSO_TCPV4 => self.tso4,
            GSO_TCPV6 => self.tso6,
            _ => false,
        };
        allowed && (!ecn || self.ecn)
    }
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Flags the direction does not allow (or checksum offload not negotiated).
    #[error("header flags {0:#x} not allowed")]
    Flags(u8),
    /// A checksum position outside the frame.
    #[error("checksum at {start}+{offset} is outside a {len}-byte frame")]
    Checksum {
        /// `csum_start`.
        start: u16,
        /// `csum_offset`.
        offset: u16,
        /// Frame length (without the vnet header).
        len: usize,
    },
    /// A segmentation type that was not negotiated.
    #[error("segmentation type {0:#x} not negotiated")]
    GsoType(u8),
    /// Segmentation without a partial checksum, a zero segment size or headers longer
    /// than the frame.
    #[error("inconsistent segmentation request (size {gso_size}, headers {hdr_len}, frame {len})")]
    Gso {
        /// `gso_size`.
        gso_size: u16,
        /// `hdr_len`.
        hdr_len: u16,
        /// Frame length (without the vnet header).
        len: usize,
    },
}

/// Builds the header handed to the tap for a guest TX frame of `frame_len` bytes (after
/// the header), from the guest's header `raw`, checked against the TX offloads `off`.
/// Fields that only mean something with an offload are zeroed without it;
/// `num_buffers` is always zeroed.
pub fn tx_header(
    raw: &RawHeader,
    frame_len: usize,
    off: Offloads,
) -> Result<RawHeader, HeaderError> {
    let h = VnetHeader::from_bytes(raw);
    let allowed_flags = if off.csum { NEEDS_CSUM } else { 0 };
    if h.flags & !allowed_flags != 0 {
        return Err(HeaderError::Flags(h.flags));
    }
    let mut out = VnetHeader::default();
    if h.flags & NEEDS_CSUM != 0 {
        let end = usize::from(h.csum_start) + usize::from(h.csum_offset) + 2;
        if end > frame_len {
            return Err(HeaderError::Checksum {
                start: h.csum_start,
                offset: h.csum_offset,
                len: frame_len,
            });
        }
        out.flags = NEEDS_CSUM;
        out.csum_start = h.csum_start;
        out.csum_offset = h.csum_offset;
    }
    if h.gso_type != GSO_NONE {
        if !off.allows_gso(h.gso_type) {
            return Err(HeaderError::GsoType(h.gso_type));
        }
        if out.flags & NEEDS_CSUM == 0 || h.gso_size == 0 || usize::from(h.hdr_len) > frame_len {
            return Err(HeaderError::Gso {
                gso_size: h.gso_size,
                hdr_len: h.hdr_len,
                len: frame_len,
            });
        }
        out.gso_type = h.gso_type;
        out.gso_size = h.gso_size;
        out.hdr_len = h.hdr_len;
    }
    Ok(out.to_bytes())
}

/// Builds the header the guest sees for a frame the tap handed over with header `raw`,
/// spanning `num_buffers` receive buffers, given the RX offloads `off`. Without checksum
/// offload every flag is cleared (the tap's `DATA_VALID` means nothing to such a
/// driver); a frame that still needs work the guest did not agree to do is refused.
pub fn rx_header(
    raw: &RawHeader,
    num_buffers: u16,
    off: Offloads,
) -> Result<RawHeader, HeaderError> {
    let h = VnetHeader::from_bytes(raw);
    let mut out = VnetHeader {
        num_buffers,
        ..VnetHeader::default()
    };
    if h.flags & NEEDS_CSUM != 0 && !off.csum {
        return Err(HeaderError::Flags(h.flags));
    }
    if off.csum {
        out.flags = h.flags & (NEEDS_CSUM | DATA_VALID);
        if out.flags & NEEDS_CSUM != 0 {
            out.csum_start = h.csum_start;
            out.csum_offset = h.csum_offset;
        }
    }
    if h.gso_type != GSO_NONE {
        if !off.allows_gso(h.gso_type) {
            return Err(HeaderError::GsoType(h.gso_type));
        }
        out.gso_type = h.gso_type;
        out.gso_size = h.gso_size;
        out.hdr_len = h.hdr_len;
    }
    Ok(out.to_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALL_TX: u64 = 1 << VIRTIO_NET_F_CSUM
        | 1 << VIRTIO_NET_F_HOST_TSO4
        | 1 << VIRTIO_NET_F_HOST_TSO6
        | 1 << VIRTIO_NET_F_HOST_ECN;

    fn hdr(h: VnetHeader) -> RawHeader {
        h.to_bytes()
    }

    #[test]
    fn round_trips_fields() {
        let h = VnetHeader {
            flags: 1,
            gso_type: 4,
            hdr_len: 0x1234,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 3,
        };
        assert_eq!(VnetHeader::from_bytes(&h.to_bytes()), h);
    }

    #[test]
    fn offloads_need_what_they_depend_on() {
        assert_eq!(Offloads::tx(0), Offloads::default());
        let tso_only = 1 << VIRTIO_NET_F_HOST_TSO4 | 1 << VIRTIO_NET_F_HOST_ECN;
        assert_eq!(Offloads::tx(tso_only), Offloads::default());
        let all = Offloads::tx(ALL_TX);
        assert!(all.csum && all.tso4 && all.tso6 && all.ecn);
        let rx = Offloads::rx(1 << VIRTIO_NET_F_GUEST_CSUM | 1 << VIRTIO_NET_F_GUEST_TSO6);
        assert_eq!(rx.tun_flags(), tun::TUN_F_CSUM | tun::TUN_F_TSO6);
        assert!(rx.gso());
        assert_eq!(Offloads::rx(ALL_TX).tun_flags(), 0);
    }

    #[test]
    fn plain_tx_accepts_only_empty_requests_and_zeroes_the_rest() {
        let off = Offloads::default();
        // Stray fields without a flag or GSO type: zeroed, not passed on.
        let stray = hdr(VnetHeader {
            hdr_len: 9,
            gso_size: 7,
            csum_start: 1,
            csum_offset: 2,
            num_buffers: 0xffff,
            ..VnetHeader::default()
        });
        assert_eq!(tx_header(&stray, 60, off).unwrap(), [0; 12]);
        for bad in [
            VnetHeader {
                flags: NEEDS_CSUM,
                ..VnetHeader::default()
            },
            VnetHeader {
                flags: DATA_VALID,
                ..VnetHeader::default()
            },
            VnetHeader {
                flags: 0x80,
                ..VnetHeader::default()
            },
        ] {
            assert!(matches!(
                tx_header(&hdr(bad), 60, off),
                Err(HeaderError::Flags(_))
            ));
        }
        let gso = hdr(VnetHeader {
            gso_type: GSO_TCPV4,
            gso_size: 1448,
            ..VnetHeader::default()
        });
        assert!(matches!(
            tx_header(&gso, 60, off),
            Err(HeaderError::GsoType(_))
        ));
    }

    #[test]
    fn offloaded_tx_is_checked_against_the_frame() {
        let off = Offloads::tx(ALL_TX);
        let good = VnetHeader {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 5,
        };
        let out = VnetHeader::from_bytes(&tx_header(&hdr(good), 60000, off).unwrap());
        assert_eq!(
            out,
            VnetHeader {
                num_buffers: 0,
                ..good
            }
        );
        // Checksum field past the end (and at u16 extremes, no overflow).
        for (start, offset) in [(50, 16), (u16::MAX, u16::MAX)] {
            let h = VnetHeader {
                csum_start: start,
                csum_offset: offset,
                ..good
            };
            assert!(matches!(
                tx_header(&hdr(h), 60, off),
                Err(HeaderError::Checksum { .. })
            ));
        }
        // Segmentation without a checksum request, of size 0, headers past the frame.
        for h in [
            VnetHeader { flags: 0, ..good },
            VnetHeader {
                gso_size: 0,
                ..good
            },
            VnetHeader {
                hdr_len: 60001,
                ..good
            },
        ] {
            assert!(matches!(
                tx_header(&hdr(h), 60000, off),
                Err(HeaderError::Gso { .. })
            ));
        }
        // UDP, unknown types, ECN without the feature.
        for gso_type in [3, 5, 0x7f, GSO_ECN] {
            let h = VnetHeader { gso_type, ..good };
            assert!(matches!(
                tx_header(&hdr(h), 60000, off),
                Err(HeaderError::GsoType(_))
            ));
        }
        let no_ecn = Offloads { ecn: false, ..off };
        assert!(tx_header(&hdr(good), 60000, no_ecn).is_err());
        let v6_only = Offloads { tso4: false, ..off };
        assert!(tx_header(&hdr(good), 60000, v6_only).is_err());
    }

    #[test]
    fn rx_headers_keep_only_what_the_guest_negotiated() {
        // The tap's DATA_VALID is dropped for a plain driver; num_buffers is ours.
        let tap = hdr(VnetHeader {
            flags: DATA_VALID,
            num_buffers: 0xeeee,
            ..VnetHeader::default()
        });
        let plain = Offloads::default();
        let mut want = [0u8; 12];
        want[10] = 1;
        assert_eq!(rx_header(&tap, 1, plain).unwrap(), want);
        let csum = Offloads::rx(1 << VIRTIO_NET_F_GUEST_CSUM);
        assert_eq!(rx_header(&tap, 2, csum).unwrap()[0], DATA_VALID);
        // Work the guest did not agree to do.
        let partial = hdr(VnetHeader {
            flags: NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..VnetHeader::default()
        });
        assert!(rx_header(&partial, 1, plain).is_err());
        let out = VnetHeader::from_bytes(&rx_header(&partial, 1, csum).unwrap());
        assert_eq!((out.flags, out.csum_start, out.csum_offset), (1, 34, 16));
        let gso = hdr(VnetHeader {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            gso_size: 1428,
            hdr_len: 74,
            csum_start: 54,
            csum_offset: 16,
            num_buffers: 0,
        });
        assert!(rx_header(&gso, 1, csum).is_err());
        let tso6 = Offloads::rx(1 << VIRTIO_NET_F_GUEST_CSUM | 1 << VIRTIO_NET_F_GUEST_TSO6);
        let out = VnetHeader::from_bytes(&rx_header(&gso, 3, tso6).unwrap());
        assert_eq!(
            (out.gso_type, out.gso_size, out.num_buffers),
            (GSO_TCPV6, 1428, 3)
        );
    }
}
