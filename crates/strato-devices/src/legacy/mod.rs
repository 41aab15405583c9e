//! Legacy PC devices on port I/O: the 8250 UART console and the i8042 keyboard controller.

pub mod i8042;
pub mod serial;
