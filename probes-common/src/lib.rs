#![no_std]
//! probes-common (skeleton)
