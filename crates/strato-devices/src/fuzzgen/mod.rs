//! Structured, valid-by-construction fuzz input for every device model a guest reaches, and
//! the checks beyond "no panic" that a case makes. The `fuzz/` targets call these `run`
//! functions with libFuzzer's bytes; the unit tests below call them with seeded random
//! bytes (bounded property tests, a few seconds in all).
//!
//! The pattern is Cloud Hypervisor's device fuzzers': small guest memory (1 MiB), rings at
//! fixed addresses, buffers handed out inside guest memory, every field chosen to be valid
//! and broken only "rarely" ([`strato_fuzzgen::Source::rarely`]). Every case runs under
//! [`strato_fuzzgen::alloc::bounded`]: what it makes the device hold stays under its
//! `MEMORY_BOUND`.
//!
//! | case | what it drives | checks |
//! |---|---|---|
//! | [`queue::run`] | descriptor tables, avail rings | our walker agrees with rust-vmm's; chains end, stay within the table |
//! | [`blk::run`] | virtio-blk requests of every type on a memfd disk | each head used exactly once; used length within the writable bytes |
//! | [`net::run_tx`] | virtio-net TX frames and headers | as blk; tap headers ask only for negotiated offloads; frames are the guest's |
//! | [`net::run_rx`] | virtio-net RX buffers and tap frames | heads used at most once, lengths within buffers; frames are the tap's |
//! | [`mmio::run`] | the virtio-mmio register file | status and activation agree; reset resets |
//! | [`legacy::run_uart`], [`legacy::run_i8042`] | port I/O | console fed only by the data register; one reboot per reset pulse |

pub mod blk;
pub mod legacy;
pub mod mmio;
pub mod net;
pub mod queue;
pub mod ring;

#[cfg(test)]
mod tests {
    use strato_fuzzgen::property;

    // Case counts keep the whole set to a few seconds of a debug build.
    #[test]
    fn descriptor_walk_properties() {
        property("queue", 150, 2048, super::queue::run);
    }

    #[test]
    fn virtio_blk_properties() {
        property("blk", 150, 2048, super::blk::run);
    }

    #[test]
    fn virtio_net_tx_properties() {
        property("net-tx", 150, 2048, super::net::run_tx);
    }

    #[test]
    fn virtio_net_rx_properties() {
        property("net-rx", 150, 2048, super::net::run_rx);
    }

    #[test]
    fn virtio_mmio_properties() {
        property("mmio", 150, 4096, super::mmio::run);
    }

    #[test]
    fn replays_inputs_the_fuzzers_found() {
        // A stray offer of a held head on a 1-entry ring: more offers than entries (the
        // harness must count the ring as broken, not the device for refusing it).
        super::net::run_tx(&[
            251, 251, 0, 0, 212, 10, 87, 1, 10, 118, 0, 0, 0, 143, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 254, 251, 251, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 110, 0, 191, 32, 255, 255, 10, 118, 36,
        ]);
        // Two 1-byte parts of different frames both given the "straddling" address, which
        // for a buffer that short lay wholly inside guest memory: the second frame's byte
        // overwrote the first's before the device read it (the arena now never hands such
        // a buffer out).
        super::net::run_tx(include_bytes!(
            "../../../../fuzz/found/virtio_net_tx/frame-never-sent"
        ));
    }

    #[test]
    fn replays_rx_inputs_the_fuzzers_found() {
        // A broken chain from an earlier round ran on into descriptors the ring later gave
        // to another chain: the device wrote a dropped frame over that chain's buffers,
        // which a hostile guest earns; the harness took it for a frame the tap never sent.
        for input in [
            &include_bytes!("../../../../fuzz/found/virtio_net_rx/frame-mismatch-0")[..],
            &include_bytes!("../../../../fuzz/found/virtio_net_rx/frame-mismatch-1")[..],
        ] {
            super::net::run_rx(input);
        }
    }

    #[test]
    fn replays_virtqueue_inputs_the_fuzzers_found() {
        // A chain whose lengths add up past 2^32 bytes: rust-vmm's iterator stopped it, the
        // devices' table walk took it whole (the walk now refuses it too).
        super::queue::run(include_bytes!(
            "../../../../fuzz/found/virtqueue/chain-past-4gib"
        ));
    }

    #[test]
    fn uart_properties() {
        property("uart", 150, 2048, super::legacy::run_uart);
    }

    #[test]
    fn i8042_properties() {
        property("i8042", 150, 2048, super::legacy::run_i8042);
    }
}
