#![no_std]
#![no_main]
//! probes-ebpf (skeleton)
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }
