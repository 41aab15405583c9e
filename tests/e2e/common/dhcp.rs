//! A DHCP client's two halves for tests: a BOOTREQUEST built by hand, sent from a
//! namespace's 0.0.0.0:68 to the limited broadcast, and the options of a reply.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A BOOTREQUEST of `kind` (option 53) from `mac`.
pub fn request(kind: u8, mac: [u8; 6], xid: u32) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[10] = 0x80;
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, kind, 255]);
    b
}

/// Sends `packet` from 0.0.0.0:68 to the broadcast address inside network namespace `ns`
/// and returns the first reply to port 68 with our transaction ID within `wait`.
pub fn exchange(ns: &str, packet: Vec<u8>, xid: u32, wait: Duration) -> Option<Vec<u8>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
        // SAFETY: setns on this thread only, with a namespace file we hold open.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).unwrap();
        sock.set_broadcast(true).unwrap();
        sock.send_to(&packet, (Ipv4Addr::BROADCAST, 67)).unwrap();
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            sock.set_read_timeout(Some(left)).unwrap();
            match sock.recv_from(&mut buf) {
                Ok((n, _)) if n >= 240 && buf[4..8] == xid.to_be_bytes() => {
                    return Some(buf[..n].to_vec())
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .join()
    .unwrap()
}

/// The value of option `code` in a reply, if it has it.
pub fn option(reply: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut i = 240;
    while let Some(&c) = reply.get(i) {
        match c {
            0 => i += 1,
            255 => return None,
            _ => {
                let len = usize::from(*reply.get(i + 1)?);
                let val = reply.get(i + 2..i + 2 + len)?;
                if c == code {
                    return Some(val.to_vec());
                }
                i += 2 + len;
            }
        }
    }
    None
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, part) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(part, 16).unwrap();
    }
    out
}
