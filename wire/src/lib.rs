//! wire (skeleton)
