//! probes (skeleton)
