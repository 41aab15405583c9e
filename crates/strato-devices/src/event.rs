//! The thin glue between devices and the monitor's epoll loop.
//!
//! A device lists the file descriptors it waits on (queue ioeventfds, a tap, a timer),
//! each with a device-local token; the loop calls [`EventHandler::handle_event`] with
//! that token when the descriptor is readable. The set may change when the guest
//! activates or resets the device: the loop asks again after [`EventHandler::handle_event`]
//! or an MMIO access returns and [`EventHandler::sources_changed`] reports true.
//!
//! When the set changes, the loop should remove every descriptor it registered for the
//! device and add the new set. A device keeps the descriptors it stops listing open
//! until its next activation, so removing them with `EPOLL_CTL_DEL` always works (an
//! epoll registration outlives a closed descriptor whose file is still open elsewhere,
//! as queue ioeventfds are: the transport keeps the originals).

use std::os::unix::io::RawFd;

/// One descriptor a device waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSource {
    /// The descriptor (level-triggered readability is watched).
    pub fd: RawFd,
    /// Device-local token passed back to `handle_event`.
    pub token: u32,
}

/// Implemented by every device that does work outside vCPU exits.
pub trait EventHandler: Send {
    /// The descriptors to watch now.
    fn event_sources(&self) -> Vec<EventSource>;
    /// Called when the descriptor registered with `token` is readable.
    fn handle_event(&mut self, token: u32);
    /// True once after the set of sources changed (activation, reset); reading clears it.
    fn sources_changed(&mut self) -> bool {
        false
    }
}
