#![no_main]
//! Arbitrary bytes through the Greengrass frame and CBOR decoders and the session.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferry_fuzz::drive(data);
});
