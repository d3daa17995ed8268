//! vm (skeleton)
