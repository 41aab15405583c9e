//! Fuzzes router solicitations and advertisements: the generator and checks are in
//! strato-wire's `fuzzgen` module, which the unit tests run as property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

// Every case bounds what it holds, which needs the counting allocator.
#[global_allocator]
static METER: strato_fuzzgen::alloc::Meter = strato_fuzzgen::alloc::Meter;

fuzz_target!(|data: &[u8]| {
    strato_wire::fuzzgen::ndp(data);
});
