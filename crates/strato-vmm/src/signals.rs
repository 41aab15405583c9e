//! SIGTERM and SIGINT as a readable descriptor, so the event loop handles them in order
//! with everything else.

use std::io;
use std::os::unix::io::{AsRawFd, RawFd};

extern "C" fn ignore(_: libc::c_int) {}

/// A signalfd for the termination signals (which are blocked for the whole process).
pub struct SignalFd {
    fd: RawFd,
}

impl SignalFd {
    /// Blocks SIGTERM and SIGINT in the calling thread (inherited by threads spawned
    /// later) and returns a descriptor that reads them.
    ///
    /// They also get a handler that never runs while they are blocked: the kernel drops
    /// signals from outside a PID namespace to its PID 1 (which a jailed monitor is) when
    /// their disposition is the default, even blocked ones.
    pub fn termination() -> io::Result<Self> {
        for sig in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: sigaction is plain data; the handler is an extern "C" fn that does
            // nothing, which is async-signal-safe.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut act.sa_mask);
                if libc::sigaction(sig, &act, std::ptr::null_mut()) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t owned by this frame.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
        }
        // SAFETY: valid set pointer, null old-set pointer is allowed.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is valid.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// Reads one pending signal number, if any.
    pub fn read(&self) -> Option<u32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading at most `size` bytes into `info`, which is that large.
        let n = unsafe {
            libc::read(
                self.fd,
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo)
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe { libc::close(self.fd) };
    }
}
