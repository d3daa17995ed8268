//! `qfc-lab load ...`: clap arguments and the run function the lab flattens.
