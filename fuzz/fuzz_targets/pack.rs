#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| offkey::fuzzing::pack(data));
