//! Fuzzes the dhcp6 codec: the generator and checks are in the crate's `fuzzgen` module, which the
//! unit tests run as property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

// Every case bounds what it holds, which needs the counting allocator.
#[global_allocator]
static METER: strato_fuzzgen::alloc::Meter = strato_fuzzgen::alloc::Meter;

fuzz_target!(|data: &[u8]| {
    strato_wire::fuzzgen::dhcp6(data);
});
