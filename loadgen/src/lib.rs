//! loadgen (skeleton)
