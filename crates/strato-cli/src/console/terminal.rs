//! The terminal in raw mode while the console is open: every key goes to the guest as it is
//! typed (Ctrl-C included), nothing is echoed locally, and the guest's output is shown byte
//! for byte. The settings before are put back when the guard goes, also on an error.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// Raw mode on a terminal until dropped.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts the terminal `t` in raw mode.
    pub fn enter(t: &impl AsRawFd) -> io::Result<Self> {
        let fd = t.as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it completely when it succeeds,
        // and it is used only then.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open for the call's duration and `saved` is a valid termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios, changed in place.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `fd` is open and `raw` is a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: `fd` is the terminal raw mode was entered on (stdin, open for the
        // process's whole life) and `saved` the termios read from it. A failure leaves
        // nothing better to do.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
    }
}
